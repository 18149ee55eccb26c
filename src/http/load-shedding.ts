import { monitorEventLoopDelay } from "node:perf_hooks";
import type { FastifyInstance } from "fastify";
import type { Limits } from "../config.js";
import { sendError } from "./errors.js";
import { routeConfigOf } from "./route-config.js";

/** The event-loop delay histogram's resolution (as @fastify/under-pressure): the lag is measured beyond it. */
const RESOLUTION_MS = 10;

/**
 * Load shedding: under overload the server answers 503 `service_unavailable` with `Retry-After` at once, rather than
 * queueing requests without bound behind a saturated event loop (each then answered too late to be of use, while
 * holding memory). Overload is what @fastify/under-pressure's `maxEventLoopDelay` measures: the event loop's mean lag
 * over a sample interval, above `overloadEventLoopDelayMs`. The decision is renewed every interval, so serving resumes
 * as soon as the loop keeps up. A shed request does no other work (no session look-up, no log line of its own).
 */
export function registerLoadShedding(app: FastifyInstance, limits: Limits): void {
  const histogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  histogram.enable();
  let overloaded = false;
  let sampledAt = performance.now();
  const sample = (): void => {
    const at = performance.now();
    // How late this very callback runs: the loop lagged at least that much.
    const lateMs = Math.max(0, at - sampledAt - limits.overloadSampleIntervalMs);
    sampledAt = at;
    const meanLagMs = histogram.mean / 1e6 - RESOLUTION_MS;
    histogram.reset();
    // No sample at all in the interval (a block that began right after the last reset: the histogram records only
    // the ticks after it) is measured by the sampler's own lateness instead. Counting it as overload whatever its
    // length shed requests at any threshold, even with shedding "off" in tests on a busy machine.
    const lagMs = Number.isNaN(meanLagMs) ? lateMs : Math.max(0, meanLagMs);
    const now = lagMs > limits.overloadEventLoopDelayMs;
    if (now !== overloaded) {
      overloaded = now;
      if (now) app.log.warn({ eventLoopLagMs: Math.round(lagMs) }, "overloaded: shedding requests with 503");
      else app.log.warn("load back to normal: serving requests again");
    }
  };
  const timer = setInterval(sample, limits.overloadSampleIntervalMs);
  timer.unref();
  app.addHook("onClose", (_app, done) => {
    clearInterval(timer);
    histogram.disable();
    done();
  });
  const retryAfterSeconds = limits.overloadRetryAfterSeconds;
  app.addHook("onRequest", (request, reply, done) => {
    // Probes are exempt: a busy process is alive, and taking every overloaded instance out of rotation at once
    // (readiness) would turn overload into an outage; overload is answered per request instead.
    if (!overloaded || routeConfigOf(request).probe === true) return done();
    // Answered here, not thrown: the error handler would log each shed request, the last thing an overloaded server needs.
    sendError(request, reply, "service_unavailable", `The server is overloaded. Try again in ${retryAfterSeconds} seconds.`, {
      retryAfterSeconds,
    });
  });
}
