import { join } from "node:path";
import type { Config } from "./config.js";
import type { AppContext } from "./context.js";
import { systemClock, type Clock } from "./clock.js";
import { connect, migrateToLatest, sqliteFileIn, type Store } from "./db/connect.js";
import { DatabaseAttemptStore, RedisAttemptStore } from "./auth/attempts.js";
import { createMailer } from "./mail/transport.js";
import type { MailMessage, Mailer } from "./mail/mailer.js";
import { QueuedMail } from "./mail/queue.js";
import { MailSender, type MailSenderOptions } from "./mail/sender.js";
import { checkDatabase, connectRedis, databaseLabel, reasonOf, StartupError } from "./startup-checks.js";
import { noMetrics } from "./observability/metrics.js";
import type { PrometheusMetrics } from "./observability/prometheus.js";
import type { DependencyCheck } from "./observability/readiness.js";
import { countActiveSessions } from "./auth/sessions.js";

export interface Runtime {
  ctx: AppContext;
  store: Store;
  outboxDir: string;
  /** Delivers the mail queue through this runtime's transport: woken after requests, and by `serve` every poll interval. */
  mailSender: MailSender;
  /** The metrics registry the metrics listener serves, when `LATCHKEY_METRICS_ADDR` is set. */
  metrics: PrometheusMetrics | undefined;
  /**
   * Where warnings about the dependencies go (Redis gone and back, a pooled PostgreSQL connection replaced): plain lines
   * on stderr until `serve` attaches its JSON logger, then warn-level log lines in the one log stream.
   */
  attachLog(log: DependencyLog): void;
  /** Stops the mail sender (the sends in progress finish), then closes the transport, Redis and the database. */
  close(): Promise<void>;
}

/** The part of the server's logger the runtime writes its warnings to. */
export interface DependencyLog {
  warn(fields: Record<string, unknown>, msg: string): void;
}

function outboxDirOf(config: Config): string {
  return join(config.dataDir, "outbox");
}

export interface RuntimeOptions {
  clock?: Clock;
  mailer?: Mailer;
  onOutboxMessage?: (file: string, message: MailMessage) => void;
  migrate?: boolean;
  /** The mail sender's options (tests fix the jitter; metrics count its events with `onEvent`). */
  mailSender?: MailSenderOptions;
  /** Prefix of the attempt counters' keys in Redis: tests give each app its own, so parallel test files never share counters. */
  attemptKeyPrefix?: string;
}

/**
 * Opens what a configuration names: the database, Redis (if set), the mail transport and its sender. The database and
 * Redis must answer first: otherwise it throws a `StartupError` naming which (src/startup-checks.ts).
 */
export async function openRuntime(config: Config, options: RuntimeOptions = {}): Promise<Runtime> {
  const checkTimeoutMs = config.limits.startupCheckTimeoutSeconds * 1000;
  const database = databaseLabel(config.databaseUrl, config.dataDir);
  let log: DependencyLog = {
    warn: (fields, msg) => process.stderr.write(`latchkey: ${msg}${fields["reason"] ? ` (${String(fields["reason"])})` : ""}\n`),
  };
  let store: Store;
  try {
    store = connect({
      onIdleConnectionError: (error) => log.warn({ reason: error.message }, "an idle PostgreSQL connection failed and will be replaced"),
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
      log.warn({ reason: error.message }, "Redis is unreachable; sign-in answers 503 until it is back");
    });
    redis.on("ready", () => {
      if (down) log.warn({}, "Redis is reachable again");
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
      timeoutMs: config.limits.mailSendTimeoutSeconds * 1000,
      maxConnections: config.limits.mailBatchSize,
      ...(options.onOutboxMessage ? { onOutboxMessage: options.onOutboxMessage } : {}),
    });
  const dependencies: DependencyCheck[] = [];
  if (redis) dependencies.push({ name: "redis", ping: async () => void (await redis.ping()) });
  // prom-client is loaded only when metrics are on (memory, issue 10).
  const metrics = config.metricsAddr
    ? new (await import("./observability/prometheus.js")).PrometheusMetrics(config.limits.metricsGaugeTimeoutMs)
    : undefined;
  const ctx: AppContext = {
    db: store.db,
    dialect: store.dialect,
    config,
    clock,
    queuedMail: new QueuedMail(),
    attempts: redis
      ? new RedisAttemptStore(redis, options.attemptKeyPrefix, config.limits.dependencyRetryAfterSeconds)
      : new DatabaseAttemptStore(store.db, clock),
    metrics: metrics ?? noMetrics,
    dependencies,
  };
  if (metrics) {
    metrics.gaugeOnScrape(
      "sessions_active",
      "Sessions that would be accepted now, across every instance (one count query per scrape).",
      () => countActiveSessions(ctx),
    );
    const poolStats = store.poolStats;
    if (poolStats) {
      metrics.gaugeOnScrape("db_pool_connections", "PostgreSQL connections open in this instance's pool.", () => poolStats().total);
      metrics.gaugeOnScrape("db_pool_idle_connections", "PostgreSQL connections of the pool that are idle.", () => poolStats().idle);
      metrics.gaugeOnScrape("db_pool_waiting_queries", "Queries waiting for a free PostgreSQL connection.", () => poolStats().waiting);
    }
  }
  // The sender's events are counted by the metrics (unless the caller counts them itself).
  const mailSender = new MailSender(ctx, mailer, { onEvent: ctx.metrics.mailEvent, ...options.mailSender });
  mailSender.serve(ctx.queuedMail);
  return {
    ctx,
    store,
    outboxDir,
    mailSender,
    metrics,
    attachLog(to) {
      log = to;
    },
    async close() {
      await mailSender.stop();
      await mailer.close();
      if (redis) redis.disconnect();
      await store.close();
    },
  };
}
