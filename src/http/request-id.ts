import { randomUUID } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { FastifyInstance } from "fastify";

/** The header a request id comes in (from a proxy or a caller) and is answered in. */
export const REQUEST_ID_HEADER = "x-request-id";

/**
 * What an incoming request id may look like to be kept: 1–128 characters of letters, digits and `._:+/=@-` (UUIDs,
 * nginx's `$request_id`, ULIDs, base64 ids). Anything else — spaces, quotes, control characters, two ids joined by a
 * comma, a very long value — is replaced, so a caller cannot write arbitrary text into the log or the answer.
 */
const WELL_FORMED = /^[A-Za-z0-9._:+/=@-]{1,128}$/;

/**
 * Fastify's `genReqId`: the caller's `X-Request-Id` when well-formed (a proxy's id then follows the request through
 * both logs), else a random UUID. Fastify puts it in every log line of the request (`reqId`).
 */
export function requestIdOf(request: IncomingMessage): string {
  const given = request.headers[REQUEST_ID_HEADER];
  return typeof given === "string" && WELL_FORMED.test(given) ? given : randomUUID();
}

/** Every answer that goes through the request hooks carries its request id, so a caller can quote it. */
export function registerRequestId(app: FastifyInstance): void {
  app.addHook("onRequest", (request, reply, done) => {
    reply.raw.setHeader("X-Request-Id", request.id);
    done();
  });
}
