import { withTx, type AppContext, type RequestInfo } from "../context.js";
import type { Challenge } from "../db/schema.js";
import { fail, ok, type Result } from "../errors.js";
import { recordEvent } from "../audit/events.js";
import { signInLinkMessage } from "../mail/messages.js";
import { mailDelivery, queueMail, type MailDelivery } from "../mail/queue.js";
import { consumeChallenge } from "./challenges.js";
import { pickAccountForSignIn } from "./sessions.js";
import { constantTimeEqual, hashToken, looksLikeToken, newId, newToken } from "./tokens.js";
import { urlTo } from "../paths.js";
import { completeSignIn } from "./sign-in-finish.js";
import { countSignIn } from "../observability/metrics.js";

async function secondFactorOf(ctx: Pick<AppContext, "db">, userId: string): Promise<string | null> {
  const user = await ctx.db.selectFrom("users").select("two_factor_method").where("id", "=", userId).executeTakeFirst();
  return user?.two_factor_method ?? null;
}

/** Where sign-in links point. Built from the configured public URL only, never from the request's Host header. */
function emailLinkUrl(ctx: Pick<AppContext, "config">, token: string): string {
  return urlTo(ctx.config.publicUrl, "loginEmailLink", { token });
}

export type SendLinkFailure = "rate_limited" | "too_many_attempts" | "auth_app_required";

/** The mail queue key of a challenge's sign-in links: a newer link's message supersedes an older one not yet sent. */
export function challengeMailKey(challengeId: string): string {
  return `challenge:${challengeId}`;
}

/**
 * A sign-in link of a challenge, inside the caller's transaction: its row, its message (superseding an older message of
 * the challenge still waiting in the queue) and the event. The caller has counted it against the challenge's limits
 * and voided older links: `sendEmailLink` for "Send a new link", the password step for a new challenge's first link.
 */
export async function queueSignInLink(
  txCtx: AppContext,
  input: { challengeId: string; user: { id: string; email: string }; info: RequestInfo; now: number },
): Promise<void> {
  const { limits } = txCtx.config;
  const token = newToken();
  await txCtx.db
    .insertInto("email_links")
    .values({
      id: newId(),
      challenge_id: input.challengeId,
      token_hash: hashToken(token),
      created_at: input.now,
      expires_at: input.now + limits.emailLinkTtlSeconds * 1000,
      used_at: null,
      voided_at: null,
    })
    .execute();
  await queueMail(
    txCtx,
    signInLinkMessage({
      to: input.user.email,
      productName: txCtx.config.productName,
      url: emailLinkUrl(txCtx, token),
      expiresInMinutes: Math.round(limits.emailLinkTtlSeconds / 60),
      ip: input.info.ip,
      userAgent: input.info.userAgent,
    }),
    { key: challengeMailKey(input.challengeId) },
  );
  await recordEvent(txCtx, { type: "sign_in.email_link_sent", userId: input.user.id, info: input.info });
}

/**
 * Queues a new sign-in link for a challenge and voids every older one, in one transaction: the new link, the voiding,
 * the message (superseding an older message of the challenge still waiting in the queue: nobody receives a link that
 * is already void) and the count. Refused while the cooldown runs and after the per-challenge maximum. The counter is
 * bumped by a guarded UPDATE first, so parallel "Send a new link" clicks cannot send more than the limit.
 *
 * Nothing here waits for the mail server: the message is delivered after the answer, and retried while mail fails
 * (`signInLinkDelivery` tells the waiting page).
 */
export async function sendEmailLink(
  ctx: AppContext,
  challenge: Challenge,
  info: RequestInfo,
): Promise<Result<{ sentTo: string; retryAfterSeconds: number }, SendLinkFailure>> {
  const { limits } = ctx.config;
  // The email link is the second factor only for email-link users: for an auth-app user it would be a way
  // around the app, so a challenge of theirs never gets one.
  const user = await ctx.db
    .selectFrom("users")
    .select(["id", "email", "two_factor_method"])
    .where("id", "=", challenge.user_id)
    .executeTakeFirstOrThrow();
  if (user.two_factor_method !== "email_link") {
    return fail("auth_app_required", "This login uses an authenticator app: enter the code from your app instead.");
  }
  const now = ctx.clock.now();
  const cooldownMs = limits.emailLinkResendCooldownSeconds * 1000;
  const claimed = await ctx.db.transaction().execute(async (tx) => {
    const claim = await tx
      .updateTable("challenges")
      .set((eb) => ({ links_sent: eb("links_sent", "+", 1), last_link_sent_at: now }))
      .where("id", "=", challenge.id)
      .where("consumed_at", "is", null)
      .where("links_sent", "<", limits.emailLinkMaxSendsPerChallenge)
      .where((eb) => eb.or([eb("last_link_sent_at", "is", null), eb("last_link_sent_at", "<=", now - cooldownMs)]))
      .executeTakeFirst();
    if (Number(claim.numUpdatedRows) !== 1) return false;
    // "Send a new link" voids the old ones: only the newest link of a challenge can ever sign in.
    await tx
      .updateTable("email_links")
      .set({ voided_at: now })
      .where("challenge_id", "=", challenge.id)
      .where("used_at", "is", null)
      .where("voided_at", "is", null)
      .execute();
    await queueSignInLink(withTx(ctx, tx), { challengeId: challenge.id, user, info, now });
    return true;
  });
  if (!claimed) {
    const current = await ctx.db
      .selectFrom("challenges")
      .select(["links_sent", "last_link_sent_at"])
      .where("id", "=", challenge.id)
      .executeTakeFirst();
    if (!current || current.links_sent >= limits.emailLinkMaxSendsPerChallenge) {
      return fail(
        "too_many_attempts",
        `We already sent ${limits.emailLinkMaxSendsPerChallenge} links for this sign-in. Sign in again to get a new one.`,
      );
    }
    const retryAfterSeconds = Math.max(1, Math.ceil(((current.last_link_sent_at ?? now) + cooldownMs - now) / 1000));
    return fail("rate_limited", `A link was sent moments ago. You can ask for a new one in ${retryAfterSeconds} seconds.`, {
      retryAfterSeconds,
    });
  }
  return ok({ sentTo: user.email, retryAfterSeconds: limits.emailLinkResendCooldownSeconds });
}

/**
 * How the delivery of a challenge's newest sign-in link stands, for the waiting page: `failing` while attempts have
 * failed and retries go on, `failed` once given up (see `mailDelivery`).
 */
export async function signInLinkDelivery(ctx: Pick<AppContext, "db">, challenge: Pick<Challenge, "id">): Promise<MailDelivery | null> {
  return mailDelivery(ctx, challengeMailKey(challenge.id));
}

export type RedeemLinkFailure = "link_invalid" | "link_used" | "link_expired" | "wrong_browser" | "challenge_expired";

/**
 * Signs in with an emailed link. The link must come back with the challenge cookie of the browser that entered the
 * password; otherwise nothing is spent, so a mail scanner or a second device cannot burn or use it.
 */
async function redeemLink(
  ctx: AppContext,
  input: { linkToken: string; challengeToken: string | undefined; info: RequestInfo },
): Promise<
  Result<{ sessionToken: string; userId: string; accountId: string; chooseAccount: boolean; deviceToken: string | null }, RedeemLinkFailure>
> {
  if (!looksLikeToken(input.linkToken))
    return fail("link_invalid", "This sign-in link is not valid. Check that you copied the whole link, or sign in again.");
  const now = ctx.clock.now();
  const link = await ctx.db
    .selectFrom("email_links")
    .innerJoin("challenges", "challenges.id", "email_links.challenge_id")
    .select([
      "email_links.id",
      "email_links.expires_at",
      "email_links.used_at",
      "email_links.voided_at",
      "challenges.id as challengeId",
      "challenges.token_hash as challengeHash",
      "challenges.user_id as userId",
      "challenges.consumed_at as challengeConsumedAt",
      "challenges.expires_at as challengeExpiresAt",
    ])
    .where("email_links.token_hash", "=", hashToken(input.linkToken))
    .executeTakeFirst();
  if (!link) return fail("link_invalid", "This sign-in link is not valid. Check that you copied the whole link, or sign in again.");
  if (link.used_at !== null)
    return fail("link_used", "This sign-in link was already used. Each link works once: sign in again to get a new one.");
  if (link.voided_at !== null)
    return fail("link_invalid", "A newer sign-in link was sent, so this one no longer works. Use the newest email.");
  if (link.expires_at <= now) return fail("link_expired", "This sign-in link has expired. Sign in again to get a new one.");
  // A dead link says why, from any browser; a live one is spent only in the browser that holds its challenge cookie.
  if (input.challengeToken === undefined || !constantTimeEqual(hashToken(input.challengeToken), link.challengeHash)) {
    await recordEvent(ctx, { type: "sign_in.email_link_wrong_browser", userId: link.userId, info: input.info });
    return fail(
      "wrong_browser",
      "Open this link in the browser where you entered your password. Sign-in links only work in that browser, so nobody else can use yours.",
    );
  }
  if (link.challengeConsumedAt !== null || link.challengeExpiresAt <= now)
    return fail("challenge_expired", "This sign-in has ended. Sign in again.");
  // The user may have switched to the auth app after this link was sent: then it no longer counts as a second factor.
  if ((await secondFactorOf(ctx, link.userId)) !== "email_link")
    return fail(
      "link_invalid",
      "This login now uses an authenticator app, so sign-in links no longer work. Sign in again and enter the code from your app.",
    );

  const accountId = await pickAccountForSignIn(ctx, link.userId);
  if (accountId === null)
    return fail("challenge_expired", "You are no longer a member of any team account. Ask an Account Admin to invite you again.");

  return ctx.db.transaction().execute(async (tx) => {
    // The guarded UPDATE is the race barrier: of parallel redemptions exactly one changes the row.
    const claimed = await tx
      .updateTable("email_links")
      .set({ used_at: now })
      .where("id", "=", link.id)
      .where("used_at", "is", null)
      .where("voided_at", "is", null)
      .where("expires_at", ">", now)
      .executeTakeFirst();
    if (Number(claimed.numUpdatedRows) !== 1)
      return fail("link_used", "This sign-in link was already used. Each link works once: sign in again to get a new one.");
    if (!(await consumeChallenge(tx, link.challengeId, now))) return fail("challenge_expired", "This sign-in has ended. Sign in again.");
    return ok(await completeSignIn(ctx, tx, { userId: link.userId, accountId, proof: "email_link", info: input.info }));
  });
}

/** Signs in with an emailed link (`redeemLink` above), counted in the metrics as an `email_link` sign-in step. */
export function redeemEmailLink(ctx: AppContext, input: Parameters<typeof redeemLink>[1]): ReturnType<typeof redeemLink> {
  return countSignIn(ctx.metrics, "email_link", redeemLink(ctx, input));
}
