import type { Provider } from "oidc-provider";
import type { AppContext } from "../context.js";
import { revokeGrant } from "./adapter.js";
import { claimEndedGrant, endedGrants } from "./grants.js";

/** Where the OpenID Provider reports what went wrong without failing the request at hand. */
export interface OidcLogger {
  error(details: Record<string, unknown>, message: string): void;
  warn(details: Record<string, unknown>, message: string): void;
}

/** Grants looked at per sweep; a longer queue is worked through over the next sweeps. */
const SWEEP_BATCH = 100;

/**
 * Ends the clients' sessions whose Latchkey session has ended: signing out, removal from the account, a password
 * change, a support reset, the idle or absolute timeout. Runs every few seconds on every instance (`latchkey serve`)
 * and right after a sign-out. Each grant is claimed by deleting its row, so of instances sweeping at once exactly one
 * handles it: its codes and tokens are revoked first (a refresh fails from then on), then a client that registered a
 * back-channel logout URI is sent a signed logout token (`sub` and `sid`). One attempt, with a timeout: a client that
 * is down learns at its next refresh, which fails. Returns how many grants were ended.
 */
export async function sweepEndedClientSessions(ctx: AppContext, providerOf: () => Promise<Provider>, log: OidcLogger): Promise<number> {
  const ended = await endedGrants(ctx, SWEEP_BATCH);
  if (ended.length === 0) return 0;
  const provider = await providerOf();
  let count = 0;
  for (const link of ended) {
    if (!(await claimEndedGrant(ctx.db, link.grant_id))) continue;
    count += 1;
    // A grant already gone (expired, revoked at the client's own logout) has no session at the client left to end.
    const grant = await provider.Grant.find(link.grant_id);
    await revokeGrant(ctx.db, link.grant_id);
    if (!grant) continue;
    const client = await provider.Client.find(link.client_id);
    if (!client?.backchannelLogoutUri) continue;
    try {
      await client.backchannelLogout(link.user_id, link.sid);
    } catch (error) {
      log.warn(
        { err: error, clientId: link.client_id },
        "back-channel logout: the client did not accept the logout token (its refresh will fail instead)",
      );
    }
  }
  return count;
}
