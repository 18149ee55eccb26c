import type { CompiledQuery, Kysely } from "kysely";
import { sql } from "../db/kysely.js";
import type { Database, Role, SignInMethod, SignInProof, TwoFactorMethod, TwoFactorPolicy } from "../db/schema.js";
import { keepPrepared, readKept } from "../db/prepared.js";

/**
 * The hot path of the session check (`GET /api/v1/session`) and forward auth (`GET /api/v1/verify`): the three
 * statements a request may run, each built and compiled once per database handle and kept prepared
 * (src/db/prepared.ts), instead of built with Kysely's query builder and prepared anew on every request (together
 * almost a third of the check's time, issue 10). Still one read of the database on every request: nothing is cached
 * between requests, so a revocation on any instance is seen by the very next one.
 */

export interface SessionRow {
  sessionId: string;
  last_seen_at: number;
  expires_at: number;
  fresh_proof_at: number;
  created_at: number;
  /** How the session signed in (OpenID Provider's amr/acr); null for sessions from before it was recorded. */
  sign_in_proof: SignInProof | null;
  /** The SSO provider's own amr values, JSON; null otherwise. */
  upstream_amr: string | null;
  userId: string;
  email: string;
  userName: string;
  two_factor_method: TwoFactorMethod;
  accountId: string;
  accountName: string;
  two_factor_policy: TwoFactorPolicy;
  role: Role;
  sign_in_method: SignInMethod;
}

interface Statements {
  find: CompiledQuery<SessionRow>;
  touch: CompiledQuery;
  remove: CompiledQuery;
}

/** Placeholders of the compiled statements; the real values are bound on each call. */
const UNBOUND = "";
const UNBOUND_TIME = 0;

const compiled = new WeakMap<Kysely<Database>, Statements>();

function statementsOf(db: Kysely<Database>): Statements {
  let statements = compiled.get(db);
  if (statements !== undefined) return statements;
  statements = {
    find: db
      .selectFrom("sessions")
      .innerJoin("users", "users.id", "sessions.user_id")
      .innerJoin("accounts", "accounts.id", "sessions.account_id")
      .innerJoin("memberships", (join) =>
        join.onRef("memberships.user_id", "=", "sessions.user_id").onRef("memberships.account_id", "=", "sessions.account_id"),
      )
      .select([
        "sessions.id as sessionId",
        "sessions.last_seen_at",
        "sessions.expires_at",
        "sessions.fresh_proof_at",
        "sessions.created_at",
        "sessions.sign_in_proof",
        "sessions.upstream_amr",
        "users.id as userId",
        "users.email",
        "users.name as userName",
        "users.two_factor_method",
        "accounts.id as accountId",
        "accounts.name as accountName",
        "accounts.two_factor_policy",
        "memberships.role",
        "memberships.sign_in_method",
      ])
      // `cast(? as text)`, not a bare `?`: once the database has been ANALYZEd with SQLite's STAT4 histograms (as
      // `PRAGMA optimize` does), SQLite re-plans a statement whose bare parameter meets an indexed column on every
      // new value — the look-up took 4× as long on the seeded database of `npm run bench -- --seed`. The cast hides
      // the value from that probe; the unique index on token_hash is used all the same.
      .where("sessions.token_hash", "=", sql<string>`cast(${UNBOUND} as text)`)
      .compile(),
    touch: db.updateTable("sessions").set({ last_seen_at: UNBOUND_TIME }).where("id", "=", UNBOUND).compile(),
    remove: db.deleteFrom("sessions").where("id", "=", UNBOUND).compile(),
  };
  keepPrepared("latchkey_session_find", statements.find.sql);
  keepPrepared("latchkey_session_touch", statements.touch.sql);
  keepPrepared("latchkey_session_remove", statements.remove.sql);
  compiled.set(db, statements);
  return statements;
}

/** The session with this token hash, joined with its user, account and membership; undefined when any is gone. */
export async function findSession(db: Kysely<Database>, tokenHash: string): Promise<SessionRow | undefined> {
  const { find } = statementsOf(db);
  // Past Kysely's executor (src/db/prepared.ts): on SQLite a synchronous read on a read-only connection.
  const rows = await readKept(db, find, [tokenHash]);
  return rows[0];
}

/** Records that the session was used at `now` (the caller writes this at most once per touch interval). */
export async function touchSession(db: Kysely<Database>, sessionId: string, now: number): Promise<void> {
  const { touch } = statementsOf(db);
  await db.executeQuery({ ...touch, parameters: [now, sessionId] });
}

/** Deletes the session (it ended: idle or past its absolute end). */
export async function removeSession(db: Kysely<Database>, sessionId: string): Promise<void> {
  const { remove } = statementsOf(db);
  await db.executeQuery({ ...remove, parameters: [sessionId] });
}
