import type { Kysely } from "kysely";
import { sql } from "./kysely.js";
import type { Database } from "./schema.js";

/** What one checkpoint of SQLite's write-ahead log did. */
export interface WalCheckpoint {
  /** Another connection (a reader's open snapshot, a CLI command, a backup) kept it from finishing: tried again next run. */
  busy: boolean;
  /** Frames in the WAL before the checkpoint (0 after a complete TRUNCATE). */
  walFrames: number;
  /** Frames written back into the database file. */
  checkpointedFrames: number;
}

/**
 * Writes the WAL back into the database file and truncates it to zero bytes (`PRAGMA wal_checkpoint(TRUNCATE)`).
 * SQLite's own automatic checkpoints (every 1000 pages) are PASSIVE: a reader that is always somewhere mid-snapshot can
 * keep them from ever reaching the end, and they never shrink the file, so under steady load the WAL can only grow.
 *
 * TRUNCATE would wait for other connections through the busy timeout; on the server's one SQLite connection that would
 * stall every request for up to the timeout, so the checkpoint runs with no wait at all: when another connection is in
 * the way it writes back what it can and reports `busy`, and the next run tries again. The connection is held for the
 * three statements, so no request of this process runs with the busy timeout at zero.
 */
export async function checkpointWal(db: Kysely<Database>): Promise<WalCheckpoint> {
  return db.connection().execute(async (connection) => {
    const [setting] = (await sql<{ timeout: number }>`PRAGMA busy_timeout`.execute(connection)).rows;
    await sql`PRAGMA busy_timeout = 0`.execute(connection);
    try {
      const [row] = (await sql<{ busy: number; log: number; checkpointed: number }>`PRAGMA wal_checkpoint(TRUNCATE)`.execute(connection))
        .rows;
      return { busy: row?.busy === 1, walFrames: Math.max(0, row?.log ?? 0), checkpointedFrames: Math.max(0, row?.checkpointed ?? 0) };
    } finally {
      await sql`PRAGMA busy_timeout = ${sql.lit(setting?.timeout ?? 0)}`.execute(connection);
    }
  });
}
