import SQLite from "better-sqlite3";
import { afterEach, expect, it } from "vitest";
import { withKeptStatements } from "../src/db/prepared.js";

/**
 * SQLite statements are prepared once per text and reused (issue 10: preparing cost more than running for most
 * statements). What reuse must not break: a statement still being stepped through by a streamed select.
 */
const open: SQLite.Database[] = [];
afterEach(() => {
  for (const database of open.splice(0)) database.close();
});

function database(): SQLite.Database {
  const db = new SQLite(":memory:");
  open.push(db);
  db.exec("create table t (n integer); insert into t values (1), (2), (3);");
  return db;
}

it("hands out the same prepared statement for the same SQL text", () => {
  const kept = withKeptStatements(database());
  const first = kept.prepare("select n from t order by n");
  expect(kept.prepare("select n from t order by n")).toBe(first);
  expect(kept.prepare("select n from t where n > 1")).not.toBe(first);
});

it("prepares a fresh statement while the kept one is busy in a streamed select, and both read correctly", () => {
  const kept = withKeptStatements(database());
  const sqlText = "select n from t order by n";
  const streaming = kept.prepare(sqlText) as SQLite.Statement<[], { n: number }>;
  const seen: number[] = [];
  for (const row of streaming.iterate()) {
    const inner = kept.prepare(sqlText) as SQLite.Statement<[], { n: number }>;
    expect(inner).not.toBe(streaming);
    expect(inner.all().map((r) => r.n)).toEqual([1, 2, 3]);
    seen.push(row.n);
  }
  expect(seen).toEqual([1, 2, 3]);
  // Done streaming: the kept statement is handed out again.
  expect(kept.prepare(sqlText)).toBe(streaming);
});

it("keeps at most 500 statements, dropping the least recently used", () => {
  const kept = withKeptStatements(database());
  const first = kept.prepare("select 0");
  const second = kept.prepare("select 1");
  // `select 0` used again: `select 1` is now the oldest and is the one dropped.
  expect(kept.prepare("select 0")).toBe(first);
  for (let i = 2; i <= 500; i += 1) kept.prepare(`select ${i}`);
  expect(kept.prepare("select 0")).toBe(first);
  expect(kept.prepare("select 1")).not.toBe(second);
});
