import { randomInt } from "node:crypto";
import type { Kysely } from "kysely";
import type { Config } from "../config.js";
import type { Database } from "../db/schema.js";
import { newId, sign } from "./tokens.js";

/** Crockford base32, lower case: no i, l, o, u, so a code read aloud or from paper has no look-alikes. */
const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz";
/** 15 characters × 5 bits = 75 random bits per code. */
const CODE_CHARACTERS = 15;
const GROUP = 5;
const HASH_PURPOSE = "recovery-code";

/** `count` new codes, shown as `xxxxx-xxxxx-xxxxx`. */
export function generateRecoveryCodes(count: number): string[] {
  return Array.from({ length: count }, () => {
    let code = "";
    for (let i = 0; i < CODE_CHARACTERS; i++) code += ALPHABET[randomInt(ALPHABET.length)];
    return code.match(new RegExp(`.{${GROUP}}`, "g"))!.join("-");
  });
}

/**
 * The comparable form of what a person typed: case, dashes and spaces do not matter, and Crockford's look-alikes
 * (i, l → 1; o → 0) are read as digits. Null when it cannot be a recovery code (not counted as an attempt).
 */
export function normalizeRecoveryCode(input: string): string | null {
  const compact = input.toLowerCase().replace(/[\s-]/g, "").replace(/[il]/g, "1").replace(/o/g, "0");
  return new RegExp(`^[${ALPHABET}]{${CODE_CHARACTERS}}$`).test(compact) ? compact : null;
}

/**
 * Codes are stored as keyed hashes (HMAC under the secret key): a stolen database alone cannot test guesses. With
 * rotated keys, a code may have been hashed under any configured key, so look-ups try each.
 */
export function recoveryCodeHashes(config: Pick<Config, "secretKey" | "previousSecretKeys">, normalized: string): string[] {
  return [config.secretKey, ...config.previousSecretKeys].map((key) => sign(key, HASH_PURPOSE, normalized));
}

/** Stores a batch (hashes only) and makes it the one in force, voiding every older code in the same transaction. */
export async function activateRecoveryCodes(
  tx: Kysely<Database>,
  config: Config,
  input: { userId: string; batchId: string; codes: string[]; now: number },
): Promise<void> {
  await tx.deleteFrom("recovery_codes").where("user_id", "=", input.userId).execute();
  await tx
    .insertInto("recovery_codes")
    .values(
      input.codes.map((code) => ({
        id: newId(),
        user_id: input.userId,
        batch_id: input.batchId,
        code_hash: recoveryCodeHashes(config, normalizeRecoveryCode(code) as string)[0] as string,
        created_at: input.now,
        used_at: null,
      })),
    )
    .execute();
  await tx.updateTable("users").set({ recovery_batch_id: input.batchId, updated_at: input.now }).where("id", "=", input.userId).execute();
}

/**
 * Spends a code. The guarded UPDATE (unused, of the batch in force) is the race barrier: of parallel attempts with
 * one code, exactly one changes the row.
 */
export async function spendRecoveryCode(
  db: Kysely<Database>,
  config: Config,
  input: { userId: string; normalized: string; now: number },
): Promise<boolean> {
  const result = await db
    .updateTable("recovery_codes")
    .set({ used_at: input.now })
    .where("user_id", "=", input.userId)
    .where("code_hash", "in", recoveryCodeHashes(config, input.normalized))
    .where("used_at", "is", null)
    .where("batch_id", "=", (eb) => eb.selectFrom("users").select("recovery_batch_id").where("users.id", "=", input.userId))
    .executeTakeFirst();
  return Number(result.numUpdatedRows) === 1;
}

export async function remainingRecoveryCodes(db: Kysely<Database>, userId: string): Promise<number> {
  const row = await db
    .selectFrom("recovery_codes")
    .innerJoin("users", (join) =>
      join.onRef("users.id", "=", "recovery_codes.user_id").onRef("users.recovery_batch_id", "=", "recovery_codes.batch_id"),
    )
    .select((eb) => eb.fn.countAll<number>().as("n"))
    .where("recovery_codes.user_id", "=", userId)
    .where("recovery_codes.used_at", "is", null)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

export function newBatchId(): string {
  return newId();
}
