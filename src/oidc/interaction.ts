import type { IncomingMessage, ServerResponse } from "node:http";
import type { Interaction, InteractionResults, Provider } from "oidc-provider";
import type { SignedIn } from "../auth/sessions.js";
import { mustSetUpAuthApp } from "../team/policy.js";
import { ACR, acrFor, acrSatisfies, amrFor, isAcr, type Acr } from "./claims.js";
import type { LatchkeyResult } from "./grants.js";

/**
 * The interaction is Latchkey's own sign-in. The provider sends every authorization here (provider.ts: the
 * `latchkey_session` check), and this decides, from the browser's Latchkey session and what the client asked:
 *
 * - no session → sign in (then come back here);
 * - a member held at auth-app setup by "Require auth app" → set it up first (the policy guard sends them there before
 *   this runs; checked again here so no path issues a code to them);
 * - the client asks for the app level (`acr_values=urn:latchkey:loa:app`) and the session did not use the app: a
 *   person without the app sets it up (the code entered at setup proves it in this session); one who has it signs in
 *   again with it; a single sign-on session cannot reach it, so the client gets `unmet_authentication_requirements`;
 * - `prompt=login`, or `max_age` older than the session's sign-in → sign in again;
 * - otherwise the login is finished: `sub` is the user id, with the session's acr, amr and sign-in time, and the
 *   session and account it came from (grants.ts ties the grant to them). First-party clients skip consent.
 */

export type InteractionOutcome =
  /** The interaction is unknown, expired, or belongs to another browser. */
  | { kind: "expired" }
  | { kind: "sign_in"; clientName: string }
  | { kind: "set_up_app"; clientName: string }
  | { kind: "sign_in_again"; clientName: string; reason: "prompt_login" | "max_age" | "auth_app" }
  /** Back to the provider (which then answers the client with a code or an error). */
  | { kind: "continue"; location: string };

function paramOf(interaction: Interaction, name: string): string | undefined {
  const value = interaction.params[name];
  return typeof value === "string" ? value : undefined;
}

/** `acr_values` as sent; unknown values never get here (the provider refuses them with `invalid_request`). */
function requestedAcr(interaction: Interaction): Acr[] {
  return (paramOf(interaction, "acr_values") ?? "").split(" ").filter(isAcr);
}

async function clientNameOf(provider: Provider, interaction: Interaction): Promise<string> {
  const clientId = paramOf(interaction, "client_id");
  const client = clientId ? await provider.Client.find(clientId) : undefined;
  return client?.clientName ?? "An application";
}

export async function runInteraction(
  provider: Provider,
  input: { req: IncomingMessage; res: ServerResponse; uid: string; signedIn: SignedIn | null; now: number },
): Promise<InteractionOutcome> {
  let interaction: Interaction;
  try {
    interaction = await provider.interactionDetails(input.req, input.res);
  } catch {
    // No interaction cookie, an expired interaction, or an OpenID session that changed meanwhile.
    return { kind: "expired" };
  }
  if (interaction.uid !== input.uid) return { kind: "expired" };
  // When this request reached Latchkey, by Latchkey's clock (the one sessions are timed with): `prompt=login` wants a
  // sign-in after it. Kept in the interaction's result, which the final result replaces.
  const recorded = interaction.result?.["latchkeyStartedAt"];
  const startedAt = typeof recorded === "number" ? recorded : input.now;
  if (typeof recorded !== "number") {
    await provider.interactionResult(input.req, input.res, { latchkeyStartedAt: startedAt }, { mergeWithLastSubmission: false });
  }
  const clientName = await clientNameOf(provider, interaction);
  const me = input.signedIn;
  if (!me) return { kind: "sign_in", clientName };
  if (mustSetUpAuthApp(me)) return { kind: "set_up_app", clientName };

  const acr = acrFor(me.proof);
  const requested = requestedAcr(interaction);
  if (!acrSatisfies(acr, requested)) {
    if (!requested.includes(ACR.app) || me.signInMethod === "sso") {
      return finish(provider, input, {
        error: "unmet_authentication_requirements",
        error_description:
          me.signInMethod === "sso"
            ? "This sign-in used single sign-on; the requested authentication level needs Latchkey's auth app."
            : "The requested authentication level cannot be met by this sign-in.",
      });
    }
    if (me.user.twoFactorMethod !== "auth_app") return { kind: "set_up_app", clientName };
    return { kind: "sign_in_again", clientName, reason: "auth_app" };
  }

  const prompts = (paramOf(interaction, "prompt") ?? "").split(" ");
  // prompt=login: a sign-in that happened after this request started.
  if (prompts.includes("login") && me.signedInAt < startedAt) {
    return { kind: "sign_in_again", clientName, reason: "prompt_login" };
  }
  const maxAge = paramOf(interaction, "max_age");
  if (maxAge !== undefined && /^\d{1,10}$/.test(maxAge) && input.now - me.signedInAt > Number(maxAge) * 1000) {
    return { kind: "sign_in_again", clientName, reason: "max_age" };
  }

  const latchkey: LatchkeyResult = { sessionId: me.sessionId, accountId: me.account.id };
  return finish(provider, input, {
    login: { accountId: me.user.id, acr, amr: amrFor(me.proof, me.upstreamAmr), ts: Math.floor(me.signedInAt / 1000), remember: true },
    latchkey,
  });
}

async function finish(
  provider: Provider,
  input: { req: IncomingMessage; res: ServerResponse },
  result: InteractionResults,
): Promise<InteractionOutcome> {
  const location = await provider.interactionResult(input.req, input.res, result, { mergeWithLastSubmission: false });
  return { kind: "continue", location };
}

/** Whether `uid` is a live interaction of this browser (its interaction cookie names it). */
export async function isLiveInteraction(
  provider: Provider,
  input: { req: IncomingMessage; res: ServerResponse; uid: string },
): Promise<boolean> {
  try {
    return (await provider.interactionDetails(input.req, input.res)).uid === input.uid;
  } catch {
    return false;
  }
}
