import { randomBytes } from "node:crypto";
import { closeSync, existsSync, linkSync, openSync, renameSync, rmSync, statSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { createRequire } from "node:module";
import type SQLite from "better-sqlite3";

/** Why a backup was not made; the message says what to do. */
export class BackupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BackupError";
  }
}

export interface BackupProgress {
  totalPages: number;
  copiedPages: number;
}

export interface BackupResult {
  file: string;
  bytes: number;
  pages: number;
  /** Times the copy began again because a writer changed the database under it, before it copied the rest in one go. */
  restarts: number;
}

/** Pages copied per step while showing progress: 4 MB at SQLite's default page size. */
const PAGES_PER_STEP = 1024;
/** "Everything left" for SQLite's `backup_step` (better-sqlite3 caps the count at this). */
const ALL_PAGES = 0x7fffffff;

const requireDriver = createRequire(import.meta.url);

/**
 * Copies the SQLite database at `source` to `target`, online: through SQLite's backup API on a connection of its own,
 * while the server goes on reading and writing. The copy is one consistent snapshot (a transaction committed during
 * the backup is in it wholly or not at all; one committed before it began is in it).
 *
 * It copies in steps, to report progress. SQLite starts a stepped backup over whenever another connection writes to
 * the source, so under steady writes it might never finish: after the first restart the rest is copied in one step,
 * inside one read transaction, which writers do not disturb in WAL mode (they go on; the copy is of the snapshot).
 *
 * The file is written under a temporary name beside `target`, created 0600 (it holds password hashes and sealed
 * secrets), and moved into place only when complete: a failed backup leaves no half-written file and never touches an
 * existing one. Without `force`, an existing `target` is refused, also if it appears during the backup.
 */
export async function backupSqlite(input: {
  source: string;
  target: string;
  force: boolean;
  onProgress?: (progress: BackupProgress) => void;
}): Promise<BackupResult> {
  const { source, target } = input;
  if (!existsSync(source)) throw new BackupError(`there is no SQLite database at ${source} (is LATCHKEY_DATA_DIR right?)`);
  if (!input.force && existsSync(target))
    throw new BackupError(`${target} already exists; choose another file or pass --force to replace it`);
  if (existsSync(target) && statSync(target).isDirectory()) throw new BackupError(`${target} is a directory; name a file`);
  const directory = dirname(target);
  if (!existsSync(directory)) throw new BackupError(`the directory ${directory} does not exist`);

  const partial = join(directory, `.${basename(target)}.${randomBytes(6).toString("hex")}.partial`);
  // Created here, 0600 and exclusively, before SQLite opens it: SQLite would create it world-readable (umask).
  closeSync(openSync(partial, "wx", 0o600));
  const database = new (requireDriver("better-sqlite3") as typeof SQLite)(source, { fileMustExist: true });
  let restarts = 0;
  try {
    database.pragma("busy_timeout = 5000");
    let lastRemaining = Number.POSITIVE_INFINITY;
    const result = await database.backup(partial, {
      progress: ({ totalPages, remainingPages }) => {
        // A step that does not bring the rest down began again: the restart and the copy happen within one step.
        if (remainingPages >= lastRemaining) restarts += 1;
        lastRemaining = remainingPages;
        input.onProgress?.({ totalPages, copiedPages: totalPages - remainingPages });
        return restarts > 0 ? ALL_PAGES : PAGES_PER_STEP;
      },
    });
    database.close();
    // The copy carries the source's WAL mode in its header; as a rollback-journal file it is one self-contained file
    // that opening (to inspect or restore it) never grows -wal and -shm files beside. `serve` turns WAL on again.
    const copy = new (requireDriver("better-sqlite3") as typeof SQLite)(partial, { fileMustExist: true });
    try {
      copy.pragma("journal_mode = DELETE");
    } finally {
      copy.close();
    }
    if (input.force) renameSync(partial, target);
    else {
      // link() refuses an existing name: a file that appeared meanwhile is not replaced.
      try {
        linkSync(partial, target);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === "EEXIST")
          throw new BackupError(`${target} appeared during the backup; choose another file or pass --force to replace it`);
        throw error;
      }
      rmSync(partial);
    }
    return { file: target, bytes: statSync(target).size, pages: result.totalPages, restarts };
  } finally {
    if (database.open) database.close();
    for (const leftover of [partial, `${partial}-journal`, `${partial}-wal`, `${partial}-shm`]) rmSync(leftover, { force: true });
  }
}
