import type { Kysely } from "kysely";
import type { Database } from "./schema.js";

/**
 * Leases: a named right to do one thing at a time across every instance on the database, held by one holder until it
 * expires. Each operation is one guarded statement on the lease's row, so of instances racing exactly one wins, on
 * SQLite and PostgreSQL alike (PostgreSQL's `ON CONFLICT DO UPDATE … WHERE` decides on the latest committed row, even
 * one inserted by a concurrent transaction). A holder that dies simply stops renewing: the lease is free once
 * `expires_at` passes. Times come from the caller's clock; instances' clocks should agree to well within a lease.
 */

export interface TakeLease {
  name: string;
  /** Unique per attempt (a run), so a holder never mistakes another run's lease for its own. */
  holder: string;
  now: number;
  /** The lease lasts this long unless renewed. */
  durationMs: number;
  /** Refuse when the last holder took it less than this long ago, even if it is free now: spaces runs out across instances. */
  minGapMs?: number;
}

/** Takes the lease when it is free (never taken, expired or released) and not taken within `minGapMs`. True when taken. */
export async function takeLease(db: Kysely<Database>, lease: TakeLease): Promise<boolean> {
  const { name, holder, now, durationMs } = lease;
  const row = { holder, taken_at: now, expires_at: now + durationMs };
  const taken = await db
    .insertInto("leases")
    .values({ name, ...row })
    .onConflict((oc) =>
      oc
        .column("name")
        .doUpdateSet(row)
        .where("leases.expires_at", "<=", now)
        .where("leases.taken_at", "<=", now - (lease.minGapMs ?? 0)),
    )
    .returning("holder")
    .executeTakeFirst();
  return taken?.holder === holder;
}

/**
 * Extends the lease for its holder. False when it is no longer theirs (it expired and someone else took it): the
 * holder must stop. A holder whose lease expired but was not taken keeps it: nobody else did the work meanwhile.
 */
export async function renewLease(
  db: Kysely<Database>,
  lease: { name: string; holder: string; now: number; durationMs: number },
): Promise<boolean> {
  const result = await db
    .updateTable("leases")
    .set({ expires_at: lease.now + lease.durationMs })
    .where("name", "=", lease.name)
    .where("holder", "=", lease.holder)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) === 1;
}

/** Frees the lease at once (the work is done); `taken_at` stays, for `minGapMs`. No-op when it is not the holder's. */
export async function releaseLease(db: Kysely<Database>, lease: { name: string; holder: string; now: number }): Promise<void> {
  await db
    .updateTable("leases")
    .set({ expires_at: lease.now })
    .where("name", "=", lease.name)
    .where("holder", "=", lease.holder)
    .where("expires_at", ">", lease.now)
    .execute();
}

export interface LeaseState {
  holder: string;
  takenAt: number;
  expiresAt: number;
}

/** Who holds (or last held) the lease, for messages; undefined when it was never taken. */
export async function leaseState(db: Kysely<Database>, name: string): Promise<LeaseState | undefined> {
  const row = await db.selectFrom("leases").select(["holder", "taken_at", "expires_at"]).where("name", "=", name).executeTakeFirst();
  return row && { holder: row.holder, takenAt: row.taken_at, expiresAt: row.expires_at };
}
