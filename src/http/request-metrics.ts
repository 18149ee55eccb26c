import type { FastifyInstance, onResponseHookHandler } from "fastify";
import type { Metrics, RequestRecorder } from "../observability/metrics.js";
import { routes } from "../paths.js";
import { UNMATCHED_ROUTE } from "./errors.js";

/** A pattern of the route table as a regular expression over a path: each `:param` one segment. */
function patternRegex(pattern: string): RegExp {
  const escaped = pattern.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace(/:[A-Za-z]+/g, "[^/]+");
  return new RegExp(`^${escaped}/?$`);
}

/**
 * The recorder for a request no Fastify route took: the route-table pattern its path matches — the OpenID Provider's
 * endpoints (served by oidc-provider from an onRequest hook), or a method the path does not take (405) — or
 * `unmatched` for every other path (404), so a scan of random URLs adds one series, not one per URL.
 */
function routelessRecorder(metrics: Metrics): (path: string) => RequestRecorder {
  const patterns = [...new Set(Object.values(routes))].map((pattern) => ({ regex: patternRegex(pattern), pattern }));
  const recorders = new Map<string, RequestRecorder>();
  const recorderFor = (pattern: string): RequestRecorder => {
    let recorder = recorders.get(pattern);
    if (recorder === undefined) {
      recorder = metrics.requestRecorder(pattern);
      recorders.set(pattern, recorder);
    }
    return recorder;
  };
  return (path) => recorderFor(patterns.find(({ regex }) => regex.test(path))?.pattern ?? UNMATCHED_ROUTE);
}

/**
 * The request duration histogram (`latchkey_http_request_duration_seconds`), labelled by route pattern — never the
 * URL, whose tokens and ids would make a series per request — method and status.
 *
 * Each route gets its own onResponse hook when it is registered, holding that route's recorder: per answer one
 * call and one observation, with no look-up of the route and no label object built. Requests no Fastify route takes
 * go through one app-wide hook (see `routelessRecorder`). Nothing is registered when metrics are off.
 */
export function registerRequestMetrics(app: FastifyInstance, metrics: Metrics): void {
  if (!metrics.enabled) return;
  app.addHook("onRoute", (route) => {
    const record = metrics.requestRecorder(route.url);
    const observe: onResponseHookHandler = (request, reply, done) => {
      record(request.method, reply.statusCode, reply.elapsedTime / 1000);
      done();
    };
    route.onResponse = [...(route.onResponse === undefined ? [] : [route.onResponse].flat()), observe];
  });
  const routeless = routelessRecorder(metrics);
  app.addHook("onResponse", (request, reply, done) => {
    if (request.is404) routeless(request.url.split("?")[0] ?? "")(request.method, reply.statusCode, reply.elapsedTime / 1000);
    done();
  });
}
