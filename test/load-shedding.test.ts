import type { LightMyRequestResponse } from "fastify";
import { afterEach, expect, it } from "vitest";
import { defaultLimits } from "../src/config.js";
import { startTestApp, type TestApp } from "./helpers/app.js";
import { describeEachDialect } from "./helpers/dialects.js";

/**
 * Load shedding (issue 10): while the event loop lags more than `overloadEventLoopDelayMs` (averaged over a sample
 * interval), the server answers 503 `service_unavailable` with Retry-After at once, instead of queueing work without
 * bound. Overload is made for real: a tiny threshold, and the event loop blocked by a busy loop.
 */

const opened: TestApp[] = [];
afterEach(async () => {
  for (const t of opened.splice(0)) await t.close();
});

/** Blocks the event loop for `ms`, as a burst of synchronous work under overload would. */
function busyFor(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // spin
  }
}

/**
 * Asks `path` until `until` holds (bounded): the sampler decides within a sample interval or two. `pauseMs` 0 asks again
 * on the next turn of the event loop: with a 10 ms sample interval the shedding lasts one interval, which a 5 ms pause
 * plus a slow answer on a busy CI machine could miss.
 */
async function askUntil(
  t: TestApp,
  path: string,
  until: (r: LightMyRequestResponse) => boolean,
  pauseMs = 5,
): Promise<LightMyRequestResponse> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const response = await t.app.inject({ method: "GET", url: path });
    if (until(response) || Date.now() > deadline) return response;
    await new Promise((resolve) => (pauseMs === 0 ? setImmediate(resolve) : setTimeout(resolve, pauseMs)));
  }
}

describeEachDialect("load shedding", (dialect) => {
  it("has limits: a lag of 1 s averaged over a second sheds, with Retry-After 10 s", () => {
    expect(defaultLimits.overloadEventLoopDelayMs).toBe(1000);
    expect(defaultLimits.overloadSampleIntervalMs).toBe(1000);
    expect(defaultLimits.overloadRetryAfterSeconds).toBe(10);
  });

  it("answers 503 with Retry-After in the error format while the event loop lags, then serves again", async () => {
    const t = await startTestApp(dialect, { limits: { overloadEventLoopDelayMs: 50, overloadSampleIntervalMs: 100 } });
    opened.push(t);
    // Probes are never shed (test/health.readiness.test.ts): the session check stands for every other request.
    expect((await t.app.inject({ method: "GET", url: "/api/v1/session" })).statusCode).toBe(401);

    busyFor(1000);
    const api = await askUntil(t, "/api/v1/session", (r) => r.statusCode === 503);
    expect(api.statusCode).toBe(503);
    expect(api.headers["retry-after"]).toBe(String(defaultLimits.overloadRetryAfterSeconds));
    expect(api.json()).toMatchObject({ error: "service_unavailable" });

    busyFor(1000);
    const page = await askUntil(t, "/login", (r) => r.statusCode === 503);
    expect(page.statusCode).toBe(503);
    expect(page.headers["retry-after"]).toBe(String(defaultLimits.overloadRetryAfterSeconds));
    expect(page.headers["content-type"]).toMatch(/^text\/html/);
    // A shed answer is still one of ours: the security headers and no caching.
    expect(page.headers["content-security-policy"]).toMatch(/^default-src 'none'/);
    expect(page.headers["cache-control"]).toBe("no-store");

    // Once the loop keeps up again, requests are served.
    expect((await askUntil(t, "/api/v1/session", (r) => r.statusCode === 401)).statusCode).toBe(401);
  });

  it("does not shed at the default limits for a short burst of work", async () => {
    const t = await startTestApp(dialect, { limits: { overloadEventLoopDelayMs: defaultLimits.overloadEventLoopDelayMs } });
    opened.push(t);
    busyFor(150);
    // Past the next sample (1 s): the burst is averaged with the rest of the interval.
    const until = Date.now() + 1.5 * defaultLimits.overloadSampleIntervalMs;
    while (Date.now() < until) {
      expect((await t.app.inject({ method: "GET", url: "/api/v1/session" })).statusCode).toBe(401);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  });

  it("does not shed for a block under the threshold that the histogram missed (no sample in the interval)", async () => {
    // A sample every 10 ms (the histogram's resolution): a block right after a reset leaves the interval without a
    // sample. That used to count as overload whatever the threshold, and shed requests with shedding "off" on a busy
    // CI machine (the module loading of a test's first request is such a block).
    const t = await startTestApp(dialect, { limits: { overloadSampleIntervalMs: 10 } });
    opened.push(t);
    for (let i = 0; i < 5; i++) {
      busyFor(300);
      await new Promise((resolve) => setTimeout(resolve, 15));
      expect((await t.app.inject({ method: "GET", url: "/api/v1/session" })).statusCode).toBe(401);
    }
  });

  it("sheds after a block past the threshold even when the histogram missed it", async () => {
    const t = await startTestApp(dialect, { limits: { overloadEventLoopDelayMs: 100, overloadSampleIntervalMs: 10 } });
    opened.push(t);
    busyFor(400);
    expect((await askUntil(t, "/api/v1/session", (r) => r.statusCode === 503, 0)).statusCode).toBe(503);
  });
});
