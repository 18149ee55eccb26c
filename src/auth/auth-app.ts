import type { Kysely } from "kysely";
import type { Database } from "../db/schema.js";
import { withTx, type AppContext, type RequestInfo } from "../context.js";
import { fail, ok, type Result } from "../errors.js";
import { recordEvent } from "../audit/events.js";
import { notifyUser } from "../audit/notices.js";
import { hasFreshProof, type PasswordLogin } from "./fresh-proof.js";
import { activateRecoveryCodes, generateRecoveryCodes, newBatchId, remainingRecoveryCodes } from "./recovery-codes.js";
import { createSecretBox } from "./secret-box.js";
import { totpBox } from "./second-factor.js";
import { revokeUserSessions } from "./sessions.js";
import { formatSecretForManualEntry, matchTotp, newTotpSecret, parseTotpCode, totpUri } from "./totp.js";

/** Sealed copies of just-issued codes and of a pending key use their own derived keys and row-bound AAD. */
const revealBox = (ctx: Pick<AppContext, "config">): ReturnType<typeof createSecretBox> =>
  createSecretBox(ctx.config.secretKey, ctx.config.previousSecretKeys, "recovery-code-reveal");
const setupAad = (userId: string): string => `setup:${userId}`;

const FRESH_PROOF_MESSAGE = "For your security, confirm your password before changing two-factor authentication.";

export interface TwoFactorStatus {
  method: "email_link" | "auth_app";
  enabledAt: number | null;
  recoveryCodesRemaining: number;
  /** An unfinished setup: which step the person is on. */
  setup: { step: "recovery_codes" | "scan" } | null;
  /** Accounts whose policy requires the auth app (the app cannot be turned off while there are any). */
  requiredBy: string[];
}

/** The password login's factors at a glance (an SSO session cannot get here: it has no `PasswordLogin`). */
export async function twoFactorStatus(ctx: AppContext, login: PasswordLogin): Promise<TwoFactorStatus> {
  const { userId } = login;
  const now = ctx.clock.now();
  const user = await ctx.db
    .selectFrom("users")
    .select(["two_factor_method", "totp_enabled_at"])
    .where("id", "=", userId)
    .executeTakeFirstOrThrow();
  const setup = await ctx.db
    .selectFrom("totp_setups")
    .select(["codes_acknowledged_at", "expires_at"])
    .where("user_id", "=", userId)
    .executeTakeFirst();
  const requiredBy = await ctx.db
    .selectFrom("memberships")
    .innerJoin("accounts", "accounts.id", "memberships.account_id")
    .select("accounts.name")
    .where("memberships.user_id", "=", userId)
    .where("memberships.sign_in_method", "=", "password")
    .where("accounts.two_factor_policy", "=", "auth_app_required")
    .execute();
  return {
    method: user.two_factor_method,
    enabledAt: user.totp_enabled_at,
    recoveryCodesRemaining: user.two_factor_method === "auth_app" ? await remainingRecoveryCodes(ctx.db, userId) : 0,
    setup:
      setup && setup.expires_at > now && user.two_factor_method !== "auth_app"
        ? { step: setup.codes_acknowledged_at === null ? "recovery_codes" : "scan" }
        : null,
    requiredBy: requiredBy.map((r) => r.name),
  };
}

async function storeReveal(ctx: AppContext, userId: string, batchId: string, codes: string[]): Promise<void> {
  const now = ctx.clock.now();
  const sealed = revealBox(ctx).seal(JSON.stringify(codes), `${userId}:${batchId}`);
  await ctx.db.deleteFrom("recovery_code_reveals").where("user_id", "=", userId).execute();
  await ctx.db
    .insertInto("recovery_code_reveals")
    .values({
      user_id: userId,
      batch_id: batchId,
      codes_sealed: sealed,
      created_at: now,
      expires_at: now + ctx.config.limits.totpSetupTtlSeconds * 1000,
    })
    .execute();
}

/** The codes just issued (during setup, or after regeneration) for showing, downloading and printing; else null. */
export async function revealedRecoveryCodes(ctx: AppContext, login: PasswordLogin): Promise<{ batchId: string; codes: string[] } | null> {
  const { userId } = login;
  const row = await ctx.db.selectFrom("recovery_code_reveals").selectAll().where("user_id", "=", userId).executeTakeFirst();
  if (!row || row.expires_at <= ctx.clock.now()) return null;
  return { batchId: row.batch_id, codes: JSON.parse(revealBox(ctx).open(row.codes_sealed, `${userId}:${row.batch_id}`)) as string[] };
}

/** Forgets the revealed codes (the person pressed "Done"): from now on only their count is ever shown. */
export async function dismissRecoveryCodes(ctx: AppContext, login: PasswordLogin): Promise<void> {
  await ctx.db.deleteFrom("recovery_code_reveals").where("user_id", "=", login.userId).execute();
}

export type SetupFailure = "fresh_proof_required" | "auth_app_already_enabled";

/**
 * Step 0 → 1: a new key and ten recovery codes, nothing active yet. Starting again replaces an unfinished setup, so
 * only the newest QR code can ever be confirmed.
 */
export async function startAuthAppSetup(ctx: AppContext, login: PasswordLogin): Promise<Result<{ codes: string[] }, SetupFailure>> {
  if (!hasFreshProof(ctx, login.session)) return fail("fresh_proof_required", FRESH_PROOF_MESSAGE);
  const { userId } = login;
  const user = await ctx.db.selectFrom("users").select("two_factor_method").where("id", "=", userId).executeTakeFirstOrThrow();
  if (user.two_factor_method === "auth_app")
    return fail("auth_app_already_enabled", "The authenticator app is already on. Turn it off first to set up a new one.");
  const now = ctx.clock.now();
  const secret = await newTotpSecret();
  const codes = generateRecoveryCodes(ctx.config.limits.recoveryCodeCount);
  await ctx.db.deleteFrom("totp_setups").where("user_id", "=", userId).execute();
  await ctx.db
    .insertInto("totp_setups")
    .values({
      user_id: userId,
      secret_sealed: revealBox(ctx).seal(secret, setupAad(userId)),
      codes_acknowledged_at: null,
      created_at: now,
      expires_at: now + ctx.config.limits.totpSetupTtlSeconds * 1000,
    })
    .execute();
  await storeReveal(ctx, userId, newBatchId(), codes);
  return ok({ codes });
}

async function pendingSetup(ctx: AppContext, userId: string): Promise<{ secret: string; acknowledged: boolean } | null> {
  const row = await ctx.db.selectFrom("totp_setups").selectAll().where("user_id", "=", userId).executeTakeFirst();
  if (!row || row.expires_at <= ctx.clock.now()) return null;
  return { secret: revealBox(ctx).open(row.secret_sealed, setupAad(userId)), acknowledged: row.codes_acknowledged_at !== null };
}

/** Step 1 → 2: the person confirmed they saved the codes. */
export async function acknowledgeRecoveryCodes(
  ctx: AppContext,
  login: PasswordLogin,
  saved: boolean,
): Promise<Result<null, "setup_not_started" | "recovery_codes_not_saved">> {
  const { userId } = login;
  if (!saved)
    return fail(
      "recovery_codes_not_saved",
      "Confirm that you saved your recovery codes: without them, losing your phone can lock you out.",
    );
  const result = await ctx.db
    .updateTable("totp_setups")
    .set({ codes_acknowledged_at: ctx.clock.now() })
    .where("user_id", "=", userId)
    .where("expires_at", ">", ctx.clock.now())
    .executeTakeFirst();
  if (Number(result.numUpdatedRows) !== 1) return fail("setup_not_started", "Your setup has expired. Start again.");
  return ok(null);
}

/** Step 2: what the QR code and the manual-entry box show. */
export async function setupKey(
  ctx: AppContext,
  login: PasswordLogin,
): Promise<Result<{ uri: string; manualKey: string }, "setup_not_started" | "recovery_codes_not_saved">> {
  const setup = await pendingSetup(ctx, login.userId);
  if (!setup) return fail("setup_not_started", "Your setup has expired or was not started. Start again.");
  if (!setup.acknowledged) return fail("recovery_codes_not_saved", "Save your recovery codes first.");
  const uri = totpUri({
    issuer: ctx.config.productName,
    accountName: login.session.user.email,
    secret: setup.secret,
    stepSeconds: ctx.config.limits.totpStepSeconds,
  });
  return ok({ uri, manualKey: formatSecretForManualEntry(setup.secret) });
}

export type ConfirmFailure =
  "setup_not_started" | "recovery_codes_not_saved" | "invalid_code_format" | "invalid_code" | "fresh_proof_required";

/**
 * Step 3: a correct code switches the user to the auth app and activates the recovery codes, in one transaction
 * (claimed by deleting the pending setup, so two parallel confirmations cannot both apply). Other sessions of the
 * user end: a credential changed.
 */
export async function confirmAuthAppSetup(
  ctx: AppContext,
  login: PasswordLogin,
  code: string,
  info: RequestInfo,
): Promise<Result<null, ConfirmFailure>> {
  const { userId, session: signedIn } = login;
  // The switch happens here, so the proof must still be fresh here (a setup lives longer than a proof).
  if (!hasFreshProof(ctx, signedIn)) return fail("fresh_proof_required", FRESH_PROOF_MESSAGE);
  const setup = await pendingSetup(ctx, userId);
  if (!setup) return fail("setup_not_started", "Your setup has expired or was not started. Start again.");
  if (!setup.acknowledged) return fail("recovery_codes_not_saved", "Save your recovery codes first.");
  const shape = parseTotpCode(code);
  if (!shape.ok) return fail("invalid_code_format", shape.message);
  const { limits } = ctx.config;
  const step = await matchTotp({
    secret: setup.secret,
    code: shape.code,
    nowMs: ctx.clock.now(),
    stepSeconds: limits.totpStepSeconds,
    driftSteps: limits.totpDriftSteps,
    afterStep: null,
  });
  if (step === null)
    return fail(
      "invalid_code",
      "That code is not right. Check that your phone's time is set automatically, and enter the code your app shows now.",
    );
  const reveal = await revealedRecoveryCodes(ctx, login);
  if (!reveal) return fail("setup_not_started", "Your setup has expired. Start again.");
  const now = ctx.clock.now();
  const done = await ctx.db.transaction().execute(async (tx) => {
    const claimed = await tx.deleteFrom("totp_setups").where("user_id", "=", userId).executeTakeFirst();
    if (Number(claimed.numDeletedRows) !== 1) return false;
    await tx
      .updateTable("users")
      .set({
        two_factor_method: "auth_app",
        totp_secret_sealed: totpBox(ctx).seal(setup.secret, userId),
        totp_last_step: step,
        totp_enabled_at: now,
        updated_at: now,
      })
      .where("id", "=", userId)
      .execute();
    await activateRecoveryCodes(tx, ctx.config, { userId, batchId: reveal.batchId, codes: reveal.codes, now });
    await tx.deleteFrom("recovery_code_reveals").where("user_id", "=", userId).execute();
    // The code just entered proves the app in this session: from now on it counts as an auth-app sign-in (what the
    // OpenID Provider reports as `acr` urn:latchkey:loa:app, and what a client's step-up asks for).
    await tx.updateTable("sessions").set({ fresh_proof_at: now, sign_in_proof: "auth_app" }).where("id", "=", signedIn.sessionId).execute();
    await recordEvent(withTx(ctx, tx), { type: "two_factor.auth_app_enabled", userId, accountId: signedIn.account.id, info });
    await notifyUser(withTx(ctx, tx), { userId, kind: "auth_app_enabled", info });
    return true;
  });
  if (!done) return fail("setup_not_started", "This setup was already finished.");
  await revokeUserSessions(ctx, userId, signedIn.sessionId);
  return ok(null);
}

/** Ten new codes in force at once; every older code is void in the same transaction. */
export async function regenerateRecoveryCodes(
  ctx: AppContext,
  login: PasswordLogin,
  info: RequestInfo,
): Promise<Result<{ codes: string[] }, "fresh_proof_required" | "auth_app_not_enabled">> {
  const { userId, session: signedIn } = login;
  if (!hasFreshProof(ctx, signedIn)) return fail("fresh_proof_required", FRESH_PROOF_MESSAGE);
  const user = await ctx.db.selectFrom("users").select("two_factor_method").where("id", "=", userId).executeTakeFirstOrThrow();
  if (user.two_factor_method !== "auth_app")
    return fail("auth_app_not_enabled", "Recovery codes come with the authenticator app. Set up the app first.");
  const codes = generateRecoveryCodes(ctx.config.limits.recoveryCodeCount);
  const batchId = newBatchId();
  const now = ctx.clock.now();
  await ctx.db.transaction().execute(async (tx) => {
    await activateRecoveryCodes(tx, ctx.config, { userId, batchId, codes, now });
    await recordEvent(withTx(ctx, tx), { type: "two_factor.recovery_codes_regenerated", userId, accountId: signedIn.account.id, info });
    await notifyUser(withTx(ctx, tx), { userId, kind: "recovery_codes_regenerated", info });
  });
  await storeReveal(ctx, userId, batchId, codes);
  // A credential changed, like the password or the app: a session opened elsewhere (perhaps with an old code, the
  // reason someone regenerates) ends now.
  await revokeUserSessions(ctx, userId, signedIn.sessionId);
  return ok({ codes });
}

/**
 * The login back to the email link: the TOTP key, its replay step, the recovery codes (in force, revealed, and a
 * pending setup) all gone. The one place this happens: turning the app off, and a support reset.
 */
export async function removeAuthApp(tx: Kysely<Database>, userId: string, now: number): Promise<void> {
  await tx
    .updateTable("users")
    .set({
      two_factor_method: "email_link",
      totp_secret_sealed: null,
      totp_last_step: null,
      totp_enabled_at: null,
      recovery_batch_id: null,
      updated_at: now,
    })
    .where("id", "=", userId)
    .execute();
  await tx.deleteFrom("recovery_codes").where("user_id", "=", userId).execute();
  await tx.deleteFrom("recovery_code_reveals").where("user_id", "=", userId).execute();
  await tx.deleteFrom("totp_setups").where("user_id", "=", userId).execute();
}

/** Back to the email link. Refused while any account the user signs in to with a password requires the app. */
export async function disableAuthApp(
  ctx: AppContext,
  login: PasswordLogin,
  info: RequestInfo,
): Promise<Result<null, "fresh_proof_required" | "auth_app_not_enabled" | "auth_app_required">> {
  const { userId, session: signedIn } = login;
  if (!hasFreshProof(ctx, signedIn)) return fail("fresh_proof_required", FRESH_PROOF_MESSAGE);
  const status = await twoFactorStatus(ctx, login);
  if (status.method !== "auth_app") return fail("auth_app_not_enabled", "The authenticator app is not on.");
  if (status.requiredBy.length > 0) {
    return fail(
      "auth_app_required",
      `You cannot turn off the authenticator app: ${status.requiredBy.join(", ")} require${status.requiredBy.length === 1 ? "s" : ""} it for every team member. An Account Admin can change that under Settings → Security.`,
      {
        accounts: status.requiredBy,
      },
    );
  }
  const now = ctx.clock.now();
  await ctx.db.transaction().execute(async (tx) => {
    await removeAuthApp(tx, userId, now);
    await recordEvent(withTx(ctx, tx), { type: "two_factor.auth_app_disabled", userId, accountId: signedIn.account.id, info });
    await notifyUser(withTx(ctx, tx), { userId, kind: "auth_app_disabled", info });
  });
  await revokeUserSessions(ctx, userId, signedIn.sessionId);
  return ok(null);
}
