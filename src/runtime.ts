import { join } from "node:path";
import type { Config } from "./config.js";
import type { AppContext } from "./context.js";
import { systemClock, type Clock } from "./clock.js";
import { connect, migrateToLatest, sqliteFileIn, type Store } from "./db/connect.js";
import { DatabaseAttemptStore, RedisAttemptStore } from "./auth/attempts.js";
import { createMailer } from "./mail/transport.js";
import type { MailMessage, Mailer } from "./mail/mailer.js";
import { checkDatabase, connectRedis, databaseLabel, reasonOf, StartupError } from "./startup-checks.js";

export interface Runtime {
  ctx: AppContext;
  store: Store;
  outboxDir: string;
  close(): Promise<void>;
}

function outboxDirOf(config: Config): string {
  return join(config.dataDir, "outbox");
}

export interface RuntimeOptions {
  clock?: Clock;
  mailer?: Mailer;
  onOutboxMessage?: (file: string, message: MailMessage) => void;
  migrate?: boolean;
  /** Prefix of the attempt counters' keys in Redis: tests give each app its own, so parallel test files never share counters. */
  attemptKeyPrefix?: string;
}

/**
 * Opens what a configuration names: the database, Redis (if set), the mail transport. The database and Redis must
 * answer first: otherwise it throws a `StartupError` naming which (src/startup-checks.ts).
 */
export async function openRuntime(config: Config, options: RuntimeOptions = {}): Promise<Runtime> {
  const checkTimeoutMs = config.limits.startupCheckTimeoutSeconds * 1000;
  const database = databaseLabel(config.databaseUrl, config.dataDir);
  let store: Store;
  try {
    store = connect({
      databaseUrl: config.databaseUrl,
      sqliteFile: sqliteFileIn(config.dataDir),
      connectTimeoutMs: config.limits.databaseConnectTimeoutMs,
      queryTimeoutMs: config.limits.databaseQueryTimeoutMs,
    });
  } catch (error) {
    throw new StartupError(`cannot open the ${database}: ${reasonOf(error)}`);
  }
  // Each failure below names what failed and closes what was opened, so the process can exit.
  try {
    await checkDatabase(store, database, checkTimeoutMs);
    if (options.migrate) {
      try {
        await migrateToLatest(store.db);
      } catch (error) {
        throw new StartupError(`cannot migrate the ${database}: ${reasonOf(error)}`);
      }
    }
  } catch (error) {
    await store.close().catch(() => undefined);
    throw error;
  }
  const clock = options.clock ?? systemClock;
  // ioredis is loaded only when Redis is configured (memory, issue 10).
  const redis =
    config.redisUrl !== undefined
      ? new (await import("ioredis")).Redis(config.redisUrl, {
          lazyConnect: true,
          // Fail closed and fast while Redis is away: no offline queue (a command fails at once instead of waiting for
          // a reconnect), a bound on each command, and reconnects in the background (ioredis's default strategy, at
          // most 2 s apart) so throttling is back within seconds of Redis, without a restart.
          enableOfflineQueue: false,
          maxRetriesPerRequest: 1,
          commandTimeout: config.limits.redisCommandTimeoutMs,
        })
      : undefined;
  if (redis && config.redisUrl !== undefined) {
    try {
      await connectRedis(redis, config.redisUrl, checkTimeoutMs);
    } catch (error) {
      await store.close().catch(() => undefined);
      throw error;
    }
    // ioredis reports every failed reconnect as an "error" event; unheard, it prints a stack per attempt. One line
    // per outage is enough: requests meanwhile answer 503 `throttle_unavailable`.
    let down = false;
    redis.on("error", (error: Error) => {
      if (down) return;
      down = true;
      process.stderr.write(`latchkey: Redis is unreachable (${error.message}); sign-in answers 503 until it is back\n`);
    });
    redis.on("ready", () => {
      if (down) process.stderr.write("latchkey: Redis is reachable again\n");
      down = false;
    });
  }
  const outboxDir = outboxDirOf(config);
  const mailer =
    options.mailer ??
    createMailer({
      smtpUrl: config.smtpUrl,
      from: config.mailFrom,
      outboxDir,
      ...(options.onOutboxMessage ? { onOutboxMessage: options.onOutboxMessage } : {}),
    });
  const ctx: AppContext = {
    db: store.db,
    dialect: store.dialect,
    config,
    clock,
    mailer,
    attempts: redis
      ? new RedisAttemptStore(redis, options.attemptKeyPrefix, config.limits.dependencyRetryAfterSeconds)
      : new DatabaseAttemptStore(store.db, clock),
  };
  return {
    ctx,
    store,
    outboxDir,
    async close() {
      await mailer.close();
      if (redis) redis.disconnect();
      await store.close();
    },
  };
}
