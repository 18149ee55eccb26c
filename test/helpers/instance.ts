import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { HttpClient } from "./http-client.js";

const CLI = ["--import", "tsx", join(process.cwd(), "src/cli.ts")];

/** `latchkey serve` as a real process, as an operator runs it (from the sources through tsx, like test/cli.test.ts). */
export class Instance {
  private child: ChildProcess | undefined;
  output = "";

  constructor(
    readonly port: number,
    private readonly env: Record<string, string>,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** The process id while it runs (for RSS readings). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** The process has not exited (by itself or by a signal). */
  get alive(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Started and answering (a load balancer's health check passed); false from the moment it is stopped. */
  ready = false;

  /** Starts the process and waits until `/healthz` answers (bounded). */
  async start(withinMs = 30_000): Promise<void> {
    const child = spawn(process.execPath, [...CLI, "serve", "--no-migrate"], {
      env: { PATH: process.env["PATH"] ?? "", HOME: process.env["HOME"] ?? "", PORT: String(this.port), LOG_LEVEL: "warn", ...this.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.child = child;
    child.stdout?.on("data", (chunk: Buffer) => (this.output += chunk.toString()));
    child.stderr?.on("data", (chunk: Buffer) => (this.output += chunk.toString()));
    const client = new HttpClient();
    const started = Date.now();
    while (Date.now() - started < withinMs) {
      if (child.exitCode !== null) throw new Error(`instance on ${this.port} exited with ${child.exitCode}: ${this.output.slice(-2000)}`);
      try {
        if ((await client.request(this.url, "GET", "/healthz", { timeoutMs: 1000 })).status === 200) {
          this.ready = true;
          return;
        }
      } catch {
        // not listening yet
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`instance on ${this.port} not healthy within ${withinMs} ms: ${this.output.slice(-2000)}`);
  }

  /** Sends `signal` and waits for the exit; returns the exit code (null when ended by the signal). */
  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<number | null> {
    const child = this.child;
    this.ready = false;
    if (!child || child.exitCode !== null || child.signalCode !== null) return child?.exitCode ?? null;
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    child.kill(signal);
    return exited;
  }
}
