import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { TEST_SECRET_KEY } from "./helpers/app.js";
import { POSTGRES_ADMIN_URL, postgresAvailable } from "./helpers/databases.js";
import { freePort } from "./helpers/ports.js";
import { CLI_ARGS } from "./helpers/serve-process.js";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** Runs `latchkey ARGS` as an operator would, logging at info (so an announcement would show), with a fresh data dir. */
function latchkey(args: string[], env: Record<string, string>): Promise<Run> {
  const dataDir = mkdtempSync(join(tmpdir(), "latchkey-startup-"));
  dirs.push(dataDir);
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [...CLI_ARGS, ...args],
      {
        env: { PATH: process.env["PATH"] ?? "", HOME: process.env["HOME"] ?? "", LOG_LEVEL: "info", LATCHKEY_DATA_DIR: dataDir, ...env },
        // Each failure must end the process by itself; this only stops a test that would hang.
        timeout: 40_000,
      },
      (error, stdout, stderr) => resolve({ code: error ? (typeof error.code === "number" ? error.code : -1) : 0, stdout, stderr }),
    );
  });
}

/** The one line a failed start-up prints; fails the test if there is not exactly one, or if it announced itself. */
function onlyLine(run: Run): string {
  expect(run.code, run.stderr).toBe(1);
  expect(run.stdout).not.toMatch(/running/i);
  const lines = run.stderr.split("\n").filter((line) => line !== "");
  expect(lines, run.stderr).toHaveLength(1);
  return lines[0] ?? "";
}

const PASSWORD = "s3cret-Pa55";

describe("start-up failures name what failed, in one line, and exit 1", () => {
  it("PostgreSQL unreachable: `serve --no-migrate` names the database (without its password) and never says it is running", async () => {
    const port = await freePort();
    const url = `postgres://latchkey:${PASSWORD}@127.0.0.1:${port}/latchkey`;
    const run = await latchkey(["serve", "--no-migrate"], { DATABASE_URL: url, LATCHKEY_SECRET_KEY: TEST_SECRET_KEY });
    const line = onlyLine(run);
    expect(line).toBe(
      `latchkey: cannot connect to the database postgres://latchkey:***@127.0.0.1:${port}/latchkey: connect ECONNREFUSED 127.0.0.1:${port}`,
    );
    expect(run.stderr + run.stdout).not.toContain(PASSWORD);
  });

  it.each([
    ["serve", ["serve"]],
    ["migrate", ["migrate"]],
    ["a command that uses the database", ["api-token", "list"]],
  ])("PostgreSQL unreachable: %s says the same", async (_label, args) => {
    const port = await freePort();
    const url = `postgresql://127.0.0.1:${port}/latchkey?user=latchkey&password=${PASSWORD}`;
    const line = onlyLine(await latchkey(args, { DATABASE_URL: url, LATCHKEY_SECRET_KEY: TEST_SECRET_KEY }));
    expect(line).toMatch(new RegExp(`^latchkey: cannot connect to the database postgresql://127\\.0\\.0\\.1:${port}/latchkey\\?`));
    expect(line).toContain("password=***");
    expect(line).toContain("ECONNREFUSED");
    expect(line).not.toContain(PASSWORD);
  });

  it("PostgreSQL up but the database missing: says so, naming it", async (context) => {
    if (!(await postgresAvailable())) return context.skip();
    const url = new URL(POSTGRES_ADMIN_URL);
    url.pathname = "/latchkey_no_such_database";
    const line = onlyLine(await latchkey(["serve", "--no-migrate"], { DATABASE_URL: url.href, LATCHKEY_SECRET_KEY: TEST_SECRET_KEY }));
    expect(line).toMatch(/^latchkey: cannot connect to the database postgres:\/\/.*\/latchkey_no_such_database: /);
    expect(line).toContain('database "latchkey_no_such_database" does not exist');
  });

  it("Redis unreachable: names Redis (without its password) and never says it is running", async () => {
    const port = await freePort();
    const run = await latchkey(["serve"], { REDIS_URL: `redis://:${PASSWORD}@127.0.0.1:${port}/0` });
    const line = onlyLine(run);
    expect(line).toBe(`latchkey: cannot connect to Redis at redis://:***@127.0.0.1:${port}/0: connect ECONNREFUSED 127.0.0.1:${port}`);
    expect(run.stderr + run.stdout).not.toContain(PASSWORD);
  });

  describe("the port", () => {
    let occupier: Server | undefined;
    afterAll(() => {
      occupier?.close();
    });

    it("in use: says the port is taken and which variable to set", async () => {
      occupier = createServer();
      const port = await new Promise<number>((resolve) => {
        occupier?.listen(0, "127.0.0.1", () => {
          const address = occupier?.address();
          resolve(typeof address === "object" && address ? address.port : 0);
        });
      });
      const run = await latchkey(["serve"], { PORT: String(port) });
      expect(onlyLine(run)).toBe(
        `latchkey: cannot listen on 127.0.0.1:${port}: the port is already in use by another process (set PORT, or stop the other process)`,
      );
    });

    it("on an address that is not this machine's: says so and names HOST", async () => {
      // 192.0.2.0/24 is TEST-NET-1 (RFC 5737): never a local address.
      const run = await latchkey(["serve"], { HOST: "192.0.2.1", PORT: String(await freePort()) });
      expect(onlyLine(run)).toMatch(
        /^latchkey: cannot listen on 192\.0\.2\.1:\d+: the address 192\.0\.2\.1 is not one of this machine's \(set HOST\)$/,
      );
    });
  });
});
