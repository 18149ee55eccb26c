import { constants } from "node:os";
import type { FastifyBaseLogger, FastifyInstance } from "fastify";
import type { Limits } from "./config.js";

/** What a graceful shutdown stops, in order after the HTTP drain. */
export interface ShutdownParts {
  /** The listening app (its `drain`, src/http/drain.ts). */
  app: FastifyInstance;
  /** The background jobs: no new run from the signal on; runs in progress are awaited. */
  jobs: { stop(): Promise<void> };
  /** Redis, the database pools, the mail transport. */
  runtime: { close(): Promise<void> };
  limits: Pick<Limits, "shutdownSeconds" | "shutdownCloseReserveMs">;
  log: FastifyBaseLogger;
  /** process.exit, or a stand-in in tests. */
  exit: (code: number) => void;
}

/**
 * Graceful shutdown on SIGTERM and SIGINT, bounded by `LATCHKEY_SHUTDOWN_SECONDS` whatever clients do: the server stops
 * accepting, idle connections close at once, requests in flight finish until shortly before the bound
 * (`shutdownCloseReserveMs`), then the remaining connections are dropped; the background jobs stop, Redis and the
 * database pools close, and the process exits 0. Should closing itself hang (a database that no longer answers), a
 * timer at the bound exits 1, naming the step. A second signal exits at once. Returns a function that removes the
 * signal handlers again (for tests).
 */
export function exitGracefullyOnSignals(parts: ShutdownParts): () => void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      parts.log.warn({ signal }, "second signal: exiting at once");
      // 128 + the signal's number, as a shell reports a process the signal ended.
      parts.exit(128 + (constants.signals[signal] ?? 0));
      return;
    }
    stopping = true;
    shutDown(parts, signal).then(
      () => parts.exit(0),
      (error: unknown) => {
        parts.log.error({ err: error }, "shutdown failed");
        parts.exit(1);
      },
    );
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  return () => {
    process.off("SIGTERM", onSignal);
    process.off("SIGINT", onSignal);
  };
}

async function shutDown(parts: ShutdownParts, signal: NodeJS.Signals): Promise<void> {
  const { app, jobs, runtime, limits, log } = parts;
  const boundMs = limits.shutdownSeconds * 1000;
  let step = "finishing the requests in flight";
  const hard = setTimeout(() => {
    log.error({ step, shutdownSeconds: limits.shutdownSeconds }, "shutdown did not finish within LATCHKEY_SHUTDOWN_SECONDS: exiting");
    parts.exit(1);
  }, boundMs);
  log.info({ signal, shutdownSeconds: limits.shutdownSeconds }, "shutting down: finishing the requests in flight");
  const jobsStopped = jobs.stop();
  const { dropped } = await app.drain.drain(Math.max(0, boundMs - limits.shutdownCloseReserveMs));
  if (dropped > 0) log.warn({ dropped }, "shutdown: dropped connections whose requests had not finished in time");
  step = "waiting for the background jobs in progress";
  await jobsStopped;
  step = "closing Redis and the database";
  await runtime.close();
  clearTimeout(hard);
  log.info("stopped");
}
