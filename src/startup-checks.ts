import { sql } from "./db/kysely.js";
import type { Redis } from "ioredis";
import type { Store } from "./db/connect.js";

/**
 * Start-up checks: before `serve` says it is running, each thing it depends on has answered — the database, Redis,
 * the listening port. When one does not, start-up stops with one line that names it (URLs without their password)
 * and why, instead of announcing itself and failing at the first request.
 */

/** A start-up step that failed. Its message is the whole line the CLI prints before exiting 1. */
export class StartupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StartupError";
  }
}

/**
 * A database or Redis URL as it may be printed: the password (in the user info or a `password` query parameter, both
 * of which pg and ioredis read) replaced by `***`. A value that does not parse is shown only as its scheme.
 */
export function withoutPassword(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return `${/^[a-z][a-z0-9+.-]*:/i.exec(raw)?.[0] ?? ""}//…`;
  }
  if (url.password) url.password = "***";
  if (url.searchParams.has("password")) url.searchParams.set("password", "***");
  // URL.href escapes the stars of the query; shown as typed.
  return url.href.replace(/%2A%2A%2A/g, "***");
}

/**
 * Why something failed, on one line. Node reports a refused connection to a name with several addresses (localhost:
 * ::1 and 127.0.0.1) as an AggregateError without a message: its first error's message (or code) says it.
 */
export function reasonOf(error: unknown): string {
  if (!(error instanceof Error)) return String(error).replace(/\s+/g, " ");
  const inner = error instanceof AggregateError ? (error.errors[0] as unknown) : undefined;
  const message = error.message || (inner instanceof Error ? inner.message : "") || (error as NodeJS.ErrnoException).code || error.name;
  return message.replace(/\s+/g, " ").trim();
}

/** `promise`, or a rejection saying it took longer than `ms`. The work itself is abandoned, not cancelled: start-up then exits. */
async function within<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms / 1000} s`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** How the database is named in a failure: its URL without the password, or where the SQLite file is. */
export function databaseLabel(databaseUrl: string | undefined, dataDir: string): string {
  return databaseUrl === undefined ? `SQLite database in ${dataDir}` : `database ${withoutPassword(databaseUrl)}`;
}

/** One round trip to the database (PostgreSQL connects lazily: without this the first request would be the first to fail). */
export async function checkDatabase(store: Store, label: string, timeoutMs: number): Promise<void> {
  try {
    await within(sql`select 1`.execute(store.db), timeoutMs);
  } catch (error) {
    throw new StartupError(`cannot connect to the ${label}: ${reasonOf(error)}`);
  }
}

/**
 * Connects a lazily-connecting ioredis client and checks it answers. ioredis rejects `connect()` with a bare
 * "Connection is closed." and reports the cause as an "error" event, so that event's error is the reason given.
 * On failure the client is disconnected (it would otherwise retry forever and keep the process alive).
 */
export async function connectRedis(redis: Redis, url: string, timeoutMs: number): Promise<void> {
  let cause: Error | undefined;
  const remember = (error: Error): void => {
    cause ??= error;
  };
  redis.on("error", remember);
  try {
    await within(
      redis.connect().then(() => redis.ping()),
      timeoutMs,
    );
  } catch (error) {
    redis.disconnect();
    throw new StartupError(`cannot connect to Redis at ${withoutPassword(url)}: ${reasonOf(cause ?? error)}`);
  } finally {
    redis.off("error", remember);
  }
}

/** The line for a server that could not listen: what is wrong with the address, in words, and which variable to change. */
export function listenFailure(host: string, port: number, error: unknown): string {
  const where = `${host.includes(":") ? `[${host}]` : host}:${port}`;
  switch ((error as NodeJS.ErrnoException | undefined)?.code) {
    case "EADDRINUSE":
      return `cannot listen on ${where}: the port is already in use by another process (set PORT, or stop the other process)`;
    case "EACCES":
      return `cannot listen on ${where}: permission denied (ports below 1024 need privileges: set PORT to 1024 or above, or grant CAP_NET_BIND_SERVICE)`;
    case "EADDRNOTAVAIL":
      return `cannot listen on ${where}: the address ${host} is not one of this machine's (set HOST)`;
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return `cannot listen on ${where}: the host name ${host} does not resolve (set HOST)`;
    default:
      return `cannot listen on ${where}: ${reasonOf(error)} (set PORT or HOST)`;
  }
}
