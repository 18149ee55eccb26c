import type { Kysely } from "kysely";
import { withTx, type AppContext, type RequestInfo } from "../context.js";
import type { Database, SignInMethod, SignInProof } from "../db/schema.js";
import { recordEvent } from "../audit/events.js";
import { deviceTokenFor } from "./devices.js";
import { createSession } from "./sessions.js";

export type { SignInProof };

export interface CompletedSignIn {
  sessionToken: string;
  sessionId: string;
  userId: string;
  accountId: string;
  /** The person signs in this way to several accounts: offer the choice before the home page. */
  chooseAccount: boolean;
  /** The device cookie for a password login (see devices.ts); null after SSO, which has no password to protect. */
  deviceToken: string | null;
}

/**
 * The one end of every sign-in path: email link, auth-app code, recovery code and SSO today; passkeys later. (The
 * OpenID Provider's interaction signs no one in: it uses the session made here and the proof recorded with it.) Called inside the transaction that spent the single-use proof (link, challenge,
 * SSO state), so the session exists if and only if the proof was spent: a fresh session token every time, the audit
 * event, whether to offer the account choice, and the browser's device cookie.
 */
export async function completeSignIn(
  ctx: AppContext,
  tx: Kysely<Database>,
  input: { userId: string; accountId: string; proof: SignInProof; info: RequestInfo; upstreamAmr?: string[] },
): Promise<CompletedSignIn> {
  const inTx = withTx(ctx, tx);
  // The proof (and an SSO provider's own `amr`) is kept with the session: the OpenID Provider states it to clients.
  const session = await createSession(inTx, tx, {
    userId: input.userId,
    accountId: input.accountId,
    info: input.info,
    proof: input.proof,
    ...(input.upstreamAmr ? { upstreamAmr: input.upstreamAmr } : {}),
  });
  await recordEvent(inTx, {
    type: "sign_in.succeeded",
    userId: input.userId,
    accountId: input.accountId,
    info: input.info,
    detail: { secondFactor: input.proof },
  });
  const method: SignInMethod = input.proof === "sso" ? "sso" : "password";
  const accounts = await tx
    .selectFrom("memberships")
    .select((eb) => eb.fn.countAll<number>().as("n"))
    .where("user_id", "=", input.userId)
    .where("sign_in_method", "=", method)
    .executeTakeFirstOrThrow();
  return {
    sessionToken: session.token,
    sessionId: session.sessionId,
    userId: input.userId,
    accountId: input.accountId,
    chooseAccount: Number(accounts.n) > 1,
    // Password and second factor passed in this browser: it becomes a trusted device of this user.
    deviceToken: method === "password" ? await deviceTokenFor(inTx, input.userId) : null,
  };
}
