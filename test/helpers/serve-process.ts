import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./ports.js";

/** `latchkey` from the sources, as the CLI tests run it. */
export const CLI_ARGS = ["--import", "tsx", join(process.cwd(), "src/cli.ts")];

/** One JSON log line of the server (pino's fields plus ours). */
export interface LogLine {
  level: number;
  msg: string;
  reqId?: string;
  [field: string]: unknown;
}

/** The JSON lines of a stdout (every line must be one: the log stream is one format). */
export function jsonLines(stdout: string): LogLine[] {
  return stdout
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => {
      try {
        return JSON.parse(line) as LogLine;
      } catch {
        throw new Error(`a stdout line that is not JSON: ${line}`);
      }
    });
}

export interface ServeProcess {
  child: ChildProcess;
  port: number;
  origin: string;
  dataDir: string;
  stdout(): string;
  stderr(): string;
  /** The JSON lines written so far. */
  lines(): LogLine[];
  /** Resolves with the first JSON line matching, once written. */
  waitForLine(match: (line: LogLine) => boolean, what: string, timeoutMs?: number): Promise<LogLine>;
  /** Resolves with the exit code (or the signal's name) once the process has exited and its output has all been read. */
  exited: Promise<number | string>;
  /** Ends it if still running (SIGKILL: tests that care send their own signals) and removes its data dir. */
  cleanup(): Promise<void>;
}

/**
 * A real `latchkey serve` in its own process on a free loopback port, SQLite in a fresh data dir, logging at info
 * (stdout is a pipe, so notices are JSON lines there). Resolves once it said "Latchkey is running".
 */
export async function startServe(env: Record<string, string> = {}, args: string[] = []): Promise<ServeProcess> {
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), "latchkey-serve-"));
  const child = spawn(process.execPath, [...CLI_ARGS, "serve", ...args], {
    env: {
      PATH: process.env["PATH"] ?? "",
      HOME: process.env["HOME"] ?? "",
      PORT: String(port),
      // Reached by IP, so the public URL says so too (a localhost public URL would redirect 127.0.0.1 requests).
      LATCHKEY_PUBLIC_URL: `http://127.0.0.1:${port}`,
      LATCHKEY_DATA_DIR: dataDir,
      LOG_LEVEL: "info",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  const waiters: Array<() => void> = [];
  child.stdout?.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
    for (const wake of waiters.splice(0)) wake();
  });
  child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  // "close", not "exit": "exit" may come before the last of stdout has been read from the pipe, and a test reading
  // the log right after the exit then misses its last lines (the shutdown test saw "request completed" as the last line,
  // the "stopped" after it still in the pipe).
  const exited = new Promise<number | string>((resolve) =>
    child.once("close", (code, signal) => {
      resolve(code ?? signal ?? "unknown");
      for (const wake of waiters.splice(0)) wake();
    }),
  );
  const complete = (): LogLine[] => jsonLines(stdout.slice(0, stdout.lastIndexOf("\n") + 1));
  const waitForLine = async (match: (line: LogLine) => boolean, what: string, timeoutMs = 40_000): Promise<LogLine> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = complete().find(match);
      if (found) return found;
      if (child.exitCode !== null || child.signalCode !== null)
        throw new Error(`serve exited before ${what}; stdout: ${stdout}; stderr: ${stderr}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${what} within ${timeoutMs / 1000} s; stdout: ${stdout}; stderr: ${stderr}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  };
  const serve: ServeProcess = {
    child,
    port,
    origin: `http://127.0.0.1:${port}`,
    dataDir,
    stdout: () => stdout,
    stderr: () => stderr,
    lines: complete,
    waitForLine,
    exited,
    async cleanup() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGKILL");
        await exited;
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  try {
    await waitForLine((line) => line.msg === "Latchkey is running", '"Latchkey is running"');
  } catch (error) {
    await serve.cleanup();
    throw error;
  }
  return serve;
}
