import type { Redis } from "ioredis";
import { LatchkeyError } from "../errors.js";
import type { Kysely } from "kysely";
import type { Clock } from "../clock.js";
import type { Database } from "../db/schema.js";
import { compiledOnce } from "../db/compiled-once.js";

/**
 * Fixed-window attempt counters shared by every instance: in the database by default, in Redis when `REDIS_URL` is
 * set. Both increment atomically, so parallel requests on several instances can never slip past a limit together.
 */
export interface AttemptStore {
  /** Adds one to `key` and returns the new count in the current window. */
  hit(key: string, windowSeconds: number): Promise<number>;
  /** The count in the current window, without adding. */
  count(key: string): Promise<number>;
  /** Seconds until the current window of `key` ends (0 when there is none). */
  retryAfterSeconds(key: string): Promise<number>;
  reset(key: string): Promise<void>;
}

/**
 * One statement: insert, or restart an ended window, or add one. Atomic in SQLite and PostgreSQL alike. Compiled once
 * (it runs twice in every password step).
 */
const hitQuery = compiledOnce<{ key: string; now: number; resetAt: number }, { count: number }>((db, p) =>
  db
    .insertInto("attempt_counters")
    .values({ key: p("key"), count: 1, reset_at: p("resetAt") })
    .onConflict((oc) =>
      oc.column("key").doUpdateSet((eb) => ({
        count: eb
          .case()
          .when("attempt_counters.reset_at", "<=", p<number>("now"))
          .then(1)
          .else(eb("attempt_counters.count", "+", 1))
          .end(),
        reset_at: eb
          .case()
          .when("attempt_counters.reset_at", "<=", p<number>("now"))
          .then(p<number>("resetAt"))
          .else(eb.ref("attempt_counters.reset_at"))
          .end(),
      })),
    )
    .returning("count"),
);

export class DatabaseAttemptStore implements AttemptStore {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly clock: Clock,
  ) {}

  async hit(key: string, windowSeconds: number): Promise<number> {
    const now = this.clock.now();
    const row = (await this.db.executeQuery(hitQuery(this.db, { key, now, resetAt: now + windowSeconds * 1000 }))).rows[0];
    if (row === undefined) throw new Error("the attempt counter returned no row");
    return Number(row.count);
  }

  async count(key: string): Promise<number> {
    const row = await this.db.selectFrom("attempt_counters").select(["count", "reset_at"]).where("key", "=", key).executeTakeFirst();
    return row && row.reset_at > this.clock.now() ? Number(row.count) : 0;
  }

  async retryAfterSeconds(key: string): Promise<number> {
    const row = await this.db.selectFrom("attempt_counters").select("reset_at").where("key", "=", key).executeTakeFirst();
    return row ? Math.max(0, Math.ceil((row.reset_at - this.clock.now()) / 1000)) : 0;
  }

  async reset(key: string): Promise<void> {
    await this.db.deleteFrom("attempt_counters").where("key", "=", key).execute();
  }
}

/**
 * Redis counters expire by Redis's own clock, so they ignore the injected clock: tests of window expiry use the
 * database store, tests of Redis check sharing and atomicity.
 */
/**
 * Attempt limits fail closed: when Redis cannot answer, the attempt is refused (503 `throttle_unavailable`), never let
 * through uncounted — an attacker who can make Redis slow must not get unthrottled guesses.
 */
async function failClosed<T>(retryAfterSeconds: number, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    throw new LatchkeyError(
      "throttle_unavailable",
      "Sign-in is briefly unavailable because the attempt counter cannot be reached. Try again in a few seconds.",
      { retryAfterSeconds },
      { cause: error },
    );
  }
}

export class RedisAttemptStore implements AttemptStore {
  constructor(
    private readonly redis: Redis,
    private readonly prefix = "latchkey:attempts:",
    /** `Retry-After` of the 503 when Redis cannot answer. */
    private readonly unavailableRetryAfterSeconds = 5,
  ) {}

  async hit(key: string, windowSeconds: number): Promise<number> {
    const k = this.prefix + key;
    return failClosed(this.unavailableRetryAfterSeconds, async () => {
      // INCR then set the expiry only on a new key (NX), in one round trip: the window starts at the first attempt.
      const result = await this.redis.multi().incr(k).expire(k, windowSeconds, "NX").exec();
      const [error, count] = result?.[0] ?? [new Error("no reply from Redis"), null];
      if (error) throw error;
      return typeof count === "number" ? count : Number(count);
    });
  }

  async count(key: string): Promise<number> {
    const value = await failClosed(this.unavailableRetryAfterSeconds, () => this.redis.get(this.prefix + key));
    return value === null ? 0 : Number(value);
  }

  async retryAfterSeconds(key: string): Promise<number> {
    const ttl = await failClosed(this.unavailableRetryAfterSeconds, () => this.redis.ttl(this.prefix + key));
    return ttl > 0 ? ttl : 0;
  }

  async reset(key: string): Promise<void> {
    await failClosed(this.unavailableRetryAfterSeconds, () => this.redis.del(this.prefix + key));
  }
}
