import { execFile } from "node:child_process";
import { chmodSync, copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import SQLite from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newId } from "../src/auth/tokens.js";
import { backupSqlite, BackupError } from "../src/db/backup.js";
import { startTestApp, TEST_SECRET_KEY, type TestApp } from "./helpers/app.js";
import { createTestDatabase, type TestDatabase } from "./helpers/databases.js";
import { describeOnPostgres } from "./helpers/dialects.js";

const DETAIL = JSON.stringify({ note: "x".repeat(2000) });

/** Adds `n` audit events of `type` in one transaction (2 kB each: a database of many pages quickly). */
async function seedEvents(t: TestApp, type: string, n: number): Promise<void> {
  await t.ctx.db.transaction().execute(async (tx) => {
    for (let i = 0; i < n; i += 500) {
      const rows = Array.from({ length: Math.min(500, n - i) }, () => ({
        id: newId(),
        account_id: null,
        user_id: null,
        actor_user_id: null,
        type,
        ip: null,
        user_agent: null,
        detail: DETAIL,
        created_at: t.clock.now(),
      }));
      await tx.insertInto("audit_events").values(rows).execute();
    }
  });
}

/**
 * A writer like the server under load: one insert, then back to the event loop (as a server between requests), until
 * stopped. `committed` counts the inserts done.
 */
function startWriter(t: TestApp): { committed: () => number; stop: () => Promise<void> } {
  let count = 0;
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      await t.ctx.db
        .insertInto("audit_events")
        .values({
          id: newId(),
          account_id: null,
          user_id: null,
          actor_user_id: null,
          type: "writer",
          ip: null,
          user_agent: null,
          detail: "{}",
          created_at: t.clock.now(),
        })
        .execute();
      count += 1;
      await new Promise((resolve) => setImmediate(resolve));
    }
  })();
  return {
    committed: () => count,
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
}

function countOf(file: string, type: string): number {
  const db = new SQLite(file, { readonly: true });
  try {
    return (db.prepare("select count(*) as n from audit_events where type = ?").get(type) as { n: number }).n;
  } finally {
    db.close();
  }
}

function integrityOf(file: string): string {
  const db = new SQLite(file, { readonly: true });
  try {
    return (db.pragma("integrity_check") as Array<{ integrity_check: string }>).map((r) => r.integrity_check).join("; ");
  } finally {
    db.close();
  }
}

const modeOf = (file: string): number => statSync(file).mode & 0o777;

describe("SQLite backup (online, consistent)", () => {
  let t: TestApp;
  let source: string;
  let out: string;
  beforeAll(async () => {
    t = await startTestApp("sqlite");
    source = join(t.config.dataDir, "latchkey.db");
    out = mkdtempSync(join(tmpdir(), "latchkey-backup-"));
    // ~10 MB: the backup takes many steps, so the writer gets in between them.
    await seedEvents(t, "seed", 5000);
  });
  afterAll(async () => {
    await t?.close();
    rmSync(out, { recursive: true, force: true });
  });

  it("taken while a writer inserts in a loop: the file opens, passes integrity_check, has every row committed before it started, mode 0600", async () => {
    const writer = startWriter(t);
    while (writer.committed() < 20) await new Promise((resolve) => setImmediate(resolve));
    const committedBefore = writer.committed();
    const target = join(out, "during-writes.db");
    const progress: number[] = [];
    const result = await backupSqlite({ source, target, force: false, onProgress: (p) => progress.push(p.copiedPages) });
    const committedDuring = writer.committed() - committedBefore;
    await writer.stop();

    // The writer was never held up for the copy: it went on committing while the backup ran.
    expect(committedDuring).toBeGreaterThan(0);
    // A write landed between two steps, so SQLite began the copy again, and the rest was copied in one step.
    expect(result.restarts).toBeGreaterThanOrEqual(1);
    expect(progress.length).toBeGreaterThan(1);
    expect(integrityOf(target)).toBe("ok");
    expect(countOf(target, "seed")).toBe(5000);
    expect(countOf(target, "writer")).toBeGreaterThanOrEqual(committedBefore);
    expect(countOf(target, "writer")).toBeLessThanOrEqual(writer.committed());
    expect(modeOf(target)).toBe(0o600);
    expect(result).toMatchObject({ file: target, bytes: statSync(target).size });
    expect(result.pages).toBeGreaterThan(2000);
    // Nothing but the backup is left in the directory (no temporary file).
    expect(readdirSync(out)).toEqual(["during-writes.db"]);
  });

  it("refuses to overwrite an existing file unless forced; forced, it replaces it whole with a 0600 file", async () => {
    const target = join(out, "existing.db");
    writeFileSync(target, "precious", { mode: 0o644 });
    chmodSync(target, 0o644);
    await expect(backupSqlite({ source, target, force: false })).rejects.toThrow(BackupError);
    await expect(backupSqlite({ source, target, force: false })).rejects.toThrow(
      /existing\.db already exists; choose another file or pass --force/,
    );
    expect(readFileSync(target, "utf8")).toBe("precious");

    await backupSqlite({ source, target, force: true });
    expect(integrityOf(target)).toBe("ok");
    expect(modeOf(target)).toBe(0o600);
    expect(readdirSync(out).filter((name) => name.includes("partial"))).toEqual([]);
  });

  it("says what is wrong with a missing directory or a missing database, and writes nothing", async () => {
    await expect(backupSqlite({ source, target: join(out, "no-such-dir", "b.db"), force: false })).rejects.toThrow(
      /directory .*no-such-dir does not exist/,
    );
    await expect(backupSqlite({ source: join(out, "nothing.db"), target: join(out, "b.db"), force: false })).rejects.toThrow(
      /there is no SQLite database at .*nothing\.db/,
    );
    expect(existsSync(join(out, "b.db"))).toBe(false);
  });
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function latchkey(args: string[], env: Record<string, string>): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ["--import", "tsx", join(process.cwd(), "src/cli.ts"), ...args],
      { env: { PATH: process.env["PATH"] ?? "", HOME: process.env["HOME"] ?? "", LOG_LEVEL: "silent", ...env }, timeout: 45_000 },
      (error, stdout, stderr) => resolve({ code: error ? (typeof error.code === "number" ? error.code : -1) : 0, stdout, stderr }),
    );
  });
}

describe("latchkey backup (the CLI)", () => {
  let t: TestApp;
  let out: string;
  let env: Record<string, string>;
  beforeAll(async () => {
    t = await startTestApp("sqlite");
    out = mkdtempSync(join(tmpdir(), "latchkey-backup-cli-"));
    env = { LATCHKEY_DATA_DIR: t.config.dataDir, LATCHKEY_SECRET_KEY: TEST_SECRET_KEY };
    await seedEvents(t, "seed", 3000);
  });
  afterAll(async () => {
    await t?.close();
    rmSync(out, { recursive: true, force: true });
  });

  it("copies the database while the server writes, prints the size, mode 0600; refuses to overwrite without --force", async () => {
    const target = join(out, "latchkey-backup.db");
    const writer = startWriter(t);
    const run = await latchkey(["backup", "--to", target], env);
    await writer.stop();
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(
      new RegExp(
        `^Backed up .*latchkey\\.db to ${target.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}: \\d+(\\.\\d)? MB \\(\\d+ pages\\), a consistent snapshot, mode 0600\\.\\n$`,
      ),
    );
    expect(integrityOf(target)).toBe("ok");
    expect(countOf(target, "seed")).toBe(3000);
    expect(modeOf(target)).toBe(0o600);

    const again = await latchkey(["backup", "--to", target], env);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(
      /^latchkey: backup failed: .*latchkey-backup\.db already exists; choose another file or pass --force to replace it\n$/,
    );

    const forced = await latchkey(["backup", "--to", target, "--force"], env);
    expect(forced.code).toBe(0);
    expect(integrityOf(target)).toBe("ok");
  });

  it("restores as docs/deployment.md says: copy over the database, remove -wal and -shm, migrate, start", async () => {
    const backup = join(out, "to-restore.db");
    expect((await latchkey(["backup", "--to", backup], env)).code).toBe(0);
    // Another installation's data dir (the same secret key), with a database of its own and a stale WAL beside it.
    const dataDir = mkdtempSync(join(tmpdir(), "latchkey-restore-"));
    try {
      const restoredEnv = { LATCHKEY_DATA_DIR: dataDir, LATCHKEY_SECRET_KEY: TEST_SECRET_KEY };
      expect((await latchkey(["migrate"], restoredEnv)).code).toBe(0);
      writeFileSync(join(dataDir, "latchkey.db-wal"), "stale");
      writeFileSync(join(dataDir, "latchkey.db-shm"), "stale");
      copyFileSync(backup, join(dataDir, "latchkey.db"));
      rmSync(join(dataDir, "latchkey.db-wal"));
      rmSync(join(dataDir, "latchkey.db-shm"));
      const migrated = await latchkey(["migrate"], restoredEnv);
      expect(migrated.code).toBe(0);
      expect(migrated.stdout).toBe("The database is up to date.\n");
      expect(countOf(join(dataDir, "latchkey.db"), "seed")).toBe(3000);
      expect(integrityOf(join(dataDir, "latchkey.db"))).toBe("ok");
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it("--to is required", async () => {
    const run = await latchkey(["backup"], env);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain("--to <file>");
  });
});

describeOnPostgres("latchkey backup on PostgreSQL", () => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await createTestDatabase("postgres");
  });
  afterAll(async () => {
    await database?.drop();
  });

  it("explains to use pg_dump, exits non-zero, writes nothing and never prints the database password", async () => {
    const url = new URL(database.databaseUrl!);
    url.password = "s3cret-password";
    const target = join(database.dataDir, "b.db");
    const run = await latchkey(["backup", "--to", target], {
      LATCHKEY_DATA_DIR: database.dataDir,
      LATCHKEY_SECRET_KEY: TEST_SECRET_KEY,
      DATABASE_URL: url.href,
    });
    expect(run.code).toBe(1);
    expect(run.stdout).toBe("");
    expect(run.stderr).toMatch(
      /^latchkey: `latchkey backup` copies the SQLite database; this installation uses PostgreSQL \(DATABASE_URL\)\./,
    );
    expect(run.stderr).toContain("pg_dump --format=custom");
    expect(run.stderr).toContain("pg_restore");
    expect(run.stderr).not.toContain("s3cret-password");
    expect(existsSync(target)).toBe(false);
  });
});
