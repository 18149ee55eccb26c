import type { FastifyRequest } from "fastify";
import type { RequestInfo } from "../context.js";

export function requestInfo(request: FastifyRequest): RequestInfo {
  const ua = request.headers["user-agent"];
  return { ip: request.ip ?? null, userAgent: typeof ua === "string" ? ua.slice(0, 512) : null };
}

/**
 * A request URL as it may be logged: bearer tokens in the path (email link, invitation, setup, support links: 43
 * base64url characters), the OIDC `code` and `state`, and an operator API token (`lk_…`) sent by mistake in the
 * query (where it is ignored) are replaced, so reading the logs gives no live link or token.
 */
export function redactUrl(url: string): string {
  return url
    .replace(/(^|[/=])[A-Za-z0-9_-]{43}(?=$|[/?&#])/g, "$1[redacted]")
    .replace(/([?&](?:code|state)=)[^&#]*/g, "$1[redacted]")
    .replace(/lk_[A-Za-z0-9_-]{43}/g, "[redacted]");
}
