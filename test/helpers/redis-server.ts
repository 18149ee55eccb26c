import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { freePort } from "./ports.js";

const REDIS_SERVER = "/usr/bin/redis-server";
/** How long a redis-server of ours may take to accept connections. */
const START_TIMEOUT_MS = 10_000;

/** A redis-server of the test's own on a free loopback port (nothing saved), to stop and start at will. */
export interface OwnRedis {
  url: string;
  stop(): Promise<void>;
  start(): Promise<void>;
}

export function redisServerAvailable(): boolean {
  const available = existsSync(REDIS_SERVER);
  if (!available && process.env["CI"]) throw new Error(`CI needs ${REDIS_SERVER} to run the Redis outage tests`);
  if (!available) console.warn(`${REDIS_SERVER} is not installed: skipping the tests that stop Redis.`);
  return available;
}

export async function startOwnRedis(): Promise<OwnRedis> {
  const port = await freePort();
  let child: ChildProcess | undefined;
  const start = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const proc = spawn(REDIS_SERVER, ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
        stdio: ["ignore", "pipe", "pipe"],
      });
      child = proc;
      let output = "";
      const timer = setTimeout(() => reject(new Error(`redis-server did not start: ${output}`)), START_TIMEOUT_MS);
      proc.stdout?.on("data", (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes("Ready to accept connections")) {
          clearTimeout(timer);
          resolve();
        }
      });
      proc.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`redis-server exited with ${code}: ${output}`));
      });
    });
  const stop = async (): Promise<void> => {
    const proc = child;
    child = undefined;
    if (!proc || proc.exitCode !== null) return;
    const exited = new Promise((resolve) => proc.once("exit", resolve));
    proc.kill("SIGTERM");
    await exited;
  };
  await start();
  return { url: `redis://127.0.0.1:${port}/0`, stop, start };
}
