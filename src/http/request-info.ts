import type { FastifyRequest } from "fastify";
import type { RequestInfo } from "../context.js";

export function requestInfo(request: FastifyRequest): RequestInfo {
  const ua = request.headers["user-agent"];
  return { ip: request.ip ?? null, userAgent: typeof ua === "string" ? ua.slice(0, 512) : null };
}
