import type SQLite from "better-sqlite3";
import type pg from "pg";
import type { CompiledQuery, Kysely, PostgresPool, PostgresPoolClient, SqliteDatabase } from "kysely";

/**
 * Statements kept prepared, by their SQL text: the hot path's (src/auth/session-lookup.ts), a small fixed set.
 * Kysely prepares every query anew (better-sqlite3 `prepare` was an eighth of the session check's time) and sends it to
 * PostgreSQL unnamed (parsed and planned on every call); a statement registered here is prepared once and reused.
 */
const keptPrepared = new Map<string, string>();

/**
 * Keeps the statement with this SQL text prepared: on SQLite the better-sqlite3 statement is cached, on PostgreSQL it
 * is sent as the named prepared statement `name` (prepared once per pooled connection). The name must be unique.
 */
export function keepPrepared(name: string, sqlText: string): void {
  const existing = keptPrepared.get(sqlText);
  if (existing !== undefined && existing !== name) throw new Error(`statement already kept prepared as ${existing}`);
  keptPrepared.set(sqlText, name);
}

/**
 * The better-sqlite3 database as Kysely's SQLite dialect sees it, with the kept statements prepared once. A cached
 * statement is safe to reuse: every Kysely call runs it to completion synchronously (`all` or `run`), and SQLite
 * prepares it again by itself should the schema change.
 */
export function withKeptStatements(database: SQLite.Database): SqliteDatabase {
  const statements = new Map<string, SQLite.Statement>();
  return {
    prepare(sqlText: string) {
      if (!keptPrepared.has(sqlText)) return database.prepare(sqlText);
      let statement = statements.get(sqlText);
      if (statement === undefined) {
        statement = database.prepare(sqlText);
        statements.set(sqlText, statement);
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
  const statements = new Map<string, SQLite.Statement>();
  return (sqlText, parameters) => {
    let statement = statements.get(sqlText);
    if (statement === undefined) {
      if (!keptPrepared.has(sqlText)) throw new Error("a direct read runs only statements kept prepared");
      statement = reader.prepare(sqlText);
      statements.set(sqlText, statement);
    }
    return statement.all(...parameters);
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
