import type { FastifyInstance } from "fastify";
import { afterEach, expect, it } from "vitest";
import { loadConfig } from "../src/config.js";
import { openRuntime, type Runtime } from "../src/runtime.js";
import { buildApp } from "../src/server.js";
import { TestClock } from "./helpers/clock.js";
import { createTestDatabase, type TestDatabase } from "./helpers/databases.js";
import { describeEachDialect } from "./helpers/dialects.js";
import { deliverMailBeforeAnswer, MemoryMailer, signedInBrowser, seedMember, TEST_SECRET_KEY, type Browser } from "./helpers/app.js";

interface LoggedApp {
  app: FastifyInstance;
  runtime: Runtime;
  lines: Array<{ level: number; msg: string; err?: unknown; req?: { url?: string }; res?: { statusCode?: number } }>;
  browser: Browser;
}

const opened: Array<{ app: FastifyInstance; runtime: Runtime; database: TestDatabase }> = [];
afterEach(async () => {
  for (const { app, runtime, database } of opened.splice(0)) {
    await app.close();
    await runtime.close().catch(() => undefined);
    await database.drop();
  }
});

/** A real app logging at `level` into an array, with one signed-in browser. */
async function loggedApp(dialect: "sqlite" | "postgres", level: string): Promise<LoggedApp> {
  const database = await createTestDatabase(dialect);
  const config = loadConfig({
    LATCHKEY_DATA_DIR: database.dataDir,
    LATCHKEY_SECRET_KEY: TEST_SECRET_KEY,
    LOG_LEVEL: level,
    ...(database.databaseUrl ? { DATABASE_URL: database.databaseUrl } : {}),
  });
  const mail = new MemoryMailer();
  const runtime = await openRuntime(config, { clock: new TestClock(), mailer: mail, migrate: true });
  const lines: LoggedApp["lines"] = [];
  const app = await buildApp(runtime.ctx, { logStream: { write: (line: string) => void lines.push(JSON.parse(line)) } });
  deliverMailBeforeAnswer(app, runtime.mailSender);
  await app.ready();
  opened.push({ app, runtime, database });
  const member = await seedMember({ ctx: runtime.ctx });
  const browser = await signedInBrowser({ app, mail }, member);
  lines.splice(0);
  return { app, runtime, lines, browser };
}

const DEBUG = 20;
const ERROR = 50;

describeEachDialect("the request log of the session check and forward auth", (dialect) => {
  it("writes no line for them at the default level, while other requests are logged as before", async () => {
    const { app, lines, browser } = await loggedApp(dialect, "info");
    expect((await browser.get("/api/v1/session")).statusCode).toBe(200);
    expect((await browser.get("/api/v1/verify")).statusCode).toBe(200);
    expect((await app.inject({ method: "GET", url: "/api/v1/verify" })).statusCode).toBe(401);
    expect(lines).toEqual([]);
    expect((await browser.get("/settings")).statusCode).toBe(200);
    expect(lines.map((l) => l.msg)).toEqual(["incoming request", "request completed"]);
  });

  it("writes their request lines at debug level", async () => {
    const { lines, browser } = await loggedApp(dialect, "debug");
    expect((await browser.get("/api/v1/verify")).statusCode).toBe(200);
    const requestLines = lines.filter((l) => l.msg === "incoming request" || l.msg === "request completed");
    expect(requestLines.map((l) => [l.level, l.msg])).toEqual([
      [DEBUG, "incoming request"],
      [DEBUG, "request completed"],
    ]);
    expect(requestLines[0]?.req?.url).toBe("/api/v1/verify");
    expect(requestLines[1]?.res?.statusCode).toBe(200);
  });

  it("still logs an error of theirs at the default level", async () => {
    const { lines, browser, runtime } = await loggedApp(dialect, "info");
    // The database goes away under the running app: the look-up fails.
    await runtime.store.close();
    expect((await browser.get("/api/v1/verify")).statusCode).toBe(500);
    expect(lines.filter((l) => l.level >= ERROR).map((l) => l.msg)).toEqual(["unhandled error"]);
  });
});
