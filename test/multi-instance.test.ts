import { spawn } from "node:child_process";
import { freePort } from "./helpers/ports.js";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, expect, it } from "vitest";
import { TestClock } from "./helpers/clock.js";
import { loadConfig } from "../src/config.js";
import type { AppContext } from "../src/context.js";
import type { Dialect } from "../src/db/connect.js";
import { openRuntime, type Runtime } from "../src/runtime.js";
import { buildApp } from "../src/server.js";
import { createTestDatabase, type TestDatabase } from "./helpers/databases.js";
import { describeEachDialect } from "./helpers/dialects.js";
import { Browser, deliverMailBeforeAnswer, MemoryMailer, seedMember, SHEDDING_OFF_MS, TEST_SECRET_KEY } from "./helpers/app.js";

interface Instance {
  app: FastifyInstance;
  ctx: AppContext;
  mail: MemoryMailer;
}

/**
 * Two instances behind one load balancer: two Fastify apps, each with its own database connection (pool) and mailer,
 * over the same database and the same secret key.
 */
async function startCluster(
  dialect: Dialect,
): Promise<{ a: Instance; b: Instance; clock: TestClock; database: TestDatabase; close(): Promise<void> }> {
  const database = await createTestDatabase(dialect);
  const config = loadConfig({
    LATCHKEY_DATA_DIR: database.dataDir,
    LATCHKEY_SECRET_KEY: TEST_SECRET_KEY,
    LOG_LEVEL: "silent",
    ...(database.databaseUrl ? { DATABASE_URL: database.databaseUrl } : {}),
  });
  config.limits.overloadEventLoopDelayMs = SHEDDING_OFF_MS;
  const clock = new TestClock();
  const runtimes: Runtime[] = [];
  const apps: FastifyInstance[] = [];
  async function instance(): Promise<Instance> {
    const mail = new MemoryMailer();
    const runtime = await openRuntime(config, { clock, mailer: mail, migrate: true });
    runtimes.push(runtime);
    const app = await buildApp(runtime.ctx, { logger: false });
    deliverMailBeforeAnswer(app, runtime.mailSender);
    await app.ready();
    apps.push(app);
    return { app, ctx: runtime.ctx, mail };
  }
  const a = await instance();
  const b = await instance();
  return {
    a,
    b,
    clock,
    database,
    async close() {
      for (const app of apps) await app.close();
      for (const runtime of runtimes) await runtime.close();
      await database.drop();
    },
  };
}

/** A real `latchkey serve` in its own process over the same database: an instance as a deployment runs it. */
async function startServeProcess(database: TestDatabase): Promise<{ origin: string; stop(): Promise<void> }> {
  const port = await freePort();
  const child = spawn(process.execPath, ["--import", "tsx", join(process.cwd(), "src/cli.ts"), "serve", "--no-migrate"], {
    env: {
      PATH: process.env["PATH"] ?? "",
      HOME: process.env["HOME"] ?? "",
      PORT: String(port),
      // Reached by IP, so the public URL says so too (a localhost public URL would redirect 127.0.0.1 requests).
      LATCHKEY_PUBLIC_URL: `http://127.0.0.1:${port}`,
      LATCHKEY_DATA_DIR: database.dataDir,
      LATCHKEY_SECRET_KEY: TEST_SECRET_KEY,
      // stdout is not a terminal: "Latchkey is running" is a JSON log line at info level.
      LOG_LEVEL: "info",
      ...(database.databaseUrl ? { DATABASE_URL: database.databaseUrl } : {}),
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`latchkey serve did not start: ${output}`)), 40_000);
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('"msg":"Latchkey is running"')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once("exit", (code) => reject(new Error(`latchkey serve exited with ${code}: ${output}`)));
  });
  return {
    origin: `http://127.0.0.1:${port}`,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

/** One browser (one cookie jar) whose requests the load balancer sends to either instance. */
class BalancedBrowser {
  private readonly browsers: Map<Instance, Browser>;
  constructor(instances: Instance[]) {
    this.browsers = new Map(instances.map((i) => [i, new Browser(i.app)]));
  }
  /** Runs `fn` on `instance` with the shared cookies, then shares what it set. */
  async on<T>(instance: Instance, fn: (browser: Browser) => Promise<T>): Promise<T> {
    const browser = this.browsers.get(instance);
    if (!browser) throw new Error("unknown instance");
    const result = await fn(browser);
    for (const other of this.browsers.values()) {
      if (other === browser) continue;
      other.cookies.clear();
      for (const [name, value] of browser.cookies) other.cookies.set(name, value);
    }
    return result;
  }
  cookieHeader(): string {
    return [...this.browsers.values()][0]?.cookieHeader() ?? "";
  }
}

describeEachDialect("two instances on one database", (dialect) => {
  let cluster: Awaited<ReturnType<typeof startCluster>>;
  let serve: Awaited<ReturnType<typeof startServeProcess>>;
  beforeAll(async () => {
    cluster = await startCluster(dialect);
    serve = await startServeProcess(cluster.database);
  });
  afterAll(async () => {
    await serve?.stop();
    await cluster?.close();
  });

  /** Password on instance A; the link arrives in A's mail. */
  async function passwordOnA(member: { email: string; password: string }): Promise<{ browser: BalancedBrowser; link: string }> {
    const { a, b } = cluster;
    const browser = new BalancedBrowser([a, b]);
    const step = await browser.on(a, (br) => br.signInWithPassword(member.email, member.password));
    expect(step.statusCode).toBe(303);
    return { browser, link: a.mail.lastLink(member.email) };
  }

  it("the password on instance A and the email link on instance B sign in the same browser", async () => {
    const { a, b } = cluster;
    const member = await seedMember(a);
    const { browser, link } = await passwordOnA(member);
    expect(b.mail.sent).toHaveLength(0);

    const stranger = new Browser(b.app);
    expect((await stranger.get(link)).statusCode).toBe(403);

    const redeemed = await browser.on(b, (br) => br.get(link));
    expect(redeemed.statusCode).toBe(303);
    expect(redeemed.headers.location).toBe("/");
    for (const instance of [a, b]) {
      const session = await browser.on(instance, (br) => br.get("/api/v1/session"));
      expect(session.statusCode).toBe(200);
      expect(session.json().user.email).toBe(member.email);
    }
    // Spent on B means spent on A too.
    expect((await browser.on(a, (br) => br.get(link))).statusCode).toBe(410);
  });

  it("the check-your-email page and 'Send a new link' on B continue a sign-in started on A", async () => {
    const { a, b, clock } = cluster;
    const member = await seedMember(a);
    const { browser, link: first } = await passwordOnA(member);
    expect((await browser.on(b, (br) => br.get("/login/email"))).statusCode).toBe(200);
    clock.advanceSeconds(a.ctx.config.limits.emailLinkResendCooldownSeconds);
    const resent = await browser.on(b, (br) => br.submit("/login/email", "/login/email/resend", {}));
    expect(resent.statusCode).toBe(200);
    const second = b.mail.lastLink(member.email);
    expect(second).not.toBe(first);
    // The older link, sent by A, was voided by B.
    expect((await browser.on(a, (br) => br.get(first))).statusCode).toBe(400);
    expect((await browser.on(a, (br) => br.get(second))).statusCode).toBe(303);
  });

  it("sign-out on A ends the session on B at once", async () => {
    const { a, b } = cluster;
    const member = await seedMember(a);
    const { browser, link } = await passwordOnA(member);
    expect((await browser.on(b, (br) => br.get(link))).statusCode).toBe(303);
    const sessionCookie = browser.cookieHeader();
    expect((await browser.on(b, (br) => br.get("/api/v1/verify"))).statusCode).toBe(200);

    const out = await browser.on(a, (br) => br.request("POST", "/api/v1/logout", { json: {} }));
    expect(out.statusCode).toBe(204);

    // Even a client that kept the old cookie is refused on B.
    const replay = await b.app.inject({ method: "GET", url: "/api/v1/session", headers: { cookie: sessionCookie } });
    expect(replay.statusCode).toBe(401);
    expect(replay.json().error).toBe("unauthenticated");
    expect((await b.app.inject({ method: "GET", url: "/api/v1/verify", headers: { cookie: sessionCookie } })).statusCode).toBe(401);
    const page = await b.app.inject({ method: "GET", url: "/", headers: { cookie: sessionCookie } });
    expect(page.statusCode).toBe(303);
    expect(page.headers.location).toMatch(/^\/login/);
  });

  it("web sign-out on B ends the session on A at once", async () => {
    const { a, b } = cluster;
    const member = await seedMember(a);
    const { browser, link } = await passwordOnA(member);
    expect((await browser.on(a, (br) => br.get(link))).statusCode).toBe(303);
    const sessionCookie = browser.cookieHeader();
    const home = await browser.on(b, (br) => br.get("/"));
    expect(home.statusCode).toBe(200);
    const csrf = /name="_csrf" value="([^"]+)"/.exec(home.body)?.[1] as string;
    const out = await browser.on(b, (br) => br.request("POST", "/logout", { form: { _csrf: csrf } }));
    expect(out.statusCode).toBe(303);
    expect((await a.app.inject({ method: "GET", url: "/api/v1/session", headers: { cookie: sessionCookie } })).statusCode).toBe(401);
  });

  async function expectExactlyOneSession(userId: string, statuses: number[]): Promise<void> {
    expect(statuses.filter((s) => s === 303)).toHaveLength(1);
    expect(statuses.filter((s) => s === 410)).toHaveLength(statuses.length - 1);
    const sessions = await cluster.a.ctx.db.selectFrom("sessions").select("id").where("user_id", "=", userId).execute();
    expect(sessions).toHaveLength(1);
    const succeeded = await cluster.b.ctx.db
      .selectFrom("audit_events")
      .select("id")
      .where("user_id", "=", userId)
      .where("type", "=", "sign_in.succeeded")
      .execute();
    expect(succeeded).toHaveLength(1);
  }

  // Two better-sqlite3 connections in one event loop cannot race: a connection waiting for the write lock blocks the
  // thread the lock holder needs to commit. Separate processes (below) are how SQLite instances really share a file.
  it.skipIf(dialect === "sqlite")(
    "20 concurrent redemptions of one link split across two in-process instances give exactly one session",
    async () => {
      const { a, b } = cluster;
      const member = await seedMember(a);
      const { browser, link } = await passwordOnA(member);
      const cookie = browser.cookieHeader();
      const path = new URL(link).pathname;
      const responses = await Promise.all(
        Array.from({ length: 20 }, (_, i) => (i % 2 ? b : a).app.inject({ method: "GET", url: path, headers: { cookie } })),
      );
      await expectExactlyOneSession(
        member.userId,
        responses.map((r) => r.statusCode),
      );
    },
  );

  it("20 concurrent redemptions of one link split across this instance and a `latchkey serve` process give exactly one session", async () => {
    const { a } = cluster;
    const member = await seedMember(a);
    const { browser, link } = await passwordOnA(member);
    const cookie = browser.cookieHeader();
    const path = new URL(link).pathname;
    const statuses = await Promise.all(
      Array.from({ length: 20 }, async (_, i) =>
        i % 2
          ? (await fetch(`${serve.origin}${path}`, { headers: { cookie }, redirect: "manual" })).status
          : (await a.app.inject({ method: "GET", url: path, headers: { cookie } })).statusCode,
      ),
    );
    await expectExactlyOneSession(member.userId, statuses);
  });

  it("a session from this instance is honoured and revoked by a `latchkey serve` process", async () => {
    const { a } = cluster;
    const member = await seedMember(a);
    const { browser, link } = await passwordOnA(member);
    expect((await browser.on(a, (br) => br.get(link))).statusCode).toBe(303);
    const cookie = browser.cookieHeader();
    const verify = await fetch(`${serve.origin}/api/v1/verify`, { headers: { cookie } });
    expect(verify.status).toBe(200);
    expect(verify.headers.get("x-latchkey-email")).toBe(member.email);
    const out = await fetch(`${serve.origin}/api/v1/logout`, {
      method: "POST",
      headers: { cookie, "content-type": "application/json" },
      body: "{}",
    });
    expect(out.status).toBe(204);
    expect((await a.app.inject({ method: "GET", url: "/api/v1/session", headers: { cookie } })).statusCode).toBe(401);
  });
});
