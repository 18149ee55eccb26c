import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { freePort } from "./helpers/ports.js";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { TestClock } from "../src/clock.js";
import { loadConfig } from "../src/config.js";
import { connect, sqliteFileIn } from "../src/db/connect.js";
import { DatabaseAttemptStore } from "../src/auth/attempts.js";
import { hashToken } from "../src/auth/tokens.js";
import { buildApp } from "../src/server.js";
import { Browser, MemoryMailer, signedInBrowser, type TestApp } from "./helpers/app.js";

const CLI = ["--import", "tsx", join(process.cwd(), "src/cli.ts")];

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `latchkey ARGS` with only the variables given (plus PATH/HOME), as an operator would. */
function latchkey(args: string[], env: Record<string, string>): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [...CLI, ...args],
      { env: { PATH: process.env["PATH"] ?? "", HOME: process.env["HOME"] ?? "", LOG_LEVEL: "silent", ...env }, timeout: 45_000, cwd: process.cwd() },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

function lastLine(text: string): string {
  return text.trimEnd().split("\n").pop() ?? "";
}


describe("latchkey CLI", () => {
  const dirs: string[] = [];
  function dataDir(): string {
    const dir = mkdtempSync(join(tmpdir(), "latchkey-cli-"));
    dirs.push(dir);
    return dir;
  }
  afterAll(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it("--help lists the commands", async () => {
    const run = await latchkey(["--help"], { LATCHKEY_DATA_DIR: dataDir() });
    expect(run.code).toBe(0);
    for (const command of ["serve", "migrate", "account"]) expect(run.stdout).toMatch(new RegExp(`^\\s+${command}\\b`, "m"));
  });

  it("account create --help lists --name and --admin-email", async () => {
    const run = await latchkey(["account", "create", "--help"], { LATCHKEY_DATA_DIR: dataDir() });
    expect(run.code).toBe(0);
    expect(run.stdout).toContain("--name <name>");
    expect(run.stdout).toContain("--admin-email <email>");
    expect(run.stdout).toContain("invitation URL");
  });

  it("migrate applies the migrations, then says the database is up to date", async () => {
    const dir = dataDir();
    const first = await latchkey(["migrate"], { LATCHKEY_DATA_DIR: dir });
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/^Applied \d+ migration\(s\): 0001_core/);
    const second = await latchkey(["migrate"], { LATCHKEY_DATA_DIR: dir });
    expect(second.code).toBe(0);
    expect(second.stdout.trim()).toBe("The database is up to date.");
  });

  it("a bad environment value stops with exit 1 and one line naming the variable", async () => {
    const run = await latchkey(["migrate"], { LATCHKEY_DATA_DIR: dataDir(), PORT: "abc" });
    expect(run.code).toBe(1);
    expect(run.stdout).toBe("");
    const lines = run.stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/PORT/);
    expect(lines[0]).toMatch(/whole number/);
  });

  it("PostgreSQL without LATCHKEY_SECRET_KEY refuses to start and says why", async () => {
    const run = await latchkey(["migrate"], { LATCHKEY_DATA_DIR: dataDir(), DATABASE_URL: "postgres://postgres@127.0.0.1:5432/test" });
    expect(run.code).toBe(1);
    expect(run.stderr.trim().split("\n")).toHaveLength(1);
    expect(run.stderr).toMatch(/LATCHKEY_SECRET_KEY: required with PostgreSQL/);
  });

  it("account create without --admin-email exits non-zero and names the missing option", async () => {
    const run = await latchkey(["account", "create", "--name", "Acme"], { LATCHKEY_DATA_DIR: dataDir() });
    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain("required option '--admin-email <email>' not specified");
  });

  it("account create with a malformed email exits 1 with the reason and creates nothing", async () => {
    const dir = dataDir();
    const run = await latchkey(["account", "create", "--name", "Acme", "--admin-email", "not-an-email"], { LATCHKEY_DATA_DIR: dir });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/email address/);
    expect(run.stdout).not.toMatch(/\/invite\//);
    const store = connect({ databaseUrl: undefined, sqliteFile: sqliteFileIn(dir) });
    try {
      expect(await store.db.selectFrom("accounts").select("id").execute()).toHaveLength(0);
    } finally {
      await store.close();
    }
  });

  describe("account create", () => {
    let dir: string;
    let run: Run;
    let t: Pick<TestApp, "app" | "ctx" | "mail" | "clock" | "config"> & { close(): Promise<void> };

    beforeAll(async () => {
      dir = dataDir();
      run = await latchkey(["account", "create", "--name", "Acme", "--admin-email", "a@example.com"], { LATCHKEY_DATA_DIR: dir });
      // The same SQLite file and secret key the CLI used, served by an in-process app.
      const config = loadConfig({ LATCHKEY_DATA_DIR: dir, LOG_LEVEL: "silent" });
      const store = connect({ databaseUrl: undefined, sqliteFile: sqliteFileIn(dir) });
      const clock = new TestClock();
      const mail = new MemoryMailer();
      const ctx = { db: store.db, dialect: store.dialect, config, clock, mailer: mail, attempts: new DatabaseAttemptStore(store.db, clock) };
      const app = await buildApp(ctx, { logger: false });
      t = { app, ctx, mail, clock, config, close: async () => (await app.close(), await store.close()) };
    });
    afterAll(async () => {
      await t?.close();
    });

    it("exits 0 and prints the invitation URL as the last line", () => {
      expect(run.stderr).toBe("");
      expect(run.code).toBe(0);
      expect(lastLine(run.stdout)).toMatch(/^http:\/\/localhost:3000\/invite\/[A-Za-z0-9_-]{43}$/);
      expect(run.stdout).toContain('Created account "Acme"');
    });

    it("the printed URL is an open admin invitation, stored by its hash", async () => {
      const token = lastLine(run.stdout).split("/").pop() as string;
      const row = await t.ctx.db
        .selectFrom("invitations")
        .innerJoin("accounts", "accounts.id", "invitations.account_id")
        .select(["invitations.email", "invitations.role", "invitations.accepted_at", "accounts.name"])
        .where("invitations.token_hash", "=", hashToken(token))
        .executeTakeFirst();
      expect(row).toEqual({ email: "a@example.com", role: "admin", accepted_at: null, name: "Acme" });
    });

    it("the printed URL opens the invitation page, sets a password, and the admin signs in", async () => {
      const path = new URL(lastLine(run.stdout)).pathname;
      const browser = new Browser(t.app);
      const page = await browser.get(path);
      expect(page.statusCode).toBe(200);
      expect(page.body).toContain("a@example.com");
      expect(page.body).toContain("Join Acme");
      const accepted = await browser.submit(path, path, { name: "Admin", password: "the admin's own passphrase" });
      expect(accepted.statusCode).toBe(303);
      const signedIn = await signedInBrowser(t as TestApp, { email: "a@example.com", password: "the admin's own passphrase" });
      expect((await signedIn.get("/api/v1/session")).json()).toMatchObject({ account: { name: "Acme" }, role: "admin" });
    });
  });

  describe("serve", () => {
    let child: ChildProcess | undefined;
    afterEach(async () => {
      if (child && child.exitCode === null) {
        const exited = new Promise((resolve) => child?.once("exit", resolve));
        child.kill("SIGTERM");
        await exited;
      }
      child = undefined;
    });

    it("prints its URL and, on an empty database, a one-time setup link that opens the setup page", async () => {
      const port = await freePort();
      const dir = dataDir();
      child = spawn(process.execPath, [...CLI, "serve"], {
        env: { PATH: process.env["PATH"] ?? "", HOME: process.env["HOME"] ?? "", LATCHKEY_DATA_DIR: dir, PORT: String(port), LOG_LEVEL: "silent" },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
      const link = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no setup link within 40 s; stdout: ${stdout}; stderr: ${stderr}`)), 40_000);
        child?.stdout?.on("data", (chunk: Buffer) => {
          stdout += chunk.toString();
          const match = /(http:\/\/localhost:\d+\/setup\/[A-Za-z0-9_-]{43})/.exec(stdout);
          if (match?.[1]) {
            clearTimeout(timer);
            resolve(match[1]);
          }
        });
        child?.once("exit", (code) => reject(new Error(`serve exited with ${code}; stderr: ${stderr}`)));
      });
      expect(stdout).toContain(`Latchkey is running at http://localhost:${port}`);
      expect(stdout).toContain("one-time link");
      expect(link.startsWith(`http://localhost:${port}/setup/`)).toBe(true);

      const page = await fetch(link.replace("localhost", "127.0.0.1"));
      expect(page.status).toBe(200);
      const body = await page.text();
      expect(body).toContain("Set up Latchkey");
      expect(body).toContain(">Account name</label>");

      const health = await fetch(`http://127.0.0.1:${port}/healthz`);
      expect(await health.json()).toEqual({ ok: true });

      const exited = new Promise<number | null>((resolve) => child?.once("exit", resolve));
      child.kill("SIGTERM");
      expect(await exited).toBe(0);
    });
  });
});
