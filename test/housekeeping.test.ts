import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { seedMember, startTestApp, type TestApp } from "./helpers/app.js";
import { describeEachDialect } from "./helpers/dialects.js";
import { TestClock } from "./helpers/clock.js";
import { createTestDatabase, type TestDatabase } from "./helpers/databases.js";
import { hashToken, newId } from "../src/auth/tokens.js";
import { loadConfig, type Config } from "../src/config.js";
import type { AppContext } from "../src/context.js";
import { openRuntime, type Runtime } from "../src/runtime.js";
import { HOUSEKEEPING_LEASE, runHousekeeping, type HousekeepingReport } from "../src/housekeeping.js";
import { leaseState, releaseLease, renewLease, takeLease } from "../src/db/lease.js";
import { TEST_SECRET_KEY } from "./helpers/app.js";

const DAY_MS = 24 * 60 * 60 * 1000;

function deletedIn(report: HousekeepingReport): Record<string, number> {
  if (!report.ran) throw new Error("housekeeping did not run");
  return Object.fromEntries(report.tables.map((t) => [t.table, t.deleted]));
}

/** Ids of the rows of `table` still there. */
async function idsOf(
  t: Pick<TestApp, "ctx">,
  table: "sessions" | "email_links" | "challenges" | "invitations" | "setup_tokens" | "support_requests" | "email_changes" | "audit_events",
): Promise<string[]> {
  return (await t.ctx.db.selectFrom(table).select("id").execute()).map((r) => r.id).sort();
}

describeEachDialect("housekeeping", (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(dialect);
  });
  afterAll(async () => {
    await t?.close();
  });

  it("deletes the expired rows of each table, at their boundary, and keeps the live ones (audit events forever by default)", async () => {
    const { db } = t.ctx;
    const { limits } = t.config;
    const now = t.clock.now();
    const grace = limits.housekeepingGraceSeconds * 1000;
    const idle = limits.sessionIdleTimeoutSeconds * 1000;
    const member = await seedMember(t);
    const other = await seedMember(t, { accountId: member.accountId });
    const { userId, accountId } = member;

    const session = (id: string, values: { expires_at: number; last_seen_at: number }): Promise<unknown> =>
      db
        .insertInto("sessions")
        .values({
          id,
          token_hash: hashToken(newId()),
          user_id: userId,
          account_id: accountId,
          created_at: now - DAY_MS,
          fresh_proof_at: now - DAY_MS,
          ip: null,
          user_agent: null,
          ...values,
        })
        .execute();
    await session("session-ended", { expires_at: now, last_seen_at: now });
    await session("session-idle", { expires_at: now + DAY_MS, last_seen_at: now - idle });
    await session("session-live", { expires_at: now + 1, last_seen_at: now - idle + 1 });

    const challenge = (id: string, expiresAt: number): Promise<unknown> =>
      db
        .insertInto("challenges")
        .values({
          id,
          token_hash: hashToken(newId()),
          user_id: userId,
          created_at: expiresAt - 600_000,
          expires_at: expiresAt,
          consumed_at: null,
          last_link_sent_at: null,
          ip: null,
          user_agent: null,
        })
        .execute();
    await challenge("challenge-old", now - grace);
    await challenge("challenge-in-grace", now - grace + 1);
    await challenge("challenge-with-live-link", now - grace);
    const link = (id: string, challengeId: string, expiresAt: number): Promise<unknown> =>
      db
        .insertInto("email_links")
        .values({
          id,
          challenge_id: challengeId,
          token_hash: hashToken(newId()),
          created_at: expiresAt - 600_000,
          expires_at: expiresAt,
          used_at: null,
          voided_at: null,
        })
        .execute();
    await link("link-old", "challenge-in-grace", now - grace);
    await link("link-in-grace", "challenge-with-live-link", now - grace + 1);

    await db
      .insertInto("attempt_counters")
      .values([
        { key: "ended", count: 3, reset_at: now },
        { key: "running", count: 3, reset_at: now + 1 },
      ])
      .execute();

    const keep = limits.housekeepingInvitationKeepSeconds * 1000;
    for (const [id, expiresAt, acceptedAt] of [
      ["invitation-old", now - keep, null],
      ["invitation-old-accepted", now - keep, now - keep - DAY_MS],
      ["invitation-expired-listed", now - keep + 1, null],
    ] as const) {
      await db
        .insertInto("invitations")
        .values({
          id,
          account_id: accountId,
          email: `${id}@example.com`,
          role: "member",
          token_hash: hashToken(newId()),
          created_by_user_id: null,
          created_at: expiresAt - DAY_MS,
          expires_at: expiresAt,
          accepted_at: acceptedAt,
          revoked_at: null,
        })
        .execute();
    }

    await db
      .insertInto("setup_tokens")
      .values([
        { id: "setup-old", token_hash: hashToken(newId()), created_at: now - 2 * DAY_MS, expires_at: now - grace, used_at: null },
        {
          id: "setup-in-grace",
          token_hash: hashToken(newId()),
          created_at: now - 2 * DAY_MS,
          expires_at: now - grace + 1,
          used_at: now - DAY_MS,
        },
      ])
      .execute();

    for (const [state, expiresAt] of [
      ["sso-old", now - grace],
      ["sso-in-grace", now - grace + 1],
    ] as const) {
      await db
        .insertInto("sso_logins")
        .values({
          state_hash: state,
          browser_hash: hashToken(newId()),
          account_id: accountId,
          code_verifier_sealed: "x",
          nonce: "n",
          created_at: expiresAt - 600_000,
          expires_at: expiresAt,
          used_at: null,
          ip: null,
          user_agent: null,
        })
        .execute();
    }

    await db
      .insertInto("totp_setups")
      .values([
        { user_id: userId, secret_sealed: "sealed", codes_acknowledged_at: null, created_at: now - DAY_MS, expires_at: now },
        { user_id: other.userId, secret_sealed: "sealed", codes_acknowledged_at: null, created_at: now, expires_at: now + 1 },
      ])
      .execute();
    await db
      .insertInto("recovery_code_reveals")
      .values([
        { user_id: userId, batch_id: "b1", codes_sealed: "sealed", created_at: now - DAY_MS, expires_at: now },
        { user_id: other.userId, batch_id: "b2", codes_sealed: "sealed", created_at: now, expires_at: now + 1 },
      ])
      .execute();

    for (const [id, status, confirmExpiresAt] of [
      ["support-unconfirmed-old", "unconfirmed", now - grace],
      ["support-unconfirmed-in-grace", "unconfirmed", now - grace + 1],
      ["support-completed-old", "completed", now - 400 * DAY_MS],
    ] as const) {
      await db
        .insertInto("support_requests")
        .values({
          id,
          user_id: userId,
          email: member.email,
          message: "",
          status,
          confirm_token_hash: hashToken(newId()),
          cancel_token_hash: null,
          created_at: confirmExpiresAt - DAY_MS,
          confirm_expires_at: confirmExpiresAt,
          confirmed_at: null,
          decided_at: null,
          decided_by: null,
          decision_note: null,
          resets_at: null,
          completed_at: null,
          ip: null,
          user_agent: null,
        })
        .execute();
    }

    for (const [id, expiresAt, confirmedAt] of [
      ["email-change-old", now - grace, now - grace - DAY_MS],
      ["email-change-in-grace", now - grace + 1, null],
    ] as const) {
      await db
        .insertInto("email_changes")
        .values({
          id,
          user_id: userId,
          old_email: member.email,
          new_email: `${id}@example.com`,
          token_hash: hashToken(newId()),
          cancel_token_hash: hashToken(newId()),
          created_at: expiresAt - DAY_MS,
          expires_at: expiresAt,
          confirmed_at: confirmedAt,
          cancelled_at: null,
          voided_at: null,
          ip: null,
          user_agent: null,
        })
        .execute();
    }

    await db
      .insertInto("oidc_models")
      .values([
        {
          model: "AccessToken",
          id: "expired",
          payload: "{}",
          grant_id: null,
          user_code: null,
          uid: null,
          expires_at: now,
          consumed_at: null,
        },
        {
          model: "AccessToken",
          id: "live",
          payload: "{}",
          grant_id: null,
          user_code: null,
          uid: null,
          expires_at: now + 1,
          consumed_at: null,
        },
        {
          model: "Session",
          id: "expired",
          payload: "{}",
          grant_id: null,
          user_code: null,
          uid: "u1",
          expires_at: now - DAY_MS,
          consumed_at: null,
        },
        {
          model: "Session",
          id: "no-expiry",
          payload: "{}",
          grant_id: null,
          user_code: null,
          uid: "u2",
          expires_at: null,
          consumed_at: null,
        },
      ])
      .execute();

    await db
      .insertInto("audit_events")
      .values({
        id: "audit-ancient",
        account_id: accountId,
        user_id: userId,
        actor_user_id: null,
        type: "sign_in.succeeded",
        ip: null,
        user_agent: null,
        detail: "{}",
        created_at: now - 3650 * DAY_MS,
      })
      .execute();

    const report = await runHousekeeping(t.ctx);
    expect(report.ran).toBe(true);
    expect(deletedIn(report)).toEqual({
      sessions: 2,
      email_links: 1,
      challenges: 1,
      attempt_counters: 1,
      invitations: 2,
      setup_tokens: 1,
      sso_logins: 1,
      totp_setups: 1,
      recovery_code_reveals: 1,
      support_requests: 1,
      email_changes: 1,
      oidc_models: 2,
      audit_events: 0,
    });
    expect(report.ran && report.tables.find((r) => r.table === "audit_events")?.kept).toMatch(/kept forever/);

    expect(await idsOf(t, "sessions")).toEqual(["session-live"]);
    expect(await idsOf(t, "challenges")).toEqual(["challenge-in-grace", "challenge-with-live-link"]);
    expect(await idsOf(t, "email_links")).toEqual(["link-in-grace"]);
    expect((await db.selectFrom("attempt_counters").select("key").execute()).map((r) => r.key)).toEqual(["running"]);
    expect(await idsOf(t, "invitations")).toEqual(["invitation-expired-listed"]);
    expect(await idsOf(t, "setup_tokens")).toEqual(["setup-in-grace"]);
    expect((await db.selectFrom("sso_logins").select("state_hash").execute()).map((r) => r.state_hash)).toEqual(["sso-in-grace"]);
    expect((await db.selectFrom("totp_setups").select("user_id").execute()).map((r) => r.user_id)).toEqual([other.userId]);
    expect((await db.selectFrom("recovery_code_reveals").select("user_id").execute()).map((r) => r.user_id)).toEqual([other.userId]);
    expect(await idsOf(t, "support_requests")).toEqual(["support-completed-old", "support-unconfirmed-in-grace"]);
    expect(await idsOf(t, "email_changes")).toEqual(["email-change-in-grace"]);
    expect(
      (await db.selectFrom("oidc_models").select(["model", "id"]).orderBy("model").orderBy("id").execute()).map(
        (r) => `${r.model}/${r.id}`,
      ),
    ).toEqual(["AccessToken/live", "Session/no-expiry"]);
    expect(await idsOf(t, "audit_events")).toContain("audit-ancient");
    // Users, accounts and memberships are never housekeeping's business.
    expect((await db.selectFrom("users").select("id").where("id", "in", [userId, other.userId]).execute()).length).toBe(2);

    // Nothing more to do on a second run; one millisecond later, what was live at its boundary goes.
    expect(Object.values(deletedIn(await runHousekeeping(t.ctx))).every((n) => n === 0)).toBe(true);
    t.clock.advanceSeconds(0.001);
    // The challenge whose last link just went is past its own grace too: both go in the same run.
    expect(deletedIn(await runHousekeeping(t.ctx))).toMatchObject({
      sessions: 1,
      challenges: 2,
      email_links: 1,
      attempt_counters: 1,
      invitations: 1,
      setup_tokens: 1,
      sso_logins: 1,
      totp_setups: 1,
      recovery_code_reveals: 1,
      support_requests: 1,
      email_changes: 1,
      oidc_models: 1,
    });
    expect(await idsOf(t, "challenges")).toEqual([]);
  });

  it("deletes in batches of housekeepingBatchSize, reporting progress after each full batch", async () => {
    const { db } = t.ctx;
    const now = t.clock.now();
    const batch = t.config.limits.housekeepingBatchSize;
    t.config.limits.housekeepingBatchSize = 3;
    try {
      await db
        .insertInto("attempt_counters")
        .values(Array.from({ length: 10 }, (_, i) => ({ key: `batch-${i}`, count: 1, reset_at: now - i })))
        .execute();
      const progress: string[] = [];
      const report = await runHousekeeping(t.ctx, {
        onProgress: ({ table, deleted, done }) => {
          if (table === "attempt_counters") progress.push(`${deleted}${done ? " done" : ""}`);
        },
      });
      expect(deletedIn(report)["attempt_counters"]).toBe(10);
      expect(progress).toEqual(["3", "6", "9", "10 done"]);
    } finally {
      t.config.limits.housekeepingBatchSize = batch;
    }
  });

  it.runIf(dialect === "sqlite")("checkpoints SQLite's WAL back into the database and truncates it", async () => {
    const member = await seedMember(t);
    for (let i = 0; i < 50; i++) {
      await t.ctx.db
        .insertInto("audit_events")
        .values({
          id: newId(),
          account_id: member.accountId,
          user_id: member.userId,
          actor_user_id: null,
          type: "x",
          ip: null,
          user_agent: null,
          detail: "{}".padEnd(2000),
          created_at: t.clock.now(),
        })
        .execute();
    }
    const wal = join(t.config.dataDir, "latchkey.db-wal");
    expect(statSync(wal).size).toBeGreaterThan(0);
    const report = await runHousekeeping(t.ctx);
    expect(report.ran && report.checkpoint).toMatchObject({ busy: false });
    expect(existsSync(wal) ? statSync(wal).size : 0).toBe(0);
  });

  it.runIf(dialect === "postgres")("has no WAL checkpoint to do on PostgreSQL", async () => {
    const report = await runHousekeeping(t.ctx);
    expect(report.ran && report.checkpoint).toBeNull();
  });
});

describeEachDialect("housekeeping: audit retention", (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(dialect, { env: { LATCHKEY_AUDIT_RETENTION_DAYS: "30" } });
  });
  afterAll(async () => {
    await t?.close();
  });

  it("deletes audit events once LATCHKEY_AUDIT_RETENTION_DAYS old: at the boundary, not a millisecond before", async () => {
    const now = t.clock.now();
    const boundary = now - 30 * DAY_MS;
    for (const [id, createdAt] of [
      ["past", boundary - 1],
      ["at", boundary],
      ["just-inside", boundary + 1],
      ["today", now],
    ] as const) {
      await t.ctx.db
        .insertInto("audit_events")
        .values({
          id,
          account_id: null,
          user_id: null,
          actor_user_id: null,
          type: "x",
          ip: null,
          user_agent: null,
          detail: "{}",
          created_at: createdAt,
        })
        .execute();
    }
    expect(deletedIn(await runHousekeeping(t.ctx))["audit_events"]).toBe(2);
    expect(await idsOf(t, "audit_events")).toEqual(["just-inside", "today"]);
    t.clock.advanceSeconds(0.001);
    expect(deletedIn(await runHousekeeping(t.ctx))["audit_events"]).toBe(1);
    expect(await idsOf(t, "audit_events")).toEqual(["today"]);
  });
});

describeEachDialect("housekeeping: one instance at a time (the lease)", (dialect) => {
  let database: TestDatabase;
  let config: Config;
  const clock = new TestClock();
  let a: Runtime;
  let b: Runtime;

  beforeAll(async () => {
    database = await createTestDatabase(dialect);
    config = loadConfig({
      LATCHKEY_DATA_DIR: database.dataDir,
      LATCHKEY_SECRET_KEY: TEST_SECRET_KEY,
      LOG_LEVEL: "silent",
      ...(database.databaseUrl ? { DATABASE_URL: database.databaseUrl } : {}),
    });
    // Small batches: each run is many statements, so the two runs overlap for real.
    config.limits.housekeepingBatchSize = 5;
    a = await openRuntime(config, { clock, migrate: true });
    b = await openRuntime(config, { clock, migrate: true });
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await database?.drop();
  });

  async function expiredCounters(ctx: AppContext, n: number): Promise<void> {
    const now = clock.now();
    await ctx.db
      .insertInto("attempt_counters")
      .values(Array.from({ length: n }, () => ({ key: newId(), count: 1, reset_at: now - 1000 })))
      .execute();
  }

  it("two instances running it at once: exactly one holds the lease and runs, every time; the other deletes nothing", async () => {
    for (let round = 0; round < 5; round++) {
      await expiredCounters(a.ctx, 40);
      const reports = await Promise.all([runHousekeeping(a.ctx), runHousekeeping(b.ctx)]);
      const ran = reports.filter((r) => r.ran);
      const refused = reports.filter((r) => !r.ran);
      expect(ran).toHaveLength(1);
      expect(refused).toHaveLength(1);
      expect(deletedIn(ran[0]!)["attempt_counters"]).toBe(40);
      expect(refused[0]!.ran === false && refused[0]!.lease?.holder).toMatch(/ pid \d+ run /);
      // Released when done: the next run (of either) may start at once.
      const state = await leaseState(a.ctx.db, HOUSEKEEPING_LEASE);
      expect(state!.expiresAt).toBeLessThanOrEqual(clock.now());
    }
  });

  it("a holder that died keeps it only until the lease expires; then another instance takes over", async () => {
    const leaseMs = config.limits.housekeepingLeaseSeconds * 1000;
    // An instance takes the lease and is killed before it renews or releases it.
    expect(
      await takeLease(a.ctx.db, { name: HOUSEKEEPING_LEASE, holder: "dead-host pid 1 run x", now: clock.now(), durationMs: leaseMs }),
    ).toBe(true);
    await expiredCounters(b.ctx, 3);
    const refused = await runHousekeeping(b.ctx);
    expect(refused).toMatchObject({ ran: false, lease: { holder: "dead-host pid 1 run x" } });
    clock.advanceSeconds(config.limits.housekeepingLeaseSeconds - 1);
    expect((await runHousekeeping(b.ctx)).ran).toBe(false);
    clock.advanceSeconds(1);
    const report = await runHousekeeping(b.ctx);
    expect(deletedIn(report)["attempt_counters"]).toBe(3);
    // The dead holder, were it to wake up, cannot renew or release what is no longer its own.
    const revived = { name: HOUSEKEEPING_LEASE, holder: "dead-host pid 1 run x", now: clock.now() };
    expect(await renewLease(a.ctx.db, { ...revived, durationMs: leaseMs })).toBe(false);
  });

  it("a lease is renewed by its holder only, and a release frees only the holder's own lease", async () => {
    const leaseMs = 60_000;
    const name = "test-lease";
    const now = clock.now();
    expect(await takeLease(a.ctx.db, { name, holder: "one", now, durationMs: leaseMs })).toBe(true);
    expect(await takeLease(b.ctx.db, { name, holder: "two", now: now + leaseMs - 1, durationMs: leaseMs })).toBe(false);
    expect(await renewLease(a.ctx.db, { name, holder: "one", now: now + leaseMs - 1, durationMs: leaseMs })).toBe(true);
    expect(await takeLease(b.ctx.db, { name, holder: "two", now: now + leaseMs, durationMs: leaseMs })).toBe(false);
    expect(await takeLease(b.ctx.db, { name, holder: "two", now: now + 2 * leaseMs - 1, durationMs: leaseMs })).toBe(true);
    expect(await renewLease(a.ctx.db, { name, holder: "one", now: now + 2 * leaseMs, durationMs: leaseMs })).toBe(false);
    await releaseLease(a.ctx.db, { name, holder: "one", now: now + 2 * leaseMs });
    expect((await leaseState(a.ctx.db, name))!.holder).toBe("two");
    expect(await takeLease(a.ctx.db, { name, holder: "one", now: now + 2 * leaseMs, durationMs: leaseMs })).toBe(false);
  });

  it("with a minimum gap (serve: half the interval), a run started elsewhere within it makes the others skip", async () => {
    const gapMs = (config.limits.housekeepingIntervalSeconds * 1000) / 2;
    clock.advanceSeconds(gapMs / 1000);
    expect((await runHousekeeping(a.ctx, { minGapMs: gapMs })).ran).toBe(true);
    clock.advanceSeconds(gapMs / 1000 - 1);
    expect((await runHousekeeping(b.ctx, { minGapMs: gapMs })).ran).toBe(false);
    // The CLI asks for no gap: it runs unless a run is in progress.
    expect((await runHousekeeping(b.ctx)).ran).toBe(true);
    clock.advanceSeconds(gapMs / 1000);
    expect((await runHousekeeping(b.ctx, { minGapMs: gapMs })).ran).toBe(true);
  });
});

describe("housekeeping stops between batches when the server shuts down", () => {
  it("ends after the batch in progress, reporting what it did", async () => {
    const t = await startTestApp("sqlite", { limits: { housekeepingBatchSize: 2 } });
    try {
      const now = t.clock.now();
      await t.ctx.db
        .insertInto("attempt_counters")
        .values(Array.from({ length: 10 }, (_, i) => ({ key: `k${i}`, count: 1, reset_at: now - 1 })))
        .execute();
      const stop = new AbortController();
      const report = await runHousekeeping(t.ctx, {
        signal: stop.signal,
        onProgress: ({ deleted, done }) => {
          if (!done && deleted >= 4) stop.abort();
        },
      });
      expect(report).toMatchObject({ ran: true, stopped: "shutdown", checkpoint: null });
      expect((await t.ctx.db.selectFrom("attempt_counters").select("key").execute()).length).toBe(6);
      // The lease was released: the next run goes on at once.
      expect(deletedIn(await runHousekeeping(t.ctx))["attempt_counters"]).toBe(6);
    } finally {
      await t.close();
    }
  });
});
