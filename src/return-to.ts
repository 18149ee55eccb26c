import { defaultLimits } from "./config.js";
import type { AppContext } from "./context.js";

/**
 * `return_to`: where a sign-in ends when the person came from a page that asked for it. Only addresses on an allowed
 * origin are ever followed; everything else is ignored (the person lands on the home page), never an error.
 *
 * The checker is pure and strict on purpose. Browsers forgive much that a naive check does not see: they drop tabs and
 * newlines anywhere in a URL, read `\` as `/`, take `//host` and `https:host` as another host, and hide a host behind
 * userinfo (`https://auth.example.com@evil.example`). So: no whitespace, control characters or backslashes at all; a
 * relative value must be a path (`/…`, never `//…`); an absolute one must spell `http://` or `https://`, carry no
 * userinfo, and its origin — as the URL parser serializes it, after percent-decoding and lower-casing the host and
 * dropping a default port — must be one of the allowed origins, compared exactly. The result is the parser's own
 * serialization, absolute, so what was checked is what the `Location` header says.
 */

/**
 * Characters no `return_to` may contain: controls (C0, DEL, C1), any whitespace, invisible format characters (bidi
 * overrides, zero-width), and the backslash browsers read as `/`. A real address has them percent-encoded.
 */
const UNSAFE_CHARACTERS = /[\p{Cc}\p{Cf}\s\\]/u;
const HTTP_URL = /^https?:\/\//i;

/** Each allowed entry as `URL.origin` serializes it; entries that are no http(s) URL are dropped. */
function origins(allowed: readonly string[]): Set<string> {
  const set = new Set<string>();
  for (const entry of allowed) {
    try {
      const url = new URL(entry);
      if (url.protocol === "http:" || url.protocol === "https:") set.add(url.origin);
    } catch {
      // Not a URL: allows nothing.
    }
  }
  return set;
}

/**
 * The absolute URL to send the person to, or null when `raw` must be ignored.
 *
 * - `raw`: the `return_to` as received (decoded from the query or form).
 * - `allowedOrigins`: the origins it may lead to, e.g. from `allowedReturnOrigins(ctx)`. Entries are reduced to their
 *   origin (`https://app.example.com/cb` allows `https://app.example.com`); the public origin is allowed only if it is
 *   in the list, so a list without it refuses paths too (fails closed).
 * - `publicUrl`: what a path such as `/settings/team` is resolved against.
 */
export function safeReturnTo(raw: string, allowedOrigins: readonly string[], publicUrl: URL): string | null {
  if (raw.length === 0 || raw.length > defaultLimits.returnToMaxLength || UNSAFE_CHARACTERS.test(raw)) return null;
  let url: URL;
  try {
    if (raw.startsWith("/")) {
      // `//host` and `/\host` (the latter already refused above) name another host: a path has one leading slash.
      if (raw.startsWith("//")) return null;
      url = new URL(raw, publicUrl.origin);
    } else if (HTTP_URL.test(raw)) {
      url = new URL(raw);
    } else {
      // `https:host`, `javascript:…`, `data:…`, `%2F%2Fhost`, `settings/team`: not an address we send anyone to.
      return null;
    }
  } catch {
    return null;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return null;
  if (url.username !== "" || url.password !== "") return null;
  return origins(allowedOrigins).has(url.origin) ? url.href : null;
}

/**
 * The origins `return_to` may lead to: the public URL's and `LATCHKEY_RETURN_ORIGINS`. Async and given the whole
 * context so that origins kept in the database (the OpenID Provider's registered redirect URIs) can join them here.
 */
export async function allowedReturnOrigins(ctx: AppContext): Promise<readonly string[]> {
  return [ctx.config.publicUrl.origin, ...ctx.config.returnOrigins];
}

/** `safeReturnTo` over today's allowed origins, for any input (a missing or repeated parameter gives null). */
export async function checkReturnTo(ctx: AppContext, raw: unknown): Promise<string | null> {
  if (typeof raw !== "string") return null;
  return safeReturnTo(raw, await allowedReturnOrigins(ctx), ctx.config.publicUrl);
}
