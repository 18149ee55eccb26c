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
const bump = compiledOnce<{ key: string; now: number }, { count: number }>((db, p) => {
  builds += 1;
  return db
    .insertInto("attempt_counters")
    .values({ key: p("key"), count: 1, reset_at: p<number>("now") })
    .onConflict((oc) =>
      oc.column("key").doUpdateSet((eb) => ({
        count: eb
          .case()
          .when("attempt_counters.reset_at", "<=", p<number>("now"))
          .then(1)
          .else(eb("attempt_counters.count", "+", 1))
          .end(),
      })),
    )
    .returning("count");
});

it("binds each call's own values, by name wherever the name is used, keeps the constants, and builds once per dialect", async () => {
  const db = sqliteDb();
  const before = builds;
  const first = bump(db, { key: "a", now: 1000 });
  expect(first.parameters).toEqual(["a", 1, 1000, 1000, 1]);
  expect((await db.executeQuery(first)).rows).toEqual([{ count: 1 }]);
  expect((await db.executeQuery(bump(db, { key: "a", now: 500 }))).rows).toEqual([{ count: 2 }]);
  expect((await db.executeQuery(bump(db, { key: "b", now: 500 }))).rows).toEqual([{ count: 1 }]);
  // The window of "a" (reset_at 1000) has ended at 2000: the count starts again.
  expect((await db.executeQuery(bump(db, { key: "a", now: 2000 }))).rows).toEqual([{ count: 1 }]);
  // A transaction shares its handle's dialect: the same compiled query, run inside the transaction.
  await db.transaction().execute(async (tx) => {
    expect((await tx.executeQuery(bump(tx, { key: "b", now: 400 }))).rows).toEqual([{ count: 2 }]);
  });
  // Another handle of the same dialect has its own adapter: built once more, with the same SQL.
  const other = sqliteDb();
  expect(bump(other, { key: "c", now: 1 }).sql).toBe(first.sql);
  expect(builds - before).toBe(2);
});

it("compiles for PostgreSQL with its own placeholders, and refuses a call without a value for every name", () => {
  const pg = new KyselyClass<Database>({ dialect: new PostgresDialect({ pool: {} as never }) });
  const query = bump(pg, { key: "k", now: 7 });
  expect(query.sql).toContain(
    'values ($1, $2, $3) on conflict ("key") do update set "count" = case when "attempt_counters"."reset_at" <= $4',
  );
  expect(query.parameters).toEqual(["k", 1, 7, 7, 1]);
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
  expect((await watching.executeQuery(bump(watching, { key: "p", now: 10 }))).rows).toEqual([{ count: 1 }]);
  expect(seen).toEqual(["InsertQueryNode"]);
  expect(() => bump(watching, { key: "p", now: 10 })).toThrow("database gone");
  // The plain handle is not affected: compiled once, no plugin.
  expect((await db.executeQuery(bump(db, { key: "p", now: 5 }))).rows).toEqual([{ count: 2 }]);
});
