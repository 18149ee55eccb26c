import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import SQLite from "better-sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import { loadConfig } from "../src/config.js";
import { openRuntime } from "../src/runtime.js";
import { seedMember, TEST_SECRET_KEY } from "./helpers/app.js";
import { createTestDatabase } from "./helpers/databases.js";
import { describeEachDialect } from "./helpers/dialects.js";

function modeOf(path: string): string {
  return (statSync(path).mode & 0o777).toString(8).padStart(4, "0");
}

const parents: string[] = [];
afterAll(() => {
  for (const dir of parents) rmSync(dir, { recursive: true, force: true });
});

/** A data directory that does not exist yet, so Latchkey creates it. */
function freshDataDir(): string {
  const parent = mkdtempSync(join(tmpdir(), "latchkey-perm-"));
  parents.push(parent);
  return join(parent, "data");
}

describe("data files (sqlite)", () => {
  it("a fresh data directory is 0700 and latchkey.db, its -wal and -shm are 0600, like secret.key", async () => {
    const dataDir = freshDataDir();
    const runtime = await openRuntime(loadConfig({ LATCHKEY_DATA_DIR: dataDir, LOG_LEVEL: "silent" }), { migrate: true });
    try {
      await seedMember(runtime);
      const db = join(dataDir, "latchkey.db");
      // While the database is open in WAL mode, SQLite keeps all three files.
      expect(existsSync(`${db}-wal`)).toBe(true);
      expect(existsSync(`${db}-shm`)).toBe(true);
      expect({
        dir: modeOf(dataDir),
        key: modeOf(join(dataDir, "secret.key")),
        db: modeOf(db),
        wal: modeOf(`${db}-wal`),
        shm: modeOf(`${db}-shm`),
        outbox: modeOf(join(dataDir, "outbox")),
      }).toEqual({
        dir: "0700",
        key: "0600",
        db: "0600",
        wal: "0600",
        shm: "0600",
        outbox: "0700",
      });
    } finally {
      await runtime.close();
    }
  });

  it("a database an older version left readable by others (0644) is made 0600 when opened", async () => {
    const dataDir = freshDataDir();
    mkdirSync(dataDir, { recursive: true });
    const db = join(dataDir, "latchkey.db");
    const old = new SQLite(db);
    old.pragma("journal_mode = WAL");
    old.exec("create table t (x)");
    chmodSync(db, 0o644);
    // Opened by someone else meanwhile: the -wal and -shm exist too, with the old mode.
    const runtime = await openRuntime(loadConfig({ LATCHKEY_DATA_DIR: dataDir, LOG_LEVEL: "silent" }), { migrate: true });
    try {
      await seedMember(runtime);
      expect({ db: modeOf(db), wal: modeOf(`${db}-wal`), shm: modeOf(`${db}-shm`) }).toEqual({ db: "0600", wal: "0600", shm: "0600" });
    } finally {
      await runtime.close();
      old.close();
    }
  });
});

describeEachDialect("data directory", (dialect) => {
  it("Latchkey creates its data directory and outbox readable by the service user only (0700)", async () => {
    const database = await createTestDatabase(dialect);
    const dataDir = freshDataDir();
    const runtime = await openRuntime(
      loadConfig({
        LATCHKEY_DATA_DIR: dataDir,
        LATCHKEY_SECRET_KEY: TEST_SECRET_KEY,
        LOG_LEVEL: "silent",
        ...(database.databaseUrl ? { DATABASE_URL: database.databaseUrl } : {}),
      }),
      { migrate: true },
    );
    try {
      await seedMember(runtime);
      expect({ dir: modeOf(dataDir), outbox: modeOf(join(dataDir, "outbox")) }).toEqual({ dir: "0700", outbox: "0700" });
    } finally {
      await runtime.close();
      await database.drop();
    }
  });
});
