import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { freePort } from "./helpers/ports.js";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { TestClock } from "./helpers/clock.js";
import { loadConfig } from "../src/config.js";
import { connect, migrateToLatest, sqliteFileIn } from "../src/db/connect.js";
import { hashToken, newId } from "../src/auth/tokens.js";
import { openRuntime } from "../src/runtime.js";
import { buildApp } from "../src/server.js";
import { Browser, deliverMailBeforeAnswer, MemoryMailer, signedInBrowser, type TestApp } from "./helpers/app.js";
import { jsonLines } from "./helpers/serve-process.js";
import { SmtpSink } from "./helpers/smtp-sink.js";

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
      {
        env: { PATH: process.env["PATH"] ?? "", HOME: process.env["HOME"] ?? "", LOG_LEVEL: "silent", ...env },
        timeout: 45_000,
        cwd: process.cwd(),
      },
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
    for (const command of ["serve", "migrate", "account", "api-token"]) expect(run.stdout).toMatch(new RegExp(`^\\s+${command}\\b`, "m"));
  });

  it("--version and -V print the package version and exit 0", async () => {
    const { version } = JSON.parse(readFileSync(join(process.cwd(), "package.json"), "utf8")) as { version: string };
    expect(version).toMatch(/^\d+\.\d+\.\d+/);
    for (const flag of ["--version", "-V"]) {
      const run = await latchkey([flag], { LATCHKEY_DATA_DIR: dataDir() });
      expect(run.code).toBe(0);
      expect(run.stdout).toBe(`${version}\n`);
      expect(run.stderr).toBe("");
    }
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
      const clock = new TestClock();
      const mail = new MemoryMailer();
      const runtime = await openRuntime(config, { clock, mailer: mail });
      const app = await buildApp(runtime.ctx, { logger: false });
      deliverMailBeforeAnswer(app, runtime.mailSender);
      t = { app, ctx: runtime.ctx, mail, clock, config, close: async () => (await app.close(), await runtime.close()) };
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

  describe("api-token", () => {
    let dir: string;
    let env: Record<string, string>;
    let created: Run;
    let t: Pick<TestApp, "app" | "ctx"> & { close(): Promise<void> };

    beforeAll(async () => {
      dir = dataDir();
      env = { LATCHKEY_DATA_DIR: dir };
      created = await latchkey(["api-token", "create", "--name", "provisioning"], env);
      // The same SQLite file the CLI used, served by an in-process app.
      const config = loadConfig({ LATCHKEY_DATA_DIR: dir, LOG_LEVEL: "silent" });
      const runtime = await openRuntime(config, { clock: new TestClock(), mailer: new MemoryMailer() });
      const app = await buildApp(runtime.ctx, { logger: false });
      t = { app, ctx: runtime.ctx, close: async () => (await app.close(), await runtime.close()) };
    });
    afterAll(async () => {
      await t?.close();
    });

    const listAccounts = (token: string) =>
      t.app.inject({ method: "GET", url: "/api/v1/admin/accounts", headers: { authorization: `Bearer ${token}` } });

    it("api-token --help lists create, list and revoke", async () => {
      const run = await latchkey(["api-token", "--help"], env);
      expect(run.code).toBe(0);
      for (const command of ["create", "list", "revoke"]) expect(run.stdout).toMatch(new RegExp(`^\\s+${command}\\b`, "m"));
      const create = await latchkey(["api-token", "create", "--help"], env);
      expect(create.stdout).toContain("--name <name>");
    });

    it("create prints the token once, as the last line, and stores only its hash", async () => {
      expect(created.stderr).toBe("");
      expect(created.code).toBe(0);
      const token = lastLine(created.stdout);
      expect(token).toMatch(/^lk_[A-Za-z0-9_-]{43}$/);
      expect(created.stdout).toContain('Created API token "provisioning"');
      expect(created.stdout).toContain("Authorization: Bearer");
      const rows = await t.ctx.db.selectFrom("api_tokens").selectAll().execute();
      expect(rows).toHaveLength(1);
      expect(rows[0]!.token_hash).toBe(hashToken(token));
      expect(JSON.stringify(rows)).not.toContain(token.slice(3));
      expect((await listAccounts(token)).statusCode).toBe(200);
    });

    it("list shows id, name, created, last used and revoked, never the token", async () => {
      const token = lastLine(created.stdout);
      const id = (await t.ctx.db.selectFrom("api_tokens").select("id").executeTakeFirstOrThrow()).id;
      const run = await latchkey(["api-token", "list"], env);
      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout).not.toContain(token.slice(3, 20));
      const line = run.stdout.split("\n").find((l) => l.startsWith(id));
      expect(line).toMatch(
        new RegExp(
          `^${id}  "provisioning"  created \\d{4}-\\d\\d-\\d\\dT[\\d:]+Z  last used (never|\\d{4}-\\d\\d-\\d\\dT[\\d:]+Z)  active$`,
        ),
      );
    });

    it("revoke ends the token at once: the API answers 401 and list says revoked", async () => {
      const token = lastLine(created.stdout);
      const second = await latchkey(["api-token", "create", "--name", "second"], env);
      const other = lastLine(second.stdout);
      const id = (await t.ctx.db.selectFrom("api_tokens").select("id").where("name", "=", "provisioning").executeTakeFirstOrThrow()).id;
      const run = await latchkey(["api-token", "revoke", id], env);
      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout).toContain('Revoked API token "provisioning"');
      const refused = await listAccounts(token);
      expect(refused.statusCode).toBe(401);
      expect(refused.json()).toMatchObject({ error: "invalid_token" });
      // Only that token: the other still works.
      expect((await listAccounts(other)).statusCode).toBe(200);
      const list = await latchkey(["api-token", "list"], env);
      expect(list.stdout.split("\n").find((l) => l.startsWith(id))).toMatch(/ {2}revoked \d{4}-\d\d-\d\dT[\d:]+Z$/);
      const again = await latchkey(["api-token", "revoke", id], env);
      expect(again.code).toBe(0);
      expect(again.stdout).toContain("already revoked");
    });

    it("revoke of an unknown id exits 1 and says so; create without --name or with a bad name exits non-zero and stores nothing", async () => {
      const unknown = await latchkey(["api-token", "revoke", newId()], env);
      expect(unknown.code).toBe(1);
      expect(unknown.stderr).toMatch(/no API token/);
      const before = (await t.ctx.db.selectFrom("api_tokens").select("id").execute()).length;
      const missing = await latchkey(["api-token", "create"], env);
      expect(missing.code).not.toBe(0);
      expect(missing.stderr).toContain("required option '--name <name>' not specified");
      const bad = await latchkey(["api-token", "create", "--name", "evil\u001b[2J"], env);
      expect(bad.code).toBe(1);
      expect(bad.stdout).toBe("");
      expect(bad.stderr).not.toContain("\u001b");
      expect((await t.ctx.db.selectFrom("api_tokens").select("id").execute()).length).toBe(before);
    });
  });

  describe("support commands and the mail server", () => {
    /** A confirmed support request of an auth-app user, pending the operator's decision, in a new data dir. */
    async function pendingRequest(): Promise<{ dir: string; requestId: string }> {
      const dir = dataDir();
      const now = Date.now();
      const requestId = newId();
      const store = connect({ databaseUrl: undefined, sqliteFile: sqliteFileIn(dir) });
      try {
        await migrateToLatest(store.db);
        const userId = newId();
        await store.db
          .insertInto("users")
          .values({
            id: userId,
            email: "pat@example.com",
            name: "Pat",
            password_hash: "x",
            two_factor_method: "auth_app",
            created_at: now,
            updated_at: now,
          })
          .execute();
        await store.db
          .insertInto("support_requests")
          .values({
            id: requestId,
            user_id: userId,
            email: "pat@example.com",
            message: "",
            status: "pending",
            confirm_token_hash: hashToken(newId()),
            cancel_token_hash: null,
            created_at: now,
            confirm_expires_at: now + 86_400_000,
            confirmed_at: now,
            decided_at: null,
            decided_by: null,
            decision_note: null,
            resets_at: null,
            completed_at: null,
            ip: null,
            user_agent: null,
          })
          .execute();
      } finally {
        await store.close();
      }
      return { dir, requestId };
    }

    it("deny still decides, tries the email once and says it is queued for the server, with the reason", async () => {
      const { dir, requestId } = await pendingRequest();
      const closedPort = await freePort();
      const run = await latchkey(["support", "deny", requestId], { LATCHKEY_DATA_DIR: dir, SMTP_URL: `smtp://127.0.0.1:${closedPort}` });
      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout).toMatch(
        /^Denied\. The email to "pat@example\.com" is queued: the server delivers it \(sending failed just now: .*ECONNREFUSED.*\); nothing changed\.\n$/,
      );
      const check = connect({ databaseUrl: undefined, sqliteFile: sqliteFileIn(dir) });
      try {
        const request = await check.db
          .selectFrom("support_requests")
          .select("status")
          .where("id", "=", requestId)
          .executeTakeFirstOrThrow();
        expect(request.status).toBe("denied");
        const row = await check.db.selectFrom("mail_queue").select(["attempts", "sent_at", "failed_at"]).executeTakeFirstOrThrow();
        expect(row).toEqual({ attempts: 1, sent_at: null, failed_at: null });
      } finally {
        await check.close();
      }
    });

    it("deny with the mail server up: the email is sent and the command exits at once (its SMTP connection closed, not left open)", async () => {
      const { dir, requestId } = await pendingRequest();
      const smtp = new SmtpSink();
      await smtp.start();
      try {
        const started = Date.now();
        const run = await latchkey(["support", "deny", requestId], { LATCHKEY_DATA_DIR: dir, SMTP_URL: `smtp://127.0.0.1:${smtp.port}` });
        const seconds = (Date.now() - started) / 1000;
        expect(run.code, run.stderr).toBe(0);
        expect(run.stdout).toBe('Denied. "pat@example.com" was emailed; nothing changed.\n');
        expect(smtp.to("pat@example.com")).toHaveLength(1);
        // A pooled connection left open would keep the process alive until the 30 s socket timeout.
        expect(seconds).toBeLessThan(15);
      } finally {
        await smtp.stop();
      }
    });
  });

  /**
   * Security review F6: text that people outside the operator wrote (a support message, a User-Agent, an email
   * address, names) must not forge lines or send escape sequences to the operator's terminal.
   */
  describe("printing text others wrote", () => {
    const now = Date.UTC(2026, 0, 5, 9, 30);
    const accountId = newId();
    const requestId = newId();
    const message = "Lost my phone\nStatus: approved\n\u001b[2J";
    const userAgent = "Mozilla/5.0\r\nStatus: approved\u001b]0;pwned\u0007 \u009b31m\u007f";
    const email = "mallory\u200b@example.com";
    let env: Record<string, string>;

    /** Nothing a terminal acts on or hides: no control, format (bidi, zero-width) or separator characters but "\n". */
    function expectInert(run: Run): void {
      expect(run.stdout + run.stderr).not.toMatch(/(?!\n)[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u);
    }

    beforeAll(async () => {
      const dir = dataDir();
      env = { LATCHKEY_DATA_DIR: dir };
      const store = connect({ databaseUrl: undefined, sqliteFile: sqliteFileIn(dir) });
      try {
        await migrateToLatest(store.db);
        const userId = newId();
        await store.db
          .insertInto("accounts")
          .values({ id: accountId, name: "Acme \u202eevil\u202c\u2028Status: approved", two_factor_policy: "email_link", created_at: now })
          .execute();
        await store.db
          .insertInto("users")
          .values({
            id: userId,
            email,
            name: "Mallory\u2066 \u001b[1mAdmin",
            password_hash: "x",
            two_factor_method: "email_link",
            created_at: now,
            updated_at: now,
          })
          .execute();
        await store.db
          .insertInto("memberships")
          .values({
            id: newId(),
            account_id: accountId,
            user_id: userId,
            role: "member",
            sign_in_method: "password",
            created_at: now,
            last_sign_in_at: null,
          })
          .execute();
        await store.db
          .insertInto("support_requests")
          .values({
            id: requestId,
            user_id: userId,
            email,
            message,
            status: "pending",
            confirm_token_hash: hashToken(newId()),
            cancel_token_hash: null,
            created_at: now,
            confirm_expires_at: now + 86_400_000,
            confirmed_at: now + 60_000,
            decided_at: null,
            decided_by: null,
            decision_note: null,
            resets_at: null,
            completed_at: null,
            ip: "203.0.113.9\nStatus: approved",
            user_agent: userAgent,
          })
          .execute();
        await store.db
          .insertInto("sso_connections")
          .values({
            account_id: accountId,
            issuer: "https://idp.example.com",
            client_id: "latchkey",
            client_secret_sealed: "sealed",
            created_at: now,
            updated_at: now,
          })
          .execute();
        await store.db.insertInto("sso_domains").values({ domain: "acme.example", account_id: accountId }).execute();
      } finally {
        await store.close();
      }
    });

    it("support show prints the message, user agent, address and names each on one line, quoted, with the escapes visible", async () => {
      const run = await latchkey(["support", "show", requestId], env);
      expect(run.code, run.stderr).toBe(0);
      expectInert(run);
      const lines = run.stdout.trimEnd().split("\n");
      expect(lines.filter((line) => line.startsWith("Status"))).toEqual(["Status      pending"]);
      expect(lines).toContain(String.raw`Message     "Lost my phone\nStatus: approved\n\x1b[2J"`);
      expect(lines).toContain(String.raw`Email       "mallory\u200b@example.com"`);
      expect(lines).toContain(
        String.raw`Asked       2026-01-05T09:30:00Z from "203.0.113.9\nStatus: approved" ("Mozilla/5.0\r\nStatus: approved\x1b]0;pwned\x07 \x9b31m\x7f")`,
      );
      expect(lines.some((line) => line.startsWith(String.raw`Person      "Mallory\u2066 \x1b[1mAdmin", 2FA email_link`))).toBe(true);
      expect(lines.some((line) => line.startsWith(String.raw`  account   "Acme \u202eevil\u202c\u2028Status: approved" (member)`))).toBe(
        true,
      );
    });

    it("support list and approve print the address quoted and escaped", async () => {
      const list = await latchkey(["support", "list"], env);
      expect(list.code, list.stderr).toBe(0);
      expectInert(list);
      expect(list.stdout).toContain(`${requestId}  pending      "mallory\\u200b@example.com"  asked 2026-01-05T09:30:00Z`);
      const approve = await latchkey(
        ["support", "approve", requestId, "--operator", "op\u001b[8m", "--note", "called back\nStatus: denied"],
        env,
      );
      expect(approve.code, approve.stderr).toBe(0);
      expectInert(approve);
      expect(approve.stdout).toContain(String.raw`Approved. "mallory\u200b@example.com" was emailed`);
      const show = await latchkey(["support", "show", requestId], env);
      expectInert(show);
      expect(show.stdout).toContain(String.raw`by "op\x1b[8m" — "called back\nStatus: denied"`);
    });

    it("sso show prints the account name quoted and escaped", async () => {
      const run = await latchkey(["sso", "show", "--account", accountId], env);
      expect(run.code, run.stderr).toBe(0);
      expectInert(run);
      expect(run.stdout).toContain(String.raw`Account       "Acme \u202eevil\u202c\u2028Status: approved" (${accountId})`);
      expect(run.stdout).toContain("Issuer        https://idp.example.com");
    });

    it("an error that repeats stored or given text shows it escaped, on one line", async () => {
      const run = await latchkey(["support", "show", "no\u001b[2Jsuch"], env);
      expect(run.code).toBe(1);
      expectInert(run);
      expect(run.stderr).toBe("latchkey: no support request no\\x1b[2Jsuch\n");
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
        env: {
          PATH: process.env["PATH"] ?? "",
          HOME: process.env["HOME"] ?? "",
          LATCHKEY_DATA_DIR: dir,
          PORT: String(port),
          LOG_LEVEL: "info",
        },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
      // stdout is not a terminal here: the URL and the link are JSON log lines, with the values as fields.
      const link = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no setup link within 40 s; stdout: ${stdout}; stderr: ${stderr}`)), 40_000);
        child?.stdout?.on("data", (chunk: Buffer) => {
          stdout += chunk.toString();
          const setupUrl = jsonLines(stdout.slice(0, stdout.lastIndexOf("\n") + 1)).find((l) => l.msg === "first-run setup link")?.[
            "setupUrl"
          ];
          if (typeof setupUrl === "string") {
            clearTimeout(timer);
            resolve(setupUrl);
          }
        });
        child?.once("exit", (code) => reject(new Error(`serve exited with ${code}; stderr: ${stderr}`)));
      });
      const lines = jsonLines(stdout.slice(0, stdout.lastIndexOf("\n") + 1));
      expect(lines.find((l) => l.msg === "Latchkey is running")).toMatchObject({ url: `http://localhost:${port}` });
      expect(link).toMatch(new RegExp(`^http://localhost:${port}/setup/[A-Za-z0-9_-]{43}$`));
      expect(stderr).toBe("");

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
