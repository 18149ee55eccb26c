import type { FastifyRequest } from "fastify";
import type { RequestInfo } from "../context.js";

export function requestInfo(request: FastifyRequest): RequestInfo {
  const ua = request.headers["user-agent"];
  return { ip: request.ip ?? null, userAgent: typeof ua === "string" ? ua.slice(0, 512) : null };
}

/**
 * A request URL as it may be logged: bearer tokens in the path (email link, invitation, setup, support links: 43
 * base64url characters) and the OIDC `code` and `state` are replaced, so reading the logs gives no live link.
 */
export function redactUrl(url: string): string {
  return url.replace(/(^|[/=])[A-Za-z0-9_-]{43}(?=$|[/?&#])/g, "$1[redacted]").replace(/([?&](?:code|state)=)[^&#]*/g, "$1[redacted]");
}
