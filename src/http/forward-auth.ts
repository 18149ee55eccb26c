import type { FastifyReply, FastifyRequest } from "fastify";
import type { Config } from "../config.js";
import { urlTo } from "../paths.js";

/** The header of a 401 from `GET /api/v1/verify` that names where the proxy sends the browser. */
export const LOGIN_URL_HEADER = "X-Latchkey-Login-Url";

const SCHEMES = new Set(["http", "https"]);
/** One host name or bracketed IPv6 address, with an optional port: no userinfo, path, list or space. */
const HOST = /^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

function single(value: string | string[] | undefined): string | undefined {
  return typeof value === "string" ? value : undefined;
}

/**
 * The URL the browser asked the proxy for, from the `X-Forwarded-Proto`, `-Host` and `-Uri` headers that Caddy's
 * `forward_auth` and Traefik's ForwardAuth send and the documented nginx configuration sets; `undefined` unless all
 * three are there and name one http(s) URL on that host. Nothing here is trusted for access: the URL only becomes
 * the `return_to` of the sign-in link, which the sign-in page checks against the allowed origins.
 */
export function originalUrl(request: FastifyRequest): string | undefined {
  const proto = single(request.headers["x-forwarded-proto"]);
  const host = single(request.headers["x-forwarded-host"]);
  const uri = single(request.headers["x-forwarded-uri"]);
  if (proto === undefined || host === undefined || uri === undefined) return undefined;
  if (!SCHEMES.has(proto) || !HOST.test(host)) return undefined;
  // `//host` and `/\host` would read as another host to a careless parser downstream; real paths never start so.
  if (!uri.startsWith("/") || uri.startsWith("//") || uri.startsWith("/\\")) return undefined;
  let url: URL;
  try {
    url = new URL(`${proto}://${host}${uri}`);
  } catch {
    return undefined;
  }
  return url.host === new URL(`${proto}://${host}`).host ? url.href : undefined;
}

/**
 * The sign-in page with `return_to` = the original URL, percent-encoded as one query parameter. Latchkey builds it
 * because the proxies cannot: neither nginx (without extra modules) nor Caddy can escape `&`, `+` or `%` of the
 * original query into a parameter, and unescaped they would split or change it.
 */
export function loginUrlFor(config: Config, request: FastifyRequest): string {
  const returnTo = originalUrl(request);
  return urlTo(config.publicUrl, "login", {}, returnTo === undefined ? undefined : { return_to: returnTo });
}

/** Route hook of the forward-auth check: a 401 carries the sign-in URL for the proxy to redirect to. */
export function withLoginUrlOnRefusal(
  config: Config,
): (request: FastifyRequest, reply: FastifyReply, payload: unknown) => Promise<unknown> {
  return async (request: FastifyRequest, reply: FastifyReply, payload: unknown): Promise<unknown> => {
    if (reply.statusCode === 401) reply.header(LOGIN_URL_HEADER, loginUrlFor(config, request));
    return payload;
  };
}
