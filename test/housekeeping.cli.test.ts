import { execFile } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { loadConfig } from "../src/config.js";
import { openRuntime, type Runtime } from "../src/runtime.js";
import { hashToken, newId } from "../src/auth/tokens.js";
import { HOUSEKEEPING_LEASE } from "../src/housekeeping.js";
import { createTestDatabase, type TestDatabase } from "./helpers/databases.js";
import { describeEachDialect } from "./helpers/dialects.js";
import { seedMember, TEST_SECRET_KEY } from "./helpers/app.js";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** `latchkey ARGS` as an operator runs it, on the test database. */
function latchkey(args: string[], database: TestDatabase): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ["--import", "tsx", join(process.cwd(), "src/cli.ts"), ...args],
      {
        env: {
          PATH: process.env["PATH"] ?? "",
          HOME: process.env["HOME"] ?? "",
          LOG_LEVEL: "silent",
          LATCHKEY_DATA_DIR: database.dataDir,
          LATCHKEY_SECRET_KEY: TEST_SECRET_KEY,
          ...(database.databaseUrl ? { DATABASE_URL: database.databaseUrl } : {}),
        },
        timeout: 45_000,
      },
      (error, stdout, stderr) => resolve({ code: error ? (typeof error.code === "number" ? error.code : -1) : 0, stdout, stderr }),
    );
  });
}

describeEachDialect("latchkey housekeeping (the CLI)", (dialect) => {
  let database: TestDatabase;
  let runtime: Runtime;

  beforeAll(async () => {
    database = await createTestDatabase(dialect);
    const config = loadConfig({
      LATCHKEY_DATA_DIR: database.dataDir,
      LATCHKEY_SECRET_KEY: TEST_SECRET_KEY,
      ...(database.databaseUrl ? { DATABASE_URL: database.databaseUrl } : {}),
    });
    runtime = await openRuntime(config, { migrate: true });
  });
  afterAll(async () => {
    await runtime?.close();
    await database?.drop();
  });

  it("deletes the expired rows now and prints the count of each table, then the total", async () => {
    const { db } = runtime.ctx;
    const now = Date.now();
    const member = await seedMember(runtime);
    await db
      .insertInto("sessions")
      .values(
        [now - 1000, now - 2000, now + 3_600_000].map((expiresAt) => ({
          id: newId(),
          token_hash: hashToken(newId()),
          user_id: member.userId,
          account_id: member.accountId,
          created_at: now - 7_200_000,
          last_seen_at: now,
          expires_at: expiresAt,
          fresh_proof_at: now,
          ip: null,
          user_agent: null,
        })),
      )
      .execute();
    await db
      .insertInto("attempt_counters")
      .values([
        { key: "old", count: 1, reset_at: now - 1 },
        { key: "live", count: 1, reset_at: now + 3_600_000 },
      ])
      .execute();

    const run = await latchkey(["housekeeping"], database);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^Deleting expired rows:\n/);
    expect(run.stdout).toMatch(/^ {2}sessions +2 deleted$/m);
    expect(run.stdout).toMatch(/^ {2}attempt_counters +1 deleted$/m);
    expect(run.stdout).toMatch(/^ {2}audit_events +kept forever \(LATCHKEY_AUDIT_RETENTION_DAYS is unset\)$/m);
    if (dialect === "sqlite") expect(run.stdout).toMatch(/^ {2}WAL checkpoint +/m);
    else expect(run.stdout).not.toContain("WAL");
    expect(run.stdout).toMatch(/\nDeleted 3 expired row\(s\) in \d+\.\d s\.\n$/);
    expect(await db.selectFrom("sessions").select("id").execute()).toHaveLength(1);
    expect((await db.selectFrom("attempt_counters").select("key").execute()).map((r) => r.key)).toEqual(["live"]);
  });

  it("while another run holds the lease, does nothing and says who holds it until when (exit 1)", async () => {
    const { db } = runtime.ctx;
    const now = Date.now();
    await db
      .insertInto("leases")
      .values({ name: HOUSEKEEPING_LEASE, holder: "web-2 pid 4242 run abcd", taken_at: now, expires_at: now + 60_000 })
      .onConflict((oc) => oc.column("name").doUpdateSet({ holder: "web-2 pid 4242 run abcd", taken_at: now, expires_at: now + 60_000 }))
      .execute();
    await db
      .insertInto("attempt_counters")
      .values({ key: "waiting", count: 1, reset_at: now - 1 })
      .execute();

    const run = await latchkey(["housekeeping"], database);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe("");
    expect(run.stderr).toMatch(
      /^latchkey: another housekeeping run holds the lease \(web-2 pid 4242 run abcd, until \d{4}-\d\d-\d\dT[\d:]+Z\); nothing was done/,
    );
    expect(await db.selectFrom("attempt_counters").select("key").where("key", "=", "waiting").execute()).toHaveLength(1);
    await db.deleteFrom("leases").execute();
  });
});
