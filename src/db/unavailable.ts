/** Socket errors of a database that is down, restarting or unreachable. */
const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EPIPE",
  "ENOTFOUND",
  "EAI_AGAIN",
]);

/**
 * PostgreSQL SQLSTATEs of a server that is going away or not yet there: class 08 (connection exception), 57P01–57P03
 * (admin / crash shutdown, cannot connect now: starting up or in recovery), 53300 (too many connections).
 */
const POSTGRES_STATES = /^(08...|57P0[123]|53300)$/;

/** Messages of node-postgres for the same, which it raises without a code. */
const POSTGRES_MESSAGES = [
  "Connection terminated",
  "timeout exceeded when trying to connect",
  "Query read timeout",
  "Client has encountered a connection error and is not queryable",
  "Connection terminated unexpectedly",
];

/**
 * True when `error` (or anything in its cause chain) says the database cannot be reached right now, rather than that
 * a query is wrong: the request then answers 503 `database_unavailable` with Retry-After, not a 500, and the
 * process goes on (the pool reconnects when the database is back). SQLite's SQLITE_BUSY — another process held the
 * write lock past busy_timeout — is the same kind of moment.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  const seen = new Set<unknown>();
  let current: unknown = error;
  while (current instanceof Error && !seen.has(current)) {
    seen.add(current);
    const code = (current as { code?: unknown }).code;
    if (typeof code === "string" && (NETWORK_CODES.has(code) || POSTGRES_STATES.test(code) || code === "SQLITE_BUSY")) return true;
    if (POSTGRES_MESSAGES.some((message) => current instanceof Error && current.message.includes(message))) return true;
    // Node reports a refused connection to a host with several addresses as an AggregateError of the attempts.
    if (current instanceof AggregateError && current.errors.some((inner) => isDatabaseUnavailable(inner))) return true;
    current = current.cause;
  }
  return false;
}
