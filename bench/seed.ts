/**
 * The scale of the seeded bench run (`npm run bench -- --seed`): 100,000 users, 10,000 accounts, 200,000 sessions and
 * 1,000,000 audit events, written straight into a migrated database, fast: on SQLite one transaction of prepared
 * inserts, on PostgreSQL multi-row inserts of whole arrays (`insert … select * from unnest($1::text[], …)`) in a few
 * transactions. The bench account (the one the bench signs in to) is made a busy account of 1,000 members with
 * 100,000 of the audit events, so its first audit page and its Team Members page are measured at that size.
 */
import { createHash, randomBytes } from "node:crypto";
import SQLite from "better-sqlite3";
import pg from "pg";
import { hash as argon2Hash } from "@node-rs/argon2";

export const SCALE = {
  users: 100_000,
  accounts: 10_000,
  sessions: 200_000,
  auditEvents: 1_000_000,
  /** Members of the bench account (its admin, the bench user, included). */
  benchAccountMembers: 1_000,
  /** Audit events of the bench account (with account_id set), the rest spread over the other accounts. */
  benchAccountEvents: 100_000,
} as const;

/** Every fifth event is a user's event without an account (a password step): the audit page's other branch. */
const USER_EVENT_EVERY = 5;
const EVENT_TYPES = [
  "sign_in.password_accepted",
  "sign_in.succeeded",
  "session.signed_out",
  "sign_in.password_failed",
  "member.role_changed",
];
const DAY_MS = 24 * 3600_000;

type Row = Array<string | number | null>;
interface Table {
  name: string;
  columns: string[];
  /** PostgreSQL array types, one per column. */
  types: string[];
}

const TABLES = {
  accounts: { name: "accounts", columns: ["id", "name", "two_factor_policy", "created_at"], types: ["text", "text", "text", "int8"] },
  users: {
    name: "users",
    columns: ["id", "email", "name", "password_hash", "two_factor_method", "created_at", "updated_at"],
    types: ["text", "text", "text", "text", "text", "int8", "int8"],
  },
  memberships: {
    name: "memberships",
    columns: ["id", "account_id", "user_id", "role", "sign_in_method", "created_at", "last_sign_in_at"],
    types: ["text", "text", "text", "text", "text", "int8", "int8"],
  },
  sessions: {
    name: "sessions",
    columns: [
      "id",
      "token_hash",
      "user_id",
      "account_id",
      "created_at",
      "last_seen_at",
      "expires_at",
      "fresh_proof_at",
      "ip",
      "user_agent",
    ],
    types: ["text", "text", "text", "text", "int8", "int8", "int8", "int8", "text", "text"],
  },
  audit_events: {
    name: "audit_events",
    columns: ["id", "account_id", "user_id", "actor_user_id", "type", "ip", "user_agent", "detail", "created_at"],
    types: ["text", "text", "text", "text", "text", "text", "text", "text", "int8"],
  },
} satisfies Record<string, Table>;

/** A 32-hex id, unique per table and index, not random: seeding stays fast and repeatable. */
function seedId(kind: number, index: number): string {
  return `5eed${kind.toString(16).padStart(4, "0")}${index.toString(16).padStart(24, "0")}`;
}

/** The rows, generated lazily table by table so memory stays flat. */
async function* rowsOf(benchAccountId: string, benchUserId: string, now: number): AsyncGenerator<{ table: Table; rows: Row[] }> {
  const passwordHash = await argon2Hash(randomBytes(12).toString("hex"), { algorithm: 2, memoryCost: 19456, timeCost: 2, parallelism: 1 });
  const batch = 10_000;
  const accountOf = (userIndex: number): string =>
    userIndex < SCALE.benchAccountMembers - 1 ? benchAccountId : seedId(1, userIndex % (SCALE.accounts - 1));

  // Accounts: the bench account exists already; 9,999 more.
  for (let start = 0; start < SCALE.accounts - 1; start += batch) {
    const rows: Row[] = [];
    for (let i = start; i < Math.min(start + batch, SCALE.accounts - 1); i += 1)
      rows.push([seedId(1, i), `Seeded ${i}`, "email_link", now - 200 * DAY_MS]);
    yield { table: TABLES.accounts, rows };
  }
  // Users (the bench user exists already) and one membership each: the first 999 in the bench account.
  for (let start = 0; start < SCALE.users - 1; start += batch) {
    const users: Row[] = [];
    const memberships: Row[] = [];
    for (let i = start; i < Math.min(start + batch, SCALE.users - 1); i += 1) {
      users.push([
        seedId(2, i),
        `seed-${i}@example.com`,
        `Seeded Person ${i}`,
        passwordHash,
        "email_link",
        now - 100 * DAY_MS,
        now - 100 * DAY_MS,
      ]);
      memberships.push([
        seedId(3, i),
        accountOf(i),
        seedId(2, i),
        i % 50 === 0 ? "admin" : "member",
        "password",
        now - 100 * DAY_MS,
        now - DAY_MS,
      ]);
    }
    yield { table: TABLES.users, rows: users };
    yield { table: TABLES.memberships, rows: memberships };
  }
  // Sessions: two for each of 100,000 users (the bench user's own come from signing in).
  for (let start = 0; start < SCALE.sessions; start += batch) {
    const rows: Row[] = [];
    for (let i = start; i < Math.min(start + batch, SCALE.sessions); i += 1) {
      const user = Math.floor(i / 2) % (SCALE.users - 1);
      const tokenHash = createHash("sha256").update(`seeded session ${i}`).digest("hex");
      rows.push([
        seedId(4, i),
        tokenHash,
        seedId(2, user),
        accountOf(user),
        now - 3600_000,
        now - 60_000,
        now + 11 * 3600_000,
        now - 3600_000,
        "192.0.2.1",
        "Seeder/1.0",
      ]);
    }
    yield { table: TABLES.sessions, rows };
  }
  // Audit events over the last 90 days: 100,000 in the bench account, the rest spread; every fifth without account.
  for (let start = 0; start < SCALE.auditEvents; start += batch) {
    const rows: Row[] = [];
    for (let i = start; i < Math.min(start + batch, SCALE.auditEvents); i += 1) {
      const inBench = i < SCALE.benchAccountEvents;
      const userIndex = inBench ? i % (SCALE.benchAccountMembers - 1) : i % (SCALE.users - 1);
      const user = inBench && i % 97 === 0 ? benchUserId : seedId(2, userIndex);
      const account = i % USER_EVENT_EVERY === 0 ? null : inBench ? benchAccountId : accountOf(userIndex);
      const at = now - Math.floor(((i * 7919) % SCALE.auditEvents) * ((90 * DAY_MS) / SCALE.auditEvents));
      rows.push([
        seedId(5, i),
        account,
        user,
        null,
        EVENT_TYPES[i % EVENT_TYPES.length] ?? "sign_in.succeeded",
        "192.0.2.1",
        "Seeder/1.0",
        "{}",
        at,
      ]);
    }
    yield { table: TABLES.audit_events, rows };
  }
}

/** Seeds a migrated SQLite database file (the server must not be running). */
export async function seedSqlite(file: string, bench: { accountId: string; userId: string }): Promise<number> {
  const database = new SQLite(file);
  database.pragma("journal_mode = WAL");
  database.pragma("synchronous = OFF");
  let count = 0;
  const statements = new Map<string, SQLite.Statement>();
  const insert = (table: Table): SQLite.Statement => {
    let statement = statements.get(table.name);
    if (!statement) {
      statement = database.prepare(
        `insert into ${table.name} (${table.columns.join(", ")}) values (${table.columns.map(() => "?").join(", ")})`,
      );
      statements.set(table.name, statement);
    }
    return statement;
  };
  database.exec("begin");
  for await (const { table, rows } of rowsOf(bench.accountId, bench.userId, Date.now())) {
    const statement = insert(table);
    for (const row of rows) statement.run(row);
    count += rows.length;
  }
  database.exec("commit");
  database.exec("analyze");
  database.close();
  return count;
}

/** Seeds a migrated PostgreSQL database. */
export async function seedPostgres(url: string, bench: { accountId: string; userId: string }): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  let count = 0;
  try {
    await client.query("begin");
    for await (const { table, rows } of rowsOf(bench.accountId, bench.userId, Date.now())) {
      const columns = table.columns.map((_, c) => rows.map((row) => row[c] ?? null));
      const arrays = table.types.map((type, c) => `$${c + 1}::${type}[]`).join(", ");
      await client.query(`insert into ${table.name} (${table.columns.join(", ")}) select * from unnest(${arrays})`, columns);
      count += rows.length;
    }
    await client.query("commit");
    // As a maintained database is: vacuumed (hint bits and visibility map set, so the first reads do not write) and
    // checkpointed. Without it autovacuum and the checkpointer take up the 1.3 million new rows during the measured
    // cells, on the same two cores: the seeded check fell round by round (8,136 → 7,294 → 6,598 req/s, 13:44 run).
    await client.query("vacuum (analyze)");
    await client.query("checkpoint");
  } finally {
    await client.end();
  }
  return count;
}
