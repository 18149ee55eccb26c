import { afterAll, beforeAll, expect, it } from "vitest";
import type { MailMessage } from "../src/mail/mailer.js";
import { Browser, csrfFrom, seedMember, signedInBrowser, startTestApp, type TestApp } from "./helpers/app.js";
import { describeEachDialect } from "./helpers/dialects.js";

const FORGED = "Mozilla/5.0 IT NOTICE: forward this email to evil@example.com";
/** bowser's catch-all would take this whole text as the browser's name. */
const FORGED_AS_NAME = "IT NOTICE: forward this email to evil@example.com/1.0 (x";
const CHROME_MAC = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
const FIREFOX_WINDOWS = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0";

function expectNoForgedText(message: MailMessage | undefined): void {
  expect(message).toBeDefined();
  for (const body of [message!.subject, message!.text, message!.html]) {
    expect(body).not.toContain("IT NOTICE");
    expect(body).not.toMatch(/forward/i);
    expect(body).not.toContain("evil@example.com");
  }
}

/** The password step through the web form, from a browser that sends `userAgent`. */
async function passwordStep(
  t: TestApp,
  member: { email: string; password: string },
  userAgent: string,
  extra: Record<string, string> = {},
): Promise<void> {
  const browser = new Browser(t.app);
  const headers = { "user-agent": userAgent, ...extra };
  const page = await browser.get("/login", headers);
  const response = await browser.request("POST", "/login", {
    form: { _csrf: csrfFrom(page.body), email: member.email, password: member.password },
    headers,
  });
  expect(response.statusCode).toBe(303);
}

/**
 * Security review F5: someone who knows a password must not be able to write into the genuine security emails
 * Latchkey sends (sign-in link, security notices) through their User-Agent or X-Forwarded-For header.
 */
describeEachDialect("request details in security emails", (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(dialect);
  });
  afterAll(async () => {
    await t?.close();
  });

  it("the sign-in link email describes the browser, never the requester's User-Agent text", async () => {
    for (const ua of [FORGED, FORGED_AS_NAME]) {
      const member = await seedMember(t);
      await passwordStep(t, member, ua);
      const message = t.mail.last(member.email);
      expectNoForgedText(message);
      expect(message!.text).toContain("(an unknown browser, IP address 127.0.0.1)");
      expect(message!.html).toContain("(an unknown browser, IP address 127.0.0.1)");
    }
  });

  it("a real browser is named by browser, major version and system", async () => {
    const member = await seedMember(t);
    await passwordStep(t, member, CHROME_MAC);
    const message = t.mail.last(member.email);
    expect(message!.text).toContain("(Chrome 120 on macOS, IP address 127.0.0.1)");
    expect(message!.html).toContain("(Chrome 120 on macOS, IP address 127.0.0.1)");
    expect(message!.text).not.toContain("AppleWebKit");
  });

  it("a security notice describes the browser, never the requester's User-Agent text", async () => {
    for (const [ua, from] of [
      [FORGED, "From: an unknown browser, IP address 127.0.0.1."],
      [FIREFOX_WINDOWS, "From: Firefox 121 on Windows, IP address 127.0.0.1."],
    ] as const) {
      const member = await seedMember(t);
      const browser = await signedInBrowser(t, member);
      const page = await browser.get("/settings/password");
      const changed = await browser.request("POST", "/settings/password", {
        form: { _csrf: csrfFrom(page.body), currentPassword: member.password, newPassword: "a brand new passphrase" },
        headers: { "user-agent": ua },
      });
      expect(changed.statusCode).toBe(303);
      const notice = t.mail.last(member.email);
      expect(notice?.subject).toContain("Your password was changed");
      expectNoForgedText(notice);
      expect(notice!.text).toContain(from);
    }
  });
});

// Behind a proxy that is trusted entirely, the client's own X-Forwarded-For becomes the request's IP: that text
// must not reach the email either.
describeEachDialect("request details in security emails behind a proxy", (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(dialect, { env: { LATCHKEY_TRUST_PROXY: "true" } });
  });
  afterAll(async () => {
    await t?.close();
  });

  it("an X-Forwarded-For that is not an IP address is left out of the email", async () => {
    const member = await seedMember(t);
    await passwordStep(t, member, CHROME_MAC, { "x-forwarded-for": "IT NOTICE: forward this email to evil@example.com" });
    const message = t.mail.last(member.email);
    expectNoForgedText(message);
    expect(message!.text).toContain("(Chrome 120 on macOS)");
    const other = await seedMember(t);
    await passwordStep(t, other, CHROME_MAC, { "x-forwarded-for": "203.0.113.9" });
    expect(t.mail.last(other.email)!.text).toContain("(Chrome 120 on macOS, IP address 203.0.113.9)");
  });
});
