import { LogController, type FastifyReply, type FastifyRequest } from "fastify";
import { routeConfigOf } from "./route-config.js";

/**
 * The hot path: the session check (`GET /api/v1/session`) and forward auth (`GET /api/v1/verify`), which a reverse
 * proxy calls on every request of the app it protects. Its parts: the look-up's prepared statements
 * (src/auth/session-lookup.ts), the security headers computed once (security-headers.ts), and here its request log.
 */

declare module "fastify" {
  interface FastifyContextConfig {
    /** A hot-path route (declared with the API operation): its request lines are logged at debug level. */
    hotPath?: boolean;
  }
}

function isHotPath(request: FastifyRequest): boolean {
  return routeConfigOf(request).hotPath === true;
}

/**
 * Fastify's request log, except that a hot-path request's "incoming request" and "request completed" lines are debug
 * lines: at the default level (info) they cost nothing, where two info lines per check were about 5% of its time.
 * Errors are logged as always: a failed answer ("request errored") here, 5xx errors by the error handler.
 */
export class RequestLog extends LogController {
  override incomingRequest(request: FastifyRequest, reply: FastifyReply): void {
    if (!isHotPath(request)) return super.incomingRequest(request, reply);
    if (!this.isLogDisabled(request)) request.log.debug({ req: request }, "incoming request");
  }

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (error || !isHotPath(request)) return super.requestCompleted(error, request, reply);
    if (!this.isLogDisabled(request)) reply.log.debug({ res: reply, responseTime: reply.elapsedTime }, "request completed");
  }
}
