import Bowser, { BROWSER_MAP, OS_MAP } from "bowser";

/**
 * The words a device description is built from: the browser and system names bowser recognises. Checked because
 * bowser's catch-all rule takes whatever precedes the last "/" of an unknown User-Agent as the browser's name, and
 * the User-Agent is whatever the requester sends.
 */
const KNOWN_BROWSERS: ReadonlySet<string> = new Set(Object.values(BROWSER_MAP));
const KNOWN_SYSTEMS: ReadonlySet<string> = new Set(Object.values(OS_MAP));

const UNKNOWN_BROWSER = "an unknown browser";

/** Only the start of a User-Agent is parsed (the request keeps 512 characters; real ones are shorter). */
const USER_AGENT_PARSED_LENGTH = 512;

/** A browser's major version, shown only when it is 1 to this many digits. */
const VERSION_MAX_DIGITS = 4;

/** No description is longer (the longest names bowser knows make about 50 characters). */
export const DEVICE_DESCRIPTION_MAX_LENGTH = 64;

/**
 * "Chrome 120 on macOS", "Firefox on Windows", "an unknown browser on Linux", "an unknown browser": what security
 * emails say about where a request came from. The User-Agent is chosen by the requester — who, for a sign-in link or
 * a security notice, may be someone who knows the person's password — so it is never quoted: the description uses
 * only names from bowser's fixed vocabulary and a version of digits, and is capped in length.
 */
export function describeDevice(userAgent: string | null): string {
  const ua = (userAgent ?? "").slice(0, USER_AGENT_PARSED_LENGTH);
  if (ua.trim() === "") return UNKNOWN_BROWSER;
  let parsed: Bowser.Parser.ParsedResult;
  try {
    parsed = Bowser.parse(ua);
  } catch {
    return UNKNOWN_BROWSER;
  }
  const name = parsed.browser.name;
  const browser = name !== undefined && KNOWN_BROWSERS.has(name) ? name : undefined;
  const major = new RegExp(`^(\\d{1,${VERSION_MAX_DIGITS}})(?!\\d)`).exec(parsed.browser.version ?? "")?.[1];
  const system = parsed.os.name !== undefined && KNOWN_SYSTEMS.has(parsed.os.name) ? parsed.os.name : undefined;
  const which = browser === undefined ? UNKNOWN_BROWSER : major === undefined ? browser : `${browser} ${major}`;
  const described = system === undefined ? which : `${which} on ${system}`;
  if (described.length <= DEVICE_DESCRIPTION_MAX_LENGTH) return described;
  return which.length <= DEVICE_DESCRIPTION_MAX_LENGTH ? which : UNKNOWN_BROWSER;
}
