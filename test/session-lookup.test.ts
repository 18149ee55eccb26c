import SQLite from "better-sqlite3";
import { sql } from "kysely";
import { afterAll, afterEach, beforeAll, expect, it, vi } from "vitest";
import { defaultLimits } from "../src/config.js";
import { buildApp } from "../src/server.js";
import { signedInBrowser, seedMember, startTestApp, type Browser, type TestApp } from "./helpers/app.js";
import { describeEachDialect } from "./helpers/dialects.js";

/**
 * The session check is the hot path of forward auth (issue 10): its look-up is a statement prepared once and kept
 * (better-sqlite3) or a named prepared statement on each connection (PostgreSQL), instead of a query built and
 * prepared anew on every request. What that must not trade away: the database is still read on every request, so a
 * revocation, an idle timeout or a removed membership is seen by the very next request.
 */
describeEachDialect("the session check's prepared look-up", (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(dialect);
  });
  afterAll(async () => t?.close());
  afterEach(() => vi.restoreAllMocks());

  async function signedIn(): Promise<{ browser: Browser; userId: string; accountId: string }> {
    const member = await seedMember(t);
    return { browser: await signedInBrowser(t, member), userId: member.userId, accountId: member.accountId };
  }

  const lookups = (statements: string[]): string[] => statements.filter((s) => /from "sessions"/.test(s) && /"token_hash" = /.test(s));

  it.skipIf(dialect !== "sqlite")("prepares the look-up at most once, not on every request (SQLite)", async () => {
    const { browser } = await signedIn();
    const prepared: string[] = [];
    const prepare = SQLite.prototype.prepare;
    vi.spyOn(SQLite.prototype, "prepare").mockImplementation(function (this: SQLite.Database, source: string) {
      prepared.push(source);
      return prepare.call(this, source);
    } as typeof prepare);
    for (let i = 0; i < 5; i += 1) {
      expect((await browser.get("/api/v1/session")).statusCode).toBe(200);
      expect((await browser.get("/api/v1/verify")).statusCode).toBe(200);
    }
    expect(lookups(prepared).length).toBeLessThanOrEqual(1);
  });

  it.skipIf(dialect !== "postgres")("runs the look-up as a named prepared statement (PostgreSQL)", async () => {
    const { browser } = await signedIn();
    expect((await browser.get("/api/v1/session")).statusCode).toBe(200);
    // The pool hands back the connection used last (pg-pool keeps idle clients last-in, first-out): the one that just ran
    // the look-up, whose prepared statements are listed here.
    const statements = await sql<{ name: string; statement: string }>`select name, statement from pg_prepared_statements`.execute(t.ctx.db);
    const named = statements.rows.filter((row) => lookups([row.statement]).length > 0);
    expect(named.map((row) => row.name)).toEqual(["latchkey_session_find"]);
  });

  it("refuses a session on the very next request once it is revoked elsewhere", async () => {
    const { browser, userId } = await signedIn();
    expect((await browser.get("/api/v1/verify")).statusCode).toBe(200);
    // Another instance's sign-out is a row deleted in the shared database.
    await t.ctx.db.deleteFrom("sessions").where("user_id", "=", userId).execute();
    expect((await browser.get("/api/v1/verify")).statusCode).toBe(401);
    expect((await browser.get("/api/v1/session")).statusCode).toBe(401);
  });

  it("refuses a session on the next request once its membership is removed", async () => {
    const { browser, userId, accountId } = await signedIn();
    expect((await browser.get("/api/v1/session")).statusCode).toBe(200);
    await t.ctx.db.deleteFrom("memberships").where("user_id", "=", userId).where("account_id", "=", accountId).execute();
    expect((await browser.get("/api/v1/session")).statusCode).toBe(401);
  });

  it("still ends an idle session and deletes it, and still touches last_seen_at once a minute", async () => {
    const { browser, userId } = await signedIn();
    const seen = async (): Promise<number | undefined> =>
      (await t.ctx.db.selectFrom("sessions").select("last_seen_at").where("user_id", "=", userId).executeTakeFirst())?.last_seen_at;
    const before = await seen();
    t.clock.advanceSeconds(defaultLimits.sessionTouchIntervalSeconds);
    expect((await browser.get("/api/v1/verify")).statusCode).toBe(200);
    expect(await seen()).toBe(t.clock.now());
    expect(await seen()).not.toBe(before);
    t.clock.advanceSeconds(defaultLimits.sessionIdleTimeoutSeconds);
    expect((await browser.get("/api/v1/verify")).statusCode).toBe(401);
    expect(await seen()).toBeUndefined();
  });

  it("applies a two-factor policy switched on while the session is open, on the next request", async () => {
    const { browser, accountId } = await signedIn();
    expect((await browser.get("/api/v1/verify")).statusCode).toBe(200);
    await t.ctx.db.updateTable("accounts").set({ two_factor_policy: "auth_app_required" }).where("id", "=", accountId).execute();
    const refused = await browser.get("/api/v1/verify");
    expect(refused.statusCode).toBe(403);
    expect(refused.json().error).toBe("two_factor_setup_required");
  });

  /**
   * The same cookie on a second app over the same context, without the test harness's hook that delivers mail before
   * each answer (the sender's query would wait for the open transaction below, as a request never does in `serve`).
   */
  async function sameBrowserOnPlainApp(browser: Browser): Promise<{ verify: () => Promise<number>; close: () => Promise<void> }> {
    const app = await buildApp(t.ctx, { logger: false });
    const cookie = browser.cookieHeader();
    return {
      verify: async () => (await app.inject({ method: "GET", url: "/api/v1/verify", headers: { cookie } })).statusCode,
      close: () => app.close(),
    };
  }

  it("answers from committed state only: a sign-out still open in a transaction is not seen until it commits", async () => {
    const { browser: cookies, userId } = await signedIn();
    const browser = await sameBrowserOnPlainApp(cookies);
    // The look-up reads on its own connection (a read-only one beside SQLite's single writer, another pooled one on
    // PostgreSQL): it neither waits for a transaction in progress nor sees its uncommitted rows. On the writer's own
    // connection this request would wait for the transaction that waits for it.
    await t.ctx.db.transaction().execute(async (tx) => {
      await tx.deleteFrom("sessions").where("user_id", "=", userId).execute();
      expect(await browser.verify()).toBe(200);
    });
    expect(await browser.verify()).toBe(401);
    await browser.close();
  });

  it("accepts no session a transaction made and then rolled back", async () => {
    const { browser: cookies, userId } = await signedIn();
    const browser = await sameBrowserOnPlainApp(cookies);
    const rows = await t.ctx.db.selectFrom("sessions").selectAll().where("user_id", "=", userId).execute();
    await t.ctx.db.deleteFrom("sessions").where("user_id", "=", userId).execute();
    expect(await browser.verify()).toBe(401);
    const rolledBack = new Error("rolled back");
    await expect(
      t.ctx.db.transaction().execute(async (tx) => {
        await tx.insertInto("sessions").values(rows).execute();
        expect(await browser.verify()).toBe(401);
        throw rolledBack;
      }),
    ).rejects.toBe(rolledBack);
    expect(await browser.verify()).toBe(401);
    await browser.close();
  });
});
