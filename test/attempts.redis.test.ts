import type { FastifyInstance } from "fastify";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DatabaseAttemptStore, RedisAttemptStore } from "../src/auth/attempts.js";
import { newId } from "../src/auth/tokens.js";
import { TestClock } from "./helpers/clock.js";
import { loadConfig } from "../src/config.js";
import type { AppContext } from "../src/context.js";
import type { Dialect } from "../src/db/connect.js";
import { openRuntime, type Runtime } from "../src/runtime.js";
import { buildApp } from "../src/server.js";
import { createTestDatabase, REDIS_TEST_URL, type TestDatabase } from "./helpers/databases.js";
import { describeEachDialect } from "./helpers/dialects.js";
import { Browser, MemoryMailer, seedMember, startTestApp, TEST_SECRET_KEY, type TestApp } from "./helpers/app.js";

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i + 1);
}

async function deleteKeys(redis: Redis, prefix: string): Promise<void> {
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length) await redis.del(...keys);
}

describe("Redis attempt store", () => {
  let redis: Redis;
  let store: RedisAttemptStore;
  const prefix = `latchkey-test:${newId()}:`;
  beforeAll(async () => {
    redis = new Redis(REDIS_TEST_URL, { maxRetriesPerRequest: 1 });
    await redis.ping();
    store = new RedisAttemptStore(redis, prefix);
  });
  afterAll(async () => {
    await deleteKeys(redis, prefix);
    redis?.disconnect();
  });

  it("50 parallel hits count to 50, each hit getting a distinct count from 1 to 50", async () => {
    const counts = await Promise.all(Array.from({ length: 50 }, () => store.hit("parallel", 60)));
    expect([...counts].sort((a, b) => a - b)).toEqual(range(50));
    expect(await store.count("parallel")).toBe(50);
  });

  it("50 parallel hits from two separate clients (two instances) also count to exactly 50", async () => {
    const other = new Redis(REDIS_TEST_URL, { maxRetriesPerRequest: 1 });
    try {
      const second = new RedisAttemptStore(other, prefix);
      const counts = await Promise.all(Array.from({ length: 50 }, (_, i) => (i % 2 ? store : second).hit("two-clients", 60)));
      expect([...counts].sort((a, b) => a - b)).toEqual(range(50));
      expect(await second.count("two-clients")).toBe(50);
    } finally {
      other.disconnect();
    }
  });

  it("a window ends after its length and counting starts again at 1", async () => {
    expect(await store.hit("window", 1)).toBe(1);
    expect(await store.hit("window", 1)).toBe(2);
    expect(await store.retryAfterSeconds("window")).toBe(1);
    await new Promise((r) => setTimeout(r, 1200));
    expect(await store.count("window")).toBe(0);
    expect(await store.retryAfterSeconds("window")).toBe(0);
    expect(await store.hit("window", 1)).toBe(1);
  });

  it("later hits do not extend the window: it starts at the first attempt", async () => {
    await store.hit("fixed", 3);
    await new Promise((r) => setTimeout(r, 1100));
    await store.hit("fixed", 3);
    const ttl = await redis.pttl(`${prefix}fixed`);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(2000);
  });

  it("reset clears a counter, and an unknown key counts 0", async () => {
    await store.hit("reset-me", 60);
    await store.reset("reset-me");
    expect(await store.count("reset-me")).toBe(0);
    expect(await store.count(`never-${newId()}`)).toBe(0);
    expect(await store.retryAfterSeconds(`never-${newId()}`)).toBe(0);
  });

  it("keys live under the store's prefix only", async () => {
    await store.hit("prefixed", 60);
    expect(await redis.exists(`${prefix}prefixed`)).toBe(1);
    expect(await redis.exists("prefixed")).toBe(0);
  });
});

describeEachDialect("database attempt store", (dialect) => {
  let t: TestApp;
  let store: DatabaseAttemptStore;
  beforeAll(async () => {
    t = await startTestApp(dialect);
    store = new DatabaseAttemptStore(t.ctx.db, t.clock);
  });
  afterAll(async () => {
    await t?.close();
  });

  it("50 parallel hits count to 50, each hit getting a distinct count from 1 to 50", async () => {
    const counts = await Promise.all(Array.from({ length: 50 }, () => store.hit("parallel", 60)));
    expect([...counts].sort((a, b) => a - b)).toEqual(range(50));
    expect(await store.count("parallel")).toBe(50);
    const rows = await t.ctx.db.selectFrom("attempt_counters").selectAll().where("key", "=", "parallel").execute();
    expect(rows).toHaveLength(1);
  });

  it("50 parallel hits on a key that does not exist yet still make one row and count 1 to 50", async () => {
    const key = `fresh-${newId()}`;
    const counts = await Promise.all(Array.from({ length: 50 }, () => store.hit(key, 60)));
    expect([...counts].sort((a, b) => a - b)).toEqual(range(50));
  });

  it("a window ends after its length (test clock) and counting starts again at 1", async () => {
    await store.hit("window", 60);
    await store.hit("window", 60);
    expect(await store.retryAfterSeconds("window")).toBe(60);
    t.clock.advanceSeconds(59);
    expect(await store.count("window")).toBe(2);
    expect(await store.hit("window", 60)).toBe(3);
    t.clock.advanceSeconds(1);
    expect(await store.count("window")).toBe(0);
    expect(await store.hit("window", 60)).toBe(1);
    expect(await store.retryAfterSeconds("window")).toBe(60);
  });

  it("reset clears a counter", async () => {
    await store.hit("reset-me", 60);
    await store.reset("reset-me");
    expect(await store.count("reset-me")).toBe(0);
  });
});

interface Instance {
  app: FastifyInstance;
  ctx: AppContext;
  close(): Promise<void>;
}

/**
 * Two app instances as a deployment runs them: one database (two connections), one Redis (two clients) and one
 * counter prefix, each instance with its own mailer.
 */
async function startTwoInstances(
  dialect: Dialect,
): Promise<{ a: Instance; b: Instance; redis: Redis; prefix: string; close(): Promise<void> }> {
  const database: TestDatabase = await createTestDatabase(dialect);
  const config = loadConfig({
    LATCHKEY_DATA_DIR: database.dataDir,
    LATCHKEY_SECRET_KEY: TEST_SECRET_KEY,
    LOG_LEVEL: "silent",
    REDIS_URL: REDIS_TEST_URL,
    ...(database.databaseUrl ? { DATABASE_URL: database.databaseUrl } : {}),
  });
  const prefix = `latchkey-test:${newId()}:`;
  const clock = new TestClock();
  const runtimes: Runtime[] = [];
  async function instance(): Promise<Instance> {
    // Each instance opens its own database connection and its own Redis client, as `latchkey serve` does.
    const runtime = await openRuntime(config, { clock, mailer: new MemoryMailer(), migrate: true, attemptKeyPrefix: prefix });
    runtimes.push(runtime);
    const app = await buildApp(runtime.ctx, { logger: false });
    await app.ready();
    return { app, ctx: runtime.ctx, close: () => app.close() };
  }
  const a = await instance();
  const b = await instance();
  const admin = new Redis(REDIS_TEST_URL, { maxRetriesPerRequest: 1 });
  return {
    a,
    b,
    redis: admin,
    prefix,
    async close() {
      await a.close();
      await b.close();
      await deleteKeys(admin, prefix);
      admin.disconnect();
      for (const runtime of runtimes) await runtime.close();
      await database.drop();
    },
  };
}

describeEachDialect("password attempt limits shared through Redis by two instances", (dialect) => {
  let two: Awaited<ReturnType<typeof startTwoInstances>>;
  beforeAll(async () => {
    two = await startTwoInstances(dialect);
  });
  afterAll(async () => {
    await two?.close();
  });

  async function login(app: FastifyInstance, email: string, password: string) {
    return app.inject({ method: "POST", url: "/api/v1/login", payload: { email, password } });
  }

  it("wrong passwords on both instances add up: after 10 in total the right password is paused on either instance", async () => {
    const member = await seedMember(two.a);
    const limit = two.a.ctx.config.limits.passwordFailuresPerEmail;
    for (let i = 0; i < limit; i++) {
      const response = await login(i % 2 ? two.b.app : two.a.app, member.email, `wrong password ${i}`);
      expect(response.statusCode).toBe(401);
      expect(response.json().error).toBe("invalid_credentials");
    }
    for (const app of [two.a.app, two.b.app]) {
      const paused = await login(app, member.email, member.password);
      expect(paused.statusCode).toBe(429);
      expect(paused.json().error).toBe("too_many_attempts");
      expect(Number(paused.headers["retry-after"])).toBeGreaterThan(0);
    }
    // The counter is in Redis, not in the database.
    expect(Number(await two.redis.get(`${two.prefix}login:email:${member.email}`))).toBeGreaterThanOrEqual(limit);
    expect(await two.a.ctx.db.selectFrom("attempt_counters").select("key").execute()).toHaveLength(0);
  });

  it("below the limit, a right password on the other instance signs in and clears the shared count", async () => {
    const member = await seedMember(two.a);
    for (let i = 0; i < 3; i++) expect((await login(two.a.app, member.email, "nope nope nope")).statusCode).toBe(401);
    const browser = new Browser(two.b.app);
    const accepted = await browser.request("POST", "/api/v1/login", { json: { email: member.email, password: member.password } });
    expect(accepted.statusCode).toBe(200);
    expect(accepted.json()).toEqual({ next: "email_link" });
    expect(await two.redis.exists(`${two.prefix}login:email:${member.email}`)).toBe(0);
  });

  it("parallel wrong passwords split across both instances never get more than the limit through to a password check", async () => {
    const member = await seedMember(two.a);
    const responses = await Promise.all(
      Array.from({ length: 24 }, (_, i) => login(i % 2 ? two.b.app : two.a.app, member.email, `parallel wrong ${i}`)),
    );
    const limit = two.a.ctx.config.limits.passwordFailuresPerEmail;
    expect(responses.filter((r) => r.statusCode === 401)).toHaveLength(limit);
    expect(responses.filter((r) => r.statusCode === 429)).toHaveLength(24 - limit);
    const paused = await login(two.b.app, member.email, member.password);
    expect(paused.statusCode).toBe(429);
  });
});
