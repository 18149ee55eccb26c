import type { LightMyRequestResponse } from "fastify";
import { sql } from "kysely";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { defaultLimits } from "../src/config.js";
import { migrateToLatest } from "../src/db/connect.js";
import { migrationProvider } from "../src/db/migrations/index.js";
import { startTestApp, type TestApp } from "./helpers/app.js";
import { describeEachDialect, describeOnPostgres } from "./helpers/dialects.js";
import { PgCluster } from "./helpers/pg-cluster.js";
import { redisServerAvailable, startOwnRedis, type OwnRedis } from "./helpers/redis-server.js";

/**
 * `/healthz` (the process lives) and `/readyz` (the database reachable and migrated, Redis reachable when configured),
 * issue 11. Outages are real: a PostgreSQL cluster and a redis-server of this file's own, stopped and started again.
 */

const opened: TestApp[] = [];
afterEach(async () => {
  for (const t of opened.splice(0)) await t.close();
});

async function open(...args: Parameters<typeof startTestApp>): Promise<TestApp> {
  const t = await startTestApp(...args);
  opened.push(t);
  return t;
}

const readyz = (t: TestApp): Promise<LightMyRequestResponse> => t.app.inject({ method: "GET", url: "/readyz" });

/** Asks `/readyz` until it answers `status` (at most `withinMs`); returns the last answer. */
async function readyzUntil(t: TestApp, status: number, withinMs: number): Promise<LightMyRequestResponse> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    const response = await readyz(t);
    if (response.statusCode === status || Date.now() > deadline) return response;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** How long one `/readyz` takes, and its answer. */
async function timedReadyz(t: TestApp): Promise<{ response: LightMyRequestResponse; ms: number }> {
  const started = performance.now();
  const response = await readyz(t);
  return { response, ms: performance.now() - started };
}

const migrationNames = Object.keys(await migrationProvider.getMigrations()).sort();
const latestMigration = migrationNames[migrationNames.length - 1]!;

describeEachDialect("liveness and readiness", (dialect) => {
  it("/healthz answers 200 {ok:true}, also when asked by address (no redirect to the public host name)", async () => {
    const t = await open(dialect);
    for (const host of ["localhost:3000", "127.0.0.1:3000"]) {
      const response = await t.app.inject({ method: "GET", url: "/healthz", headers: { host } });
      expect(response.statusCode).toBe(200);
      expect(response.json()).toEqual({ ok: true });
    }
  });

  it("/readyz answers 200 with each check ok on a migrated database", async () => {
    const t = await open(dialect);
    const response = await t.app.inject({ method: "GET", url: "/readyz", headers: { host: "127.0.0.1:3000" } });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ ok: true, checks: { database: "ok" } });
    expect(response.headers["cache-control"]).toBe("no-store");
  });

  it("/readyz answers 503 not_ready while the database lacks the latest migration, and 200 again once it has it", async () => {
    const t = await open(dialect);
    const row = await sql<{
      name: string;
      timestamp: string;
    }>`select name, timestamp from latchkey_migrations where name = ${latestMigration}`.execute(t.ctx.db);
    expect(row.rows).toHaveLength(1);
    await sql`delete from latchkey_migrations where name = ${latestMigration}`.execute(t.ctx.db);

    const response = await readyz(t);
    expect(response.statusCode).toBe(503);
    expect(response.json()).toEqual({
      error: "not_ready",
      message: `Not ready to serve: database not migrated: 1 pending (${latestMigration}); run \`latchkey migrate\`.`,
      checks: { database: `not migrated: 1 pending (${latestMigration}); run \`latchkey migrate\`` },
    });
    // The process itself is fine.
    expect((await t.app.inject({ method: "GET", url: "/healthz" })).statusCode).toBe(200);

    await sql`insert into latchkey_migrations (name, timestamp) values (${row.rows[0]!.name}, ${row.rows[0]!.timestamp})`.execute(t.ctx.db);
    expect((await readyz(t)).statusCode).toBe(200);
  });

  it("/readyz on an empty database (serve --no-migrate before `latchkey migrate`) names every pending migration; 200 after migrating", async () => {
    const t = await open(dialect, { migrate: false });
    const response = await readyz(t);
    expect(response.statusCode).toBe(503);
    expect(response.json().checks.database).toBe(
      `not migrated: ${migrationNames.length} pending (${migrationNames.join(", ")}); run \`latchkey migrate\``,
    );
    await migrateToLatest(t.ctx.db);
    expect((await readyz(t)).statusCode).toBe(200);
  });

  it("answers both probes while load is shed (503 to everything else)", async () => {
    const t = await open(dialect, { limits: { overloadEventLoopDelayMs: 50, overloadSampleIntervalMs: 100 } });
    let checked = false;
    for (let attempt = 0; attempt < 5 && !checked; attempt++) {
      const end = performance.now() + 1000;
      while (performance.now() < end) {
        // Block the event loop, as a burst of synchronous work under overload would.
      }
      // The sampler decides at its next tick: wait for the first shed answer, then ask at once.
      const deadline = Date.now() + 2000;
      while ((await t.app.inject({ method: "GET", url: "/api/v1/session" })).statusCode !== 503 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      // Asked together, so all three meet the same shedding decision.
      const [session, health, ready] = await Promise.all(
        ["/api/v1/session", "/healthz", "/readyz"].map((url) => t.app.inject({ method: "GET", url })),
      );
      if (session!.statusCode !== 503) continue;
      expect(session!.json()).toMatchObject({ error: "service_unavailable" });
      expect(health!.statusCode).toBe(200);
      expect(ready!.statusCode).toBe(200);
      checked = true;
    }
    expect(checked).toBe(true);
  });

  it("has a time limit per check below the usual 1 s probe timeout", () => {
    expect(defaultLimits.readinessCheckTimeoutMs).toBe(800);
  });
});

describeOnPostgres("readiness while PostgreSQL stops and starts again", () => {
  describe("on a PostgreSQL cluster of this file's own", () => {
    let cluster: PgCluster;
    beforeAll(async () => {
      cluster = await PgCluster.create("latchkey_readyz");
    }, 60_000);
    afterAll(async () => {
      await cluster?.drop();
    }, 60_000);

    it("flips to 503 (database unreachable, in bounded time) when PostgreSQL stops, and back to 200 when it starts", async () => {
      const t = await open("postgres", { env: { DATABASE_URL: cluster.url() } });
      expect((await readyz(t)).json()).toEqual({ ok: true, checks: { database: "ok" } });

      await cluster.stop();
      const down = await timedReadyz(t);
      expect(down.response.statusCode).toBe(503);
      const body = down.response.json();
      expect(body.error).toBe("not_ready");
      expect(body.checks.database).toMatch(/^unreachable: /);
      expect(body.message).toMatch(/^Not ready to serve: database unreachable: /);
      // Never the database URL (it may hold a password).
      expect(JSON.stringify(body)).not.toContain("postgres://");
      // Each check is bounded: a probe answers within the time limit (plus the machine's slack), never hangs.
      expect(down.ms).toBeLessThan(defaultLimits.readinessCheckTimeoutMs * 2 + 1000);
      // Alive all the same: an orchestrator must not restart it for the database's outage.
      expect((await t.app.inject({ method: "GET", url: "/healthz" })).statusCode).toBe(200);

      await cluster.start();
      const up = await readyzUntil(t, 200, 10_000);
      expect(up.statusCode).toBe(200);
      expect(up.json()).toEqual({ ok: true, checks: { database: "ok" } });
    }, 60_000);
  });
});

describe.skipIf(!redisServerAvailable())("readiness with Redis configured", () => {
  let redis: OwnRedis;
  beforeAll(async () => {
    redis = await startOwnRedis();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it("is 503 (redis unreachable, in bounded time) while Redis is down, and 200 again when it is back", async () => {
    const t = await open("sqlite", { env: { REDIS_URL: redis.url } });
    expect((await readyz(t)).json()).toEqual({ ok: true, checks: { database: "ok", redis: "ok" } });

    await redis.stop();
    const down = await timedReadyz(t);
    expect(down.response.statusCode).toBe(503);
    expect(down.response.json()).toMatchObject({
      error: "not_ready",
      checks: { database: "ok", redis: expect.stringMatching(/^unreachable: /) },
    });
    expect(down.response.json().message).toMatch(/^Not ready to serve: redis unreachable: /);
    expect(down.ms).toBeLessThan(defaultLimits.readinessCheckTimeoutMs * 2 + 1000);

    await redis.start();
    const up = await readyzUntil(t, 200, 10_000);
    expect(up.json()).toEqual({ ok: true, checks: { database: "ok", redis: "ok" } });
  }, 60_000);
});
