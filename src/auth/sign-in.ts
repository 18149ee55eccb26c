import type { AliasedExpression, ExpressionBuilder, SqlBool } from "kysely";
import { withTx, type AppContext, type RequestInfo } from "../context.js";
import { fail, LatchkeyError, ok, type Result } from "../errors.js";
import { recordEvent } from "../audit/events.js";
import { createChallenge } from "./challenges.js";
import { normalizeEmail } from "./emails.js";
import { verifyAgainstDummy, verifyPassword, withPasswordCheckSlot } from "./passwords.js";
import { hashToken } from "./tokens.js";
import type { Database, TwoFactorMethod } from "../db/schema.js";
import { queueSignInLink } from "./email-links.js";
import { trustedDevice } from "./devices.js";
import { countSignIn } from "../observability/metrics.js";

/**
 * Selects whether the user of the row has a password membership: only those let a user in with a password (an
 * SSO-only member has no usable password). For every look-up of a password login (sign-in, password reset).
 */
export function hasPasswordMembership(eb: ExpressionBuilder<Database, "users">): AliasedExpression<SqlBool, "hasPasswordMembership"> {
  return eb
    .exists(
      eb
        .selectFrom("memberships")
        .select("memberships.id")
        .whereRef("memberships.user_id", "=", "users.id")
        .where("memberships.sign_in_method", "=", "password"),
    )
    .as("hasPasswordMembership");
}

export type SecondFactor = TwoFactorMethod;

export interface PasswordAccepted {
  challengeToken: string;
  userId: string;
  next: SecondFactor;
}

const INVALID_CREDENTIALS = "The email or password is not correct.";

/** The attempt counter of wrong passwords for one (normalised) email: shared by every place that checks a password by email. */
export function emailKey(email: string): string {
  return `login:email:${email}`;
}

function ipKey(ip: string): string {
  return `login:ip:${ip}`;
}

function deviceKey(nonce: string): string {
  return `login:device:${nonce}`;
}

export interface PasswordBudget {
  /** The attempt counter this password attempt is counted against (and reset on success). */
  key: string;
  limit: number;
  trustedDevice: boolean;
}

/**
 * Which counter a password attempt for an email counts against. A request with a valid device cookie of this very
 * user (a browser that completed a sign-in before) counts against that device's own counter; every other request
 * against the email's. So an attacker who spends the email's budget does not lock the owner out of their own
 * browsers, and a stolen device cookie has its own small budget. Shared by every place that checks a password by
 * email (sign-in, joining an account with a current password).
 */
export function passwordBudget(
  ctx: Pick<AppContext, "config" | "clock">,
  input: { emailKey: string; user: { id: string; passwordHash: string | null } | undefined; deviceToken: string | undefined },
): PasswordBudget {
  const { limits } = ctx.config;
  const device = trustedDevice(ctx, input.deviceToken, input.user);
  return device
    ? { key: deviceKey(device.nonce), limit: limits.passwordFailuresPerDevice, trustedDevice: true }
    : { key: input.emailKey, limit: limits.passwordFailuresPerEmail, trustedDevice: false };
}

/**
 * The password step. Unknown emails, SSO-only users and wrong passwords all get the same answer after the same
 * argon2 work. Throttling is checked before the password, and counts unknown emails like known ones, so a pause
 * never tells whether an email exists or whether the password was right. `deviceToken` is the browser's device
 * cookie: valid for this user, it moves the attempt from the email's counter to the device's (`passwordBudget`). A
 * right password starts the second step (`startChallenge`): for email-link users the link is queued at once.
 */
async function checkPassword(
  ctx: AppContext,
  input: { email: string; password: string; info: RequestInfo; deviceToken?: string | undefined },
): Promise<Result<PasswordAccepted, "invalid_credentials" | "too_many_attempts">> {
  const { limits } = ctx.config;
  // Before any counter, query or hash: a refused check costs nothing and counts against no one's attempts. Whether
  // it is refused depends only on the load, never on the email.
  const checked = await withPasswordCheckSlot(limits.passwordChecksInFlightMax, () => checkPasswordNow(ctx, input));
  if (checked !== null) return checked;
  throw new LatchkeyError(
    "service_unavailable",
    `Too many sign-ins at once right now. Try again in ${limits.overloadRetryAfterSeconds} seconds.`,
    { retryAfterSeconds: limits.overloadRetryAfterSeconds },
  );
}

async function checkPasswordNow(
  ctx: AppContext,
  input: { email: string; password: string; info: RequestInfo; deviceToken?: string | undefined },
): Promise<Result<PasswordAccepted, "invalid_credentials" | "too_many_attempts">> {
  const { limits } = ctx.config;
  const email = normalizeEmail(input.email);
  // No user can have an address that is too long or holds control characters (`checkEmail` refuses both). Such input
  // is answered like an unknown email, but never used as a database value: PostgreSQL refuses NUL bytes in text and
  // index entries over ~2.7 KB, which would turn bad input into a 500.
  const possible = email.length <= limits.emailMaxLength && !/\p{Cc}/u.test(email);
  const window = limits.passwordAttemptWindowSeconds;
  const byEmail = emailKey(possible ? email : `invalid:${hashToken(email)}`);
  const loggedEmail = possible ? email : "(not an email address)";
  const ipCount = input.info.ip ? await ctx.attempts.hit(ipKey(input.info.ip), window) : 0;

  // One query whether or not the email exists, so the database work does not differ either. It comes before the
  // throttle because which counter applies depends on the user (a device cookie is trusted only for its own user);
  // a paused answer still does the same work (this query, two counters) for an unknown email as for a known one.
  const user = possible
    ? await ctx.db
        .selectFrom("users")
        .select((eb) => ["users.id", "users.email", "users.password_hash", "users.two_factor_method", hasPasswordMembership(eb)])
        .where("users.email", "=", email)
        .executeTakeFirst()
    : undefined;
  // The device cookie is checked against the user row just read, not looked up by email: a cookie only ever makes a
  // difference for the email of its own user, which its holder knows, so it tells nothing about other emails.
  const budget = passwordBudget(ctx, {
    emailKey: byEmail,
    user: user ? { id: user.id, passwordHash: user.password_hash } : undefined,
    deviceToken: input.deviceToken,
  });
  const logged = { email: loggedEmail, ...(budget.trustedDevice ? { trustedDevice: true } : {}) };
  // The attempt is counted before the password is checked (and the count reset on success), so parallel guesses on
  // any number of instances cannot all pass the check together: each one takes its own number.
  const attempts = await ctx.attempts.hit(budget.key, window);
  if (attempts > budget.limit || ipCount > limits.passwordAttemptsPerIp) {
    const retryAfterSeconds = Math.max(
      1,
      await ctx.attempts.retryAfterSeconds(attempts > budget.limit ? budget.key : ipKey(input.info.ip ?? "")),
    );
    await recordEvent(ctx, { type: "sign_in.throttled", info: input.info, detail: logged });
    return fail("too_many_attempts", `Too many sign-in attempts. Try again in ${Math.ceil(retryAfterSeconds / 60)} minutes.`, {
      retryAfterSeconds,
    });
  }

  const usable = user !== undefined && user.password_hash !== null && Boolean(user.hasPasswordMembership);
  const passwordOk = usable ? await verifyPassword(user.password_hash as string, input.password) : await verifyAgainstDummy(input.password);

  if (!user || !passwordOk) {
    await recordEvent(ctx, { type: "sign_in.password_failed", userId: user?.id ?? null, info: input.info, detail: logged });
    return fail("invalid_credentials", INVALID_CREDENTIALS);
  }
  // Only the counter this attempt was counted against: a trusted device's success leaves an attacker's lock of the
  // email in place, so the owner signing in never hands the attacker a fresh budget.
  await ctx.attempts.reset(budget.key);
  const token = await startChallenge(ctx, { user, info: input.info, trustedDevice: budget.trustedDevice });
  return ok({ challengeToken: token, userId: user.id, next: user.two_factor_method });
}

/**
 * What a right password starts, in one transaction: the challenge, the event and, for an email-link user, the first
 * sign-in link with its message — queued, delivered after the answer, so the mail server never holds up or fails the
 * password step. All or nothing (a failure leaves no challenge without its link), and one commit instead of four
 * (issue 10). The method is the one read with the password hash, so the answer's `next` and the link agree.
 */
async function startChallenge(
  ctx: AppContext,
  input: { user: { id: string; email: string; two_factor_method: TwoFactorMethod }; info: RequestInfo; trustedDevice: boolean },
): Promise<string> {
  const { user, info } = input;
  const emailLink = user.two_factor_method === "email_link";
  return ctx.db.transaction().execute(async (tx) => {
    const txCtx = withTx(ctx, tx);
    const { token, challenge } = await createChallenge(txCtx, { userId: user.id, info, firstLinkCounted: emailLink });
    await recordEvent(txCtx, {
      type: "sign_in.password_accepted",
      userId: user.id,
      info,
      ...(input.trustedDevice ? { detail: { trustedDevice: true } } : {}),
    });
    if (emailLink) await queueSignInLink(txCtx, { challengeId: challenge.id, user, info, now: challenge.created_at });
    return token;
  });
}

/** The password step (`checkPassword` above), counted in the metrics as a `password` sign-in step with its result. */
export function startSignIn(ctx: AppContext, input: Parameters<typeof checkPassword>[1]): ReturnType<typeof checkPassword> {
  return countSignIn(ctx.metrics, "password", checkPassword(ctx, input));
}
