import type { FastifyBaseLogger, FastifyInstance } from "fastify";
import { afterEach, describe, expect, it } from "vitest";
import { exitGracefullyOnSignals, type ShutdownParts } from "../src/shutdown.js";

interface Logged {
  level: string;
  msg: string;
  fields: Record<string, unknown>;
}

/** The parts of a server with stand-ins: each step resolves when the test says, and every log line and exit is kept. */
function fakeParts(
  shutdownSeconds: number,
  steps: { drain?: (ms: number) => Promise<{ dropped: number }>; jobs?: () => Promise<void>; close?: () => Promise<void> },
): {
  parts: ShutdownParts;
  logged: Logged[];
  exits: number[];
  exited: Promise<number>;
} {
  const logged: Logged[] = [];
  const exits: number[] = [];
  let exitedWith: (code: number) => void = () => undefined;
  const exited = new Promise<number>((resolve) => (exitedWith = resolve));
  const line =
    (level: string) =>
    (fields: Record<string, unknown> | string, msg?: string): void =>
      void logged.push(typeof fields === "string" ? { level, msg: fields, fields: {} } : { level, msg: msg ?? "", fields });
  const log = { info: line("info"), warn: line("warn"), error: line("error") } as unknown as FastifyBaseLogger;
  const app = { drain: { drain: steps.drain ?? (async () => ({ dropped: 0 })) } } as unknown as FastifyInstance;
  return {
    parts: {
      app,
      jobs: { stop: steps.jobs ?? (async () => undefined) },
      runtime: { close: steps.close ?? (async () => undefined) },
      limits: { shutdownSeconds, shutdownCloseReserveMs: 500 },
      log,
      exit: (code) => {
        exits.push(code);
        exitedWith(code);
      },
    },
    logged,
    exits,
    exited,
  };
}

const never = (): Promise<never> => new Promise<never>(() => undefined);

describe("shutdown steps", () => {
  let uninstall: (() => void) | undefined;
  afterEach(() => {
    uninstall?.();
    uninstall = undefined;
  });

  it("drains with the bound less the close reserve, stops the jobs, closes the runtime, exits 0", async () => {
    const order: string[] = [];
    let drainMs = -1;
    const { parts, logged, exited } = fakeParts(3, {
      drain: async (ms) => {
        drainMs = ms;
        order.push("drain");
        return { dropped: 0 };
      },
      jobs: async () => void order.push("jobs"),
      close: async () => void order.push("close"),
    });
    uninstall = exitGracefullyOnSignals(parts);
    process.emit("SIGTERM", "SIGTERM");
    expect(await exited).toBe(0);
    expect(drainMs).toBe(2_500);
    // The jobs were told to stop first (no new run), and awaited after the drain; the pools closed last.
    expect(order).toEqual(["jobs", "drain", "close"]);
    expect(logged.map((l) => l.msg)).toEqual(["shutting down: finishing the requests in flight", "stopped"]);
  });

  it("closing that hangs (a database that no longer answers) ends in exit 1 at the bound, naming the step", async () => {
    const { parts, logged, exited } = fakeParts(1, { close: never });
    uninstall = exitGracefullyOnSignals(parts);
    const started = Date.now();
    process.emit("SIGTERM", "SIGTERM");
    expect(await exited).toBe(1);
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    expect(logged.at(-1)).toMatchObject({
      level: "error",
      msg: "shutdown did not finish within LATCHKEY_SHUTDOWN_SECONDS: exiting",
      fields: { step: "closing Redis and the database", shutdownSeconds: 1 },
    });
  });

  it("a second signal exits at once with 128 + its number", async () => {
    const { parts, exits } = fakeParts(30, { drain: never });
    uninstall = exitGracefullyOnSignals(parts);
    process.emit("SIGTERM", "SIGTERM");
    process.emit("SIGINT", "SIGINT");
    expect(exits).toEqual([130]);
  });

  it("dropped connections are logged as a warning with their number", async () => {
    const { parts, logged, exited } = fakeParts(2, { drain: async () => ({ dropped: 3 }) });
    uninstall = exitGracefullyOnSignals(parts);
    process.emit("SIGINT", "SIGINT");
    expect(await exited).toBe(0);
    expect(logged.find((l) => l.level === "warn")).toMatchObject({ fields: { dropped: 3 } });
  });
});
