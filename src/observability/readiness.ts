import { sql } from "../db/kysely.js";
import type { AppContext } from "../context.js";
import { migrationProvider } from "../db/migrations/index.js";
import { TimedOut, withinMs } from "./time-limit.js";

/** A service Latchkey needs besides its database (Redis when configured), as `/readyz` checks it. */
export interface DependencyCheck {
  name: string;
  /** Resolves when the service answers; rejects (with the reason) when it does not. */
  ping(): Promise<void>;
}

/** What `/readyz` reports: per check `ok`, or why not (`unreachable: …`, `not migrated: …`). */
export interface Readiness {
  ready: boolean;
  checks: Record<string, string>;
}

const OK = "ok";

function reasonOf(error: unknown): string {
  if (error instanceof TimedOut) return error.message;
  const message = error instanceof Error ? error.message : String(error);
  // Driver errors are one line; an AggregateError (several addresses refused) has an empty message but a code.
  return message.split("\n")[0] || (error as { code?: string }).code || "error";
}

/** The migrations this code knows that the database has not applied, by name. */
async function pendingMigrations(ctx: Pick<AppContext, "db">): Promise<string[]> {
  const known = Object.keys(await migrationProvider.getMigrations());
  let applied: Set<string>;
  try {
    const rows = await sql<{ name: string }>`select name from latchkey_migrations`.execute(ctx.db);
    applied = new Set(rows.rows.map((row) => row.name));
  } catch (error) {
    // No migration table at all (PostgreSQL 42P01, SQLite "no such table"): an empty database. Anything else is not.
    const missing = (error as { code?: string }).code === "42P01" || /no such table/.test(String(error));
    if (!missing) throw error;
    applied = new Set();
  }
  return known.filter((name) => !applied.has(name)).sort();
}

/** The database answers, and has every migration this code knows. */
async function checkDatabase(ctx: Pick<AppContext, "db">, timeoutMs: number): Promise<string> {
  try {
    await withinMs(sql`select 1`.execute(ctx.db), timeoutMs);
  } catch (error) {
    return `unreachable: ${reasonOf(error)}`;
  }
  let pending: string[];
  try {
    pending = await withinMs(pendingMigrations(ctx), timeoutMs);
  } catch (error) {
    return `unreachable: ${reasonOf(error)}`;
  }
  if (pending.length > 0) return `not migrated: ${pending.length} pending (${pending.join(", ")}); run \`latchkey migrate\``;
  return OK;
}

async function checkDependency(dependency: DependencyCheck, timeoutMs: number): Promise<string> {
  try {
    await withinMs(dependency.ping(), timeoutMs);
    return OK;
  } catch (error) {
    return `unreachable: ${reasonOf(error)}`;
  }
}

/**
 * Whether this instance can serve: the database reachable and migrated to the latest migration this code knows, and
 * each dependency (Redis when configured) answering. Checks run side by side, each bounded by
 * `readinessCheckTimeoutMs`, so a database that is down makes the probe answer "not ready", never hang.
 */
export async function checkReadiness(ctx: Pick<AppContext, "db" | "config" | "dependencies">): Promise<Readiness> {
  const timeoutMs = ctx.config.limits.readinessCheckTimeoutMs;
  const names = ["database", ...ctx.dependencies.map((d) => d.name)];
  const results = await Promise.all([checkDatabase(ctx, timeoutMs), ...ctx.dependencies.map((d) => checkDependency(d, timeoutMs))]);
  const checks: Record<string, string> = {};
  names.forEach((name, i) => (checks[name] = results[i] ?? "unknown"));
  return { ready: results.every((result) => result === OK), checks };
}
