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

export interface Runtime {
  ctx: AppContext;
  store: Store;
  outboxDir: string;
  /** Delivers the mail queue through this runtime's transport: woken after requests, and by `serve` every poll interval. */
  mailSender: MailSender;
  /** Stops the mail sender (the sends in progress finish), then closes the transport, Redis and the database. */
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
  /** The mail sender's options (tests fix the jitter; metrics count its events with `onEvent`). */
  mailSender?: MailSenderOptions;
  /** Prefix of the attempt counters' keys in Redis: tests give each app its own, so parallel test files never share counters. */
  attemptKeyPrefix?: string;
}

/** Opens what a configuration names: the database, Redis (if set), the mail transport and its sender. */
export async function openRuntime(config: Config, options: RuntimeOptions = {}): Promise<Runtime> {
  const store = connect({ databaseUrl: config.databaseUrl, sqliteFile: sqliteFileIn(config.dataDir) });
  if (options.migrate) await migrateToLatest(store.db);
  const clock = options.clock ?? systemClock;
  // ioredis is loaded only when Redis is configured (memory, issue 10).
  const redis =
    config.redisUrl !== undefined
      ? new (await import("ioredis")).Redis(config.redisUrl, { maxRetriesPerRequest: 2, lazyConnect: true })
      : undefined;
  if (redis) await redis.connect();
  const outboxDir = outboxDirOf(config);
  const mailer =
    options.mailer ??
    createMailer({
      smtpUrl: config.smtpUrl,
      from: config.mailFrom,
      outboxDir,
      timeoutMs: config.limits.mailSendTimeoutSeconds * 1000,
      ...(options.onOutboxMessage ? { onOutboxMessage: options.onOutboxMessage } : {}),
    });
  const ctx: AppContext = {
    db: store.db,
    dialect: store.dialect,
    config,
    clock,
    queuedMail: new QueuedMail(),
    attempts: redis ? new RedisAttemptStore(redis, options.attemptKeyPrefix) : new DatabaseAttemptStore(store.db, clock),
  };
  const mailSender = new MailSender(ctx, mailer, options.mailSender);
  mailSender.serve(ctx.queuedMail);
  return {
    ctx,
    store,
    outboxDir,
    mailSender,
    async close() {
      await mailSender.stop();
      await mailer.close();
      if (redis) redis.disconnect();
      await store.close();
    },
  };
}
