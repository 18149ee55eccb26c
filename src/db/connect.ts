import { chmodSync, closeSync, existsSync, mkdirSync, openSync, statSync } from "node:fs";
import { join } from "node:path";
import { createRequire } from "node:module";
import type SQLite from "better-sqlite3";
import type pg from "pg";
import type { Kysely, MigrationResultSet } from "kysely";
import { KyselyClass, Migrator, PostgresDialect, SqliteDialect } from "./kysely.js";
import type { Database } from "./schema.js";
import { migrationProvider } from "./migrations/index.js";
import { postgresDirectRead, setDirectRead, sqliteDirectRead, withKeptStatements, withNamedStatements } from "./prepared.js";

export type Dialect = "sqlite" | "postgres";

export interface Store {
  db: Kysely<Database>;
  dialect: Dialect;
  /** PostgreSQL: the connection pool's numbers now (for metrics); SQLite has no pool. */
  poolStats?: () => PoolStats;
  close(): Promise<void>;
}

/** pg's Pool counters: connections open, of them idle, and queries waiting for a connection. */
export interface PoolStats {
  total: number;
  idle: number;
  waiting: number;
}

const requireDriver = createRequire(import.meta.url);

/** The driver of the one dialect in use, loaded when connecting: the other one's code and memory are never paid for. */
function loadPg(): typeof pg {
  const driver = requireDriver("pg") as typeof pg;
  // PostgreSQL returns int8 (bigint) as strings; our times are epoch milliseconds, far below 2^53.
  driver.types.setTypeParser(20, (value: string) => Number(value));
  return driver;
}

export interface ConnectOptions {
  databaseUrl: string | undefined;
  /** SQLite file when `databaseUrl` is unset. */
  sqliteFile: string;
  /** Pool size for PostgreSQL. */
  poolSize?: number;
  /** PostgreSQL: a new connection gives up after this long (`Limits.databaseConnectTimeoutMs`). */
  connectTimeoutMs?: number;
  /** PostgreSQL: a query without an answer fails after this long (`Limits.databaseQueryTimeoutMs`). */
  queryTimeoutMs?: number;
  /** Told when an idle PostgreSQL connection fails (default: one line on stderr). */
  onIdleConnectionError?: (error: Error) => void;
}

function defaultIdleConnectionError(error: Error): void {
  process.stderr.write(`latchkey: an idle PostgreSQL connection failed and will be replaced: ${error.message}\n`);
}

/** The SQLite file of a data directory (nothing created). */
export function sqliteFileOf(dataDir: string): string {
  return join(dataDir, "latchkey.db");
}

export function sqliteFileIn(dataDir: string): string {
  // 0700 when we create it: the data directory holds the database, the secret key and the mail outbox.
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  return sqliteFileOf(dataDir);
}

/** Owner read/write only: the database holds password hashes, sealed TOTP secrets and session hashes. */
const SQLITE_FILE_MODE = 0o600;

/**
 * Creates the SQLite file 0600 before SQLite opens it, and narrows a file (and its -wal, -shm) that an older version
 * left readable by others. SQLite creates -wal and -shm with the mode of the database file, so these follow.
 */
function restrictSqliteFiles(file: string): void {
  closeSync(openSync(file, "a", SQLITE_FILE_MODE));
  for (const path of [file, `${file}-wal`, `${file}-shm`]) {
    if (!existsSync(path) || (statSync(path).mode & 0o077) === 0) continue;
    try {
      chmodSync(path, SQLITE_FILE_MODE);
    } catch (error) {
      // Owned by another user (a deliberately shared setup): leave it as the operator arranged it.
      if ((error as NodeJS.ErrnoException).code !== "EPERM") throw error;
    }
  }
}

export function connect(options: ConnectOptions): Store {
  if (options.databaseUrl !== undefined) {
    const pool = new (loadPg().Pool)({
      connectionString: options.databaseUrl,
      max: options.poolSize ?? 10,
      // Bounded waits: with PostgreSQL down or restarting, a request fails over to a 503 instead of hanging.
      ...(options.connectTimeoutMs !== undefined ? { connectionTimeoutMillis: options.connectTimeoutMs } : {}),
      ...(options.queryTimeoutMs !== undefined ? { query_timeout: options.queryTimeoutMs } : {}),
    });
    // An idle pooled connection can die under us (PostgreSQL restarted, failover, the admin ended it). pg then
    // emits "error" on the pool; unhandled, that would crash the process. The pool replaces the connection on the
    // next query, so report it and go on.
    pool.on("error", (error) => (options.onIdleConnectionError ?? defaultIdleConnectionError)(error));
    // A connection that dies while checked out (mid-transaction, between two queries) emits "error" on its client,
    // and pg-pool listens only to idle ones: without a listener of ours that event would end the process. The query
    // waiting on it fails on its own (→ 503 database_unavailable) and the pool drops the dead client on release.
    pool.on("connect", (client) => {
      client.on("error", () => {});
    });
    const db = new KyselyClass<Database>({ dialect: new PostgresDialect({ pool: withNamedStatements(pool) }) });
    setDirectRead(db, postgresDirectRead(pool));
    const poolStats = (): PoolStats => ({ total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount });
    return { db, dialect: "postgres", poolStats, close: () => db.destroy() };
  }
  restrictSqliteFiles(options.sqliteFile);
  const database = new (requireDriver("better-sqlite3") as typeof SQLite)(options.sqliteFile);
  // WAL lets readers go on while one writer writes; busy_timeout makes a second process wait instead of failing.
  database.pragma("journal_mode = WAL");
  database.pragma("busy_timeout = 5000");
  database.pragma("foreign_keys = ON");
  database.pragma("synchronous = NORMAL");
  const db = new KyselyClass<Database>({ dialect: new SqliteDialect({ database: withKeptStatements(database) }) });
  // The hot path's reads (src/db/prepared.ts): a read-only connection beside the writer, after the writer made the file
  // and switched it to WAL.
  const reader = new (requireDriver("better-sqlite3") as typeof SQLite)(options.sqliteFile, { readonly: true, fileMustExist: true });
  reader.pragma("busy_timeout = 5000");
  setDirectRead(db, sqliteDirectRead(reader));
  return {
    db,
    dialect: "sqlite",
    close: async () => {
      await db.destroy();
      reader.close();
    },
  };
}

export async function migrateToLatest(db: Kysely<Database>): Promise<MigrationResultSet> {
  const migrator = new Migrator({
    db,
    provider: migrationProvider,
    migrationTableName: "latchkey_migrations",
    migrationLockTableName: "latchkey_migrations_lock",
    // Numbers are handed out when work starts and branches land in any order: a database that already has a later
    // migration still gets an earlier-numbered one that arrives after it. Each migration stands on its own.
    allowUnorderedMigrations: true,
  });
  const result = await migrator.migrateToLatest();
  if (result.error) throw result.error instanceof Error ? result.error : new Error(String(result.error));
  return result;
}
