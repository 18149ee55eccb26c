import SQLite from "better-sqlite3";
import type { Kysely } from "kysely";
import { afterEach, expect, it } from "vitest";
import { KyselyClass, PostgresDialect, SqliteDialect } from "../src/db/kysely.js";
import { compiledOnce } from "../src/db/compiled-once.js";
import type { Database } from "../src/db/schema.js";

/**
 * Hot-path queries built and compiled by Kysely once per dialect, values bound by name on each call (issue 10). What
 * must hold: each call runs with its own values, wherever a name is used; constants stay; a missing value is an error.
 */
const open: SQLite.Database[] = [];
afterEach(() => {
  for (const database of open.splice(0)) database.close();
});

function sqliteDb(): Kysely<Database> {
  const database = new SQLite(":memory:");
  open.push(database);
  database.exec("create table attempt_counters (key text primary key, count integer not null, reset_at integer not null)");
  return new KyselyClass<Database>({ dialect: new SqliteDialect({ database }) });
}

let builds = 0;
/** Moves an ended window on by a step: `now` twice, the constant 1 once. */
const bump = compiledOnce<{ key: string; now: number }, { count: number }>((db, p) => {
  builds += 1;
  return db
    .updateTable("attempt_counters")
    .set((eb) => ({ reset_at: p<number>("now"), count: eb("count", "+", 1) }))
    .where("key", "=", p<string>("key"))
    .where("reset_at", "<=", p<number>("now"))
    .returning("count");
});

it("binds each call's own values, by name wherever the name is used, keeps the constants, and builds once per dialect", async () => {
  const db = sqliteDb();
  await db
    .insertInto("attempt_counters")
    .values([
      { key: "a", count: 1, reset_at: 500 },
      { key: "b", count: 5, reset_at: 500 },
    ])
    .execute();
  const before = builds;
  const first = bump(db, { key: "a", now: 1000 });
  expect(first.parameters).toEqual([1000, 1, "a", 1000]);
  expect((await db.executeQuery(first)).rows).toEqual([{ count: 2 }]);
  // Its window now ends at 1000: not yet at 900, again at 2000.
  expect((await db.executeQuery(bump(db, { key: "a", now: 900 }))).rows).toEqual([]);
  expect((await db.executeQuery(bump(db, { key: "a", now: 2000 }))).rows).toEqual([{ count: 3 }]);
  // A transaction shares its handle's dialect: the same compiled query, run inside the transaction.
  await db.transaction().execute(async (tx) => {
    expect((await tx.executeQuery(bump(tx, { key: "b", now: 600 }))).rows).toEqual([{ count: 6 }]);
  });
  // Another handle of the same dialect has its own adapter: built once more, with the same SQL.
  const other = sqliteDb();
  expect(bump(other, { key: "c", now: 1 }).sql).toBe(first.sql);
  expect(builds - before).toBe(2);
});

it("compiles for PostgreSQL with its own placeholders, and refuses a call without a value for every name", () => {
  const pg = new KyselyClass<Database>({ dialect: new PostgresDialect({ pool: {} as never }) });
  const query = bump(pg, { key: "k", now: 7 });
  expect(query.sql).toBe(
    'update "attempt_counters" set "reset_at" = $1, "count" = "count" + $2 where "key" = $3 and "reset_at" <= $4 returning "count"',
  );
  expect(query.parameters).toEqual([7, 1, "k", 7]);
  expect(() => bump(pg, { key: "k" } as never)).toThrow('no value for the parameter "now"');
});

it("builds per call on a handle with plugins, so each plugin sees the query as it always did (a test's injected failure)", async () => {
  const db = sqliteDb();
  const seen: string[] = [];
  const watching = db.withPlugin({
    transformQuery(args) {
      seen.push(args.node.kind);
      if (seen.length === 2) throw new Error("database gone");
      return args.node;
    },
    async transformResult(args) {
      return args.result;
    },
  });
  await db.insertInto("attempt_counters").values({ key: "p", count: 1, reset_at: 0 }).execute();
  expect((await watching.executeQuery(bump(watching, { key: "p", now: 10 }))).rows).toEqual([{ count: 2 }]);
  expect(seen).toEqual(["UpdateQueryNode"]);
  expect(() => bump(watching, { key: "p", now: 20 })).toThrow("database gone");
  // The plain handle is not affected: compiled once, no plugin.
  expect((await db.executeQuery(bump(db, { key: "p", now: 20 }))).rows).toEqual([{ count: 3 }]);
});
