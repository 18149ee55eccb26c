import type SQLite from "better-sqlite3";
import type pg from "pg";
import type { CompiledQuery, Kysely, PostgresPool, PostgresPoolClient, SqliteDatabase } from "kysely";

/**
 * Statements of the hot path (src/auth/session-lookup.ts) by their SQL text, a small fixed set, with their names.
 * Kysely sends every query to PostgreSQL unnamed (parsed and planned on every call); a statement registered here is
 * sent as a named prepared statement and runs past Kysely's executor (`readKept`). (On SQLite every statement is kept
 * prepared: `withKeptStatements`.)
 */
const keptPrepared = new Map<string, string>();

/**
 * Keeps the statement with this SQL text prepared: on PostgreSQL it is sent as the named prepared statement `name`
 * (prepared once per pooled connection), and it may be run by `readKept`. The name must be unique.
 */
export function keepPrepared(name: string, sqlText: string): void {
  const existing = keptPrepared.get(sqlText);
  if (existing !== undefined && existing !== name) throw new Error(`statement already kept prepared as ${existing}`);
  keptPrepared.set(sqlText, name);
}

/**
 * Statements kept prepared per SQLite connection, by SQL text, the least recently used dropped past this many. Kysely
 * asks better-sqlite3 to prepare every statement it runs, and preparing cost more than running for most of ours (an
 * eighth of the session check, about a tenth of the password step's main-thread time, issue 10); the app's statements
 * are a few hundred distinct texts.
 */
const SQLITE_STATEMENT_CACHE_SIZE = 500;

/**
 * The better-sqlite3 database as Kysely's SQLite dialect sees it, each statement prepared once and reused. Safe to
 * reuse: Kysely runs a statement to completion synchronously (`all` or `run`), and SQLite prepares it again by itself
 * should the schema change. The one exception, a streamed select (`iterate`), keeps its statement busy until the
 * stream ends: a busy statement is never handed out again, a fresh one is prepared instead.
 */
export function withKeptStatements(database: SQLite.Database): SqliteDatabase {
  const statements = new Map<string, SQLite.Statement>();
  return {
    prepare(sqlText: string) {
      const cached = statements.get(sqlText);
      if (cached !== undefined && !cached.busy) {
        // Most recently used last: the first entry is the one to drop.
        statements.delete(sqlText);
        statements.set(sqlText, cached);
        return cached;
      }
      const statement = database.prepare(sqlText);
      if (cached === undefined) {
        statements.set(sqlText, statement);
        if (statements.size > SQLITE_STATEMENT_CACHE_SIZE) statements.delete(statements.keys().next().value as string);
      }
      return statement;
    },
    close: () => void database.close(),
  };
}

/** A pooled PostgreSQL client that sends the kept statements as named prepared statements. */
function namingClient(client: pg.PoolClient): PostgresPoolClient {
  return {
    query: ((sqlOrCursor: unknown, parameters?: readonly unknown[]) => {
      const name = typeof sqlOrCursor === "string" ? keptPrepared.get(sqlOrCursor) : undefined;
      if (name !== undefined) return client.query({ name, text: sqlOrCursor as string, values: parameters as unknown[] });
      return (client.query as (...args: unknown[]) => unknown)(sqlOrCursor, parameters);
    }) as PostgresPoolClient["query"],
    release: (destroy?: boolean) => client.release(destroy),
  };
}

/**
 * The pg pool as Kysely's PostgreSQL dialect sees it: each client names the kept statements. One wrapper per client, so
 * Kysely (which keys its connection objects by client) sees the same client every time.
 */
export function withNamedStatements(pool: pg.Pool): PostgresPool {
  const wrapped = new WeakMap<pg.PoolClient, PostgresPoolClient>();
  return {
    async connect() {
      const client = await pool.connect();
      let named = wrapped.get(client);
      if (named === undefined) {
        named = namingClient(client);
        wrapped.set(client, named);
      }
      return named;
    },
    end: () => pool.end(),
  };
}

/**
 * Runs a kept read statement past Kysely's executor: no connection hand-out, plugin pass or result copy, and on SQLite
 * no promise at all. Set per database handle by `connect` (src/db/connect.ts); a transaction's handle has none, so a
 * read inside a transaction stays inside it.
 */
export type DirectRead = (sqlText: string, parameters: readonly unknown[]) => unknown[] | Promise<unknown[]>;

const directReads = new WeakMap<Kysely<never>, DirectRead>();

export function setDirectRead<DB>(db: Kysely<DB>, read: DirectRead): void {
  directReads.set(db as unknown as Kysely<never>, read);
}

/**
 * The rows of a kept read statement (`keepPrepared`) with these parameters: by the handle's direct read when it has
 * one, else through Kysely. The statement must only read: on SQLite the direct read runs on a read-only connection.
 */
export async function readKept<DB, R>(db: Kysely<DB>, query: CompiledQuery<R>, parameters: readonly unknown[]): Promise<R[]> {
  const direct = directReads.get(db as unknown as Kysely<never>);
  if (direct !== undefined) return (await direct(query.sql, parameters)) as R[];
  return (await db.executeQuery<R>({ ...query, parameters })).rows;
}

/**
 * SQLite's direct read: a second, read-only connection to the same file, with the kept statements prepared once.
 * In WAL mode a reader never waits for the writer and each statement reads the last committed state: a sign-out or a
 * removal committed by any connection of any process is seen by the next read. Reads on the writer's connection would
 * instead see a transaction's uncommitted rows while Kysely holds it open between two awaits.
 */
export function sqliteDirectRead(reader: SQLite.Database): DirectRead {
  const statements = withKeptStatements(reader);
  return (sqlText, parameters) => {
    if (!keptPrepared.has(sqlText)) throw new Error("a direct read runs only statements kept prepared");
    return (statements.prepare(sqlText) as SQLite.Statement).all(...parameters);
  };
}

/** PostgreSQL's direct read: the pool's own query, with the statement's name, so each connection prepares it once. */
export function postgresDirectRead(pool: pg.Pool): DirectRead {
  return async (sqlText, parameters) => {
    const name = keptPrepared.get(sqlText);
    if (name === undefined) throw new Error("a direct read runs only statements kept prepared");
    return (await pool.query({ name, text: sqlText, values: parameters as unknown[] })).rows;
  };
}
