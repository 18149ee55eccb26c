import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import type { Dialect } from "../../src/db/connect.js";

/** The server the PostgreSQL suite uses; each test file gets its own fresh database on it. */
export const POSTGRES_ADMIN_URL = process.env["TEST_POSTGRES_URL"] ?? "postgres://postgres@127.0.0.1:5432/test";
export const REDIS_TEST_URL = process.env["TEST_REDIS_URL"] ?? "redis://127.0.0.1:6379/15";

let postgresUp: Promise<boolean> | undefined;

/**
 * Whether PostgreSQL answers. In CI (CI=true) a missing server is a failure, never a silent skip; on a laptop without
 * PostgreSQL the PostgreSQL half of each suite is skipped with a note.
 */
export function postgresAvailable(): Promise<boolean> {
  postgresUp ??= (async () => {
    const client = new pg.Client({ connectionString: POSTGRES_ADMIN_URL, connectionTimeoutMillis: 3000 });
    try {
      await client.connect();
      await client.query("select 1");
      return true;
    } catch (error) {
      if (process.env["CI"])
        throw new Error(`PostgreSQL is required in CI but did not answer at ${POSTGRES_ADMIN_URL}: ${String(error)}`, { cause: error });
      console.warn(`PostgreSQL not reachable at ${POSTGRES_ADMIN_URL}: skipping the PostgreSQL half of the suite.`);
      return false;
    } finally {
      await client.end().catch(() => undefined);
    }
  })();
  return postgresUp;
}

export const dialects: Dialect[] = ["sqlite", "postgres"];

export interface TestDatabase {
  /** `undefined` → SQLite at `sqliteFile`. */
  databaseUrl: string | undefined;
  sqliteFile: string;
  dataDir: string;
  drop(): Promise<void>;
}

/** A fresh, empty database of the dialect: a temp SQLite file, or a new PostgreSQL database. */
export async function createTestDatabase(dialect: Dialect): Promise<TestDatabase> {
  const dataDir = mkdtempSync(join(tmpdir(), "latchkey-test-"));
  const sqliteFile = join(dataDir, "latchkey.db");
  if (dialect === "sqlite") {
    return { databaseUrl: undefined, sqliteFile, dataDir, drop: async () => rmSync(dataDir, { recursive: true, force: true }) };
  }
  if (!(await postgresAvailable())) throw new Error("PostgreSQL is not available");
  const name = `latchkey_test_${randomBytes(6).toString("hex")}`;
  const admin = new pg.Client({ connectionString: POSTGRES_ADMIN_URL });
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();
  const url = new URL(POSTGRES_ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    databaseUrl: url.href,
    sqliteFile,
    dataDir,
    drop: async () => {
      const client = new pg.Client({ connectionString: POSTGRES_ADMIN_URL });
      await client.connect();
      await client.query(`drop database if exists ${name} with (force)`);
      await client.end();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
