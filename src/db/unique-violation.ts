/**
 * Whether a database error is a unique constraint refusing a row: PostgreSQL's SQLSTATE 23505, or SQLite's
 * SQLITE_CONSTRAINT_UNIQUE (better-sqlite3) or a primary-key clash. Used where a unique index is the last word in a
 * race that a check before the write cannot settle on its own (two transactions that both saw the value free).
 */
export function isUniqueViolation(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === "23505" || code === "SQLITE_CONSTRAINT_UNIQUE" || code === "SQLITE_CONSTRAINT_PRIMARYKEY";
}
