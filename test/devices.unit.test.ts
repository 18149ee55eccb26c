import { BROWSER_MAP, OS_MAP } from "bowser";
import { describe, expect, it } from "vitest";
import { DEVICE_DESCRIPTION_MAX_LENGTH, describeDevice } from "../src/mail/device.js";

const CHROME_MAC = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
const FIREFOX_WINDOWS = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0";
const SAFARI_IPHONE =
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1";

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
/** Every description is built from bowser's names only: browser (with a version of digits), optionally " on " a system. */
const SHAPE = new RegExp(
  `^(?:an unknown browser|(?:${Object.values(BROWSER_MAP).map(escape).join("|")})(?: \\d{1,4})?)(?: on (?:${Object.values(OS_MAP).map(escape).join("|")}))?$`,
);

/** Security review F5: emails say which browser, never the requester's own User-Agent text. */
describe("describeDevice", () => {
  it("names real browsers by name, major version and system", () => {
    expect(describeDevice(CHROME_MAC)).toBe("Chrome 120 on macOS");
    expect(describeDevice(FIREFOX_WINDOWS)).toBe("Firefox 121 on Windows");
    expect(describeDevice(SAFARI_IPHONE)).toBe("Safari 17 on iOS");
  });

  it("says 'an unknown browser' for no, empty or unrecognised user agents", () => {
    expect(describeDevice(null)).toBe("an unknown browser");
    expect(describeDevice("")).toBe("an unknown browser");
    expect(describeDevice("   ")).toBe("an unknown browser");
    expect(describeDevice("curl/8.4.0")).toBe("an unknown browser");
    expect(describeDevice("lightMyRequest")).toBe("an unknown browser");
  });

  it("never passes on text the requester chose, even where the parser would take it as the browser's name", () => {
    for (const ua of [
      "Mozilla/5.0 IT NOTICE: forward this email to evil@example.com",
      // bowser's catch-all takes everything before the last "/" as the browser's name.
      "IT NOTICE: forward this email to evil@example.com/1.0 x",
      "IT NOTICE (forward this email to evil@example.com)/1.0 (x",
      `Chrome/120 IT NOTICE: forward this email to evil@example.com`,
    ]) {
      const description = describeDevice(ua);
      expect(description, ua).toMatch(SHAPE);
      expect(description, ua).not.toMatch(/NOTICE|forward|evil/i);
    }
  });

  it("keeps versions to digits, at most 4 of them", () => {
    expect(describeDevice("Mozilla/5.0 (Windows NT 10.0) Chrome/99999999999.1 Safari/537.36")).toBe("Chrome on Windows");
    expect(describeDevice("Mozilla/5.0 (Windows NT 10.0) Chrome/12a.1 Safari/537.36")).toMatch(/^Chrome(?: 12)? on Windows$/);
  });

  it("handles control characters, 512 characters and more, and always stays short and in shape", () => {
    const inputs = [
      `${CHROME_MAC}\r\nIT NOTICE: forward this email\u001b[2J`,
      "\u0000\u0001\u007f\u0085\u202e\u2066\u200b",
      `${CHROME_MAC} ${"x".repeat(512 - CHROME_MAC.length - 1)}`,
      "A".repeat(512),
      `${"(".repeat(300)}/${"/ ".repeat(300)}`,
      `${CHROME_MAC}${" IT NOTICE forward".repeat(1000)}`,
      "Mozilla/5.0 (Windows NT 10.0; \u202eWin64) Firefox/121.0",
    ];
    for (const ua of inputs) {
      const description = describeDevice(ua);
      expect(description, JSON.stringify(ua.slice(0, 60))).toMatch(SHAPE);
      expect(description.length).toBeLessThanOrEqual(DEVICE_DESCRIPTION_MAX_LENGTH);
      expect(description).not.toMatch(/[\p{Cc}\p{Cf}]/u);
    }
    expect(describeDevice(`${CHROME_MAC} ${"x".repeat(512 - CHROME_MAC.length - 1)}`)).toBe("Chrome 120 on macOS");
  });
});
