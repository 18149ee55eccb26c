import type { FastifyInstance, FastifyRequest } from "fastify";

type RouteConfig = FastifyRequest["routeOptions"]["config"];

declare module "fastify" {
  interface FastifyRequest {
    /** The route's config, once read (`routeConfigOf`). */
    latchkeyRouteConfig: RouteConfig | null;
  }
}

/** Gives every request the slot `routeConfigOf` fills: before any hook reads it. */
export function registerRouteConfig(app: FastifyInstance): void {
  app.decorateRequest("latchkeyRouteConfig", null);
}

/**
 * The config the request's route declared (`access`, `api`, `hotPath`, `probe` …), read once per request: Fastify's
 * `request.routeOptions` builds a new object of a dozen fields on every read, and the session check read it five
 * times (issue 10).
 */
export function routeConfigOf(request: FastifyRequest): RouteConfig {
  return (request.latchkeyRouteConfig ??= request.routeOptions.config);
}
