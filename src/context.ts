import type { Kysely } from "kysely";
import type { Clock } from "./clock.js";
import type { Config } from "./config.js";
import type { Database } from "./db/schema.js";
import type { Dialect } from "./db/connect.js";
import type { Mailer } from "./mail/mailer.js";
import type { AttemptStore } from "./auth/attempts.js";
import type { Metrics } from "./observability/metrics.js";
import type { DependencyCheck } from "./observability/readiness.js";

/** What every domain function may use. Built once in `server.ts`; tests build their own with a test clock and mailer. */
export interface AppContext {
  db: Kysely<Database>;
  dialect: Dialect;
  config: Config;
  clock: Clock;
  mailer: Mailer;
  attempts: AttemptStore;
  /** Where the domain and the HTTP layer report metrics (`noMetrics` when `LATCHKEY_METRICS_ADDR` is unset). */
  metrics: Metrics;
  /** The services besides the database that `/readyz` checks: Redis when configured. */
  dependencies: readonly DependencyCheck[];
}

/** Where a request came from, for audit events and notification emails. */
export interface RequestInfo {
  ip: string | null;
  userAgent: string | null;
}

/** The same context over a transaction: domain calls made with it read and write inside `tx`. */
export function withTx(ctx: AppContext, tx: Kysely<Database>): AppContext {
  return { ...ctx, db: tx };
}
