import type { AppContext } from "../context.js";
import type { Selectable } from "kysely";
import type { OidcClientTable } from "../db/schema.js";
import { fail, ok, type Result } from "../errors.js";
import { checkName } from "../auth/emails.js";
import { constantTimeEqual, hashToken, newId, newToken } from "../auth/tokens.js";
import { revokeGrant } from "./adapter.js";

/**
 * Relying parties, registered by the operator (`latchkey client create | list | delete`). There is no dynamic
 * registration: a client exists only if someone with a shell made it.
 *
 * A confidential client's secret is 256 random bits, shown once and stored as its SHA-256 (like every bearer token
 * here): a stolen database holds no usable secret. oidc-provider compares plain secrets, so the provider replaces its
 * comparison with `secretMatches` (see provider.ts), and the secret is never used as an HMAC key (HS256 is not
 * offered). A public client (`--public`: single-page and native apps) has no secret and must use PKCE.
 */

export interface ClientInput {
  name: string;
  redirectUris: string[];
  postLogoutRedirectUris: string[];
  backchannelLogoutUri?: string | undefined;
  public: boolean;
}

export interface CreatedClient {
  clientId: string;
  /** Null for a public client. Shown once: only its hash is kept. */
  clientSecret: string | null;
}

export interface ClientView {
  clientId: string;
  name: string;
  public: boolean;
  redirectUris: string[];
  postLogoutRedirectUris: string[];
  backchannelLogoutUri: string | null;
  createdAt: number;
}

type ClientRow = Selectable<OidcClientTable>;

function isLoopbackHost(hostname: string): boolean {
  return hostname === "localhost" || hostname.endsWith(".localhost") || hostname === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}

/**
 * A URI a client may register: https, or http only on a loopback host (development, native apps); no fragment, no
 * user name or password in it. Stored exactly as given, because clients send it back for an exact comparison.
 */
export function checkClientUri(raw: string, label: string): Result<string, "invalid_request"> {
  const text = raw.trim();
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return fail("invalid_request", `${label} must be an absolute URL like https://app.example.com/callback, got "${text.slice(0, 200)}".`);
  }
  if (url.protocol !== "https:" && !(url.protocol === "http:" && isLoopbackHost(url.hostname))) {
    return fail(
      "invalid_request",
      `${label} must use https (http is accepted only on localhost or 127.0.0.1), got "${text.slice(0, 200)}".`,
    );
  }
  if (text.includes("#")) return fail("invalid_request", `${label} must not have a fragment (#…).`);
  if (url.username || url.password) return fail("invalid_request", `${label} must not carry a user name or password.`);
  if (text.length > 2000) return fail("invalid_request", `${label} is too long (at most 2000 characters).`);
  return ok(text);
}

function checkUris(raw: string[], label: string, max: number): Result<string[], "invalid_request"> {
  if (raw.length > max) return fail("invalid_request", `At most ${max} ${label}s per client.`);
  const checked: string[] = [];
  for (const uri of raw) {
    const result = checkClientUri(uri, label);
    if (!result.ok) return result;
    if (!checked.includes(result.value)) checked.push(result.value);
  }
  return ok(checked);
}

/** Registers a client and returns its id and (for a confidential client) its secret, which is not kept. */
export async function createClient(
  ctx: Pick<AppContext, "db" | "clock" | "config">,
  input: ClientInput,
): Promise<Result<CreatedClient, "invalid_request" | "name_invalid">> {
  const name = checkName(input.name, ctx.config.limits);
  if (!name.ok) return fail("name_invalid", `The client's name: ${name.message}`);
  if (name.value === "") return fail("name_invalid", "The client needs a name (--name).");
  const max = ctx.config.limits.oidcMaxRedirectUris;
  if (input.redirectUris.length === 0) return fail("invalid_request", "A client needs at least one redirect URI (--redirect-uri).");
  const redirectUris = checkUris(input.redirectUris, "redirect URI", max);
  if (!redirectUris.ok) return redirectUris;
  const postLogout = checkUris(input.postLogoutRedirectUris, "post-logout redirect URI", max);
  if (!postLogout.ok) return postLogout;
  let backchannel: string | null = null;
  if (input.backchannelLogoutUri !== undefined) {
    const checked = checkClientUri(input.backchannelLogoutUri, "The back-channel logout URI");
    if (!checked.ok) return checked;
    backchannel = checked.value;
  }
  const clientId = newId();
  const clientSecret = input.public ? null : newToken();
  await ctx.db
    .insertInto("oidc_clients")
    .values({
      client_id: clientId,
      name: name.value,
      secret_hash: clientSecret === null ? null : hashToken(clientSecret),
      redirect_uris: JSON.stringify(redirectUris.value),
      post_logout_redirect_uris: JSON.stringify(postLogout.value),
      backchannel_logout_uri: backchannel,
      created_at: ctx.clock.now(),
    })
    .execute();
  return ok({ clientId, clientSecret });
}

function parseList(text: string): string[] {
  const value: unknown = JSON.parse(text);
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : [];
}

function view(row: ClientRow): ClientView {
  return {
    clientId: row.client_id,
    name: row.name,
    public: row.secret_hash === null,
    redirectUris: parseList(row.redirect_uris),
    postLogoutRedirectUris: parseList(row.post_logout_redirect_uris),
    backchannelLogoutUri: row.backchannel_logout_uri,
    createdAt: row.created_at,
  };
}

export async function listClients(ctx: Pick<AppContext, "db">): Promise<ClientView[]> {
  const rows = await ctx.db.selectFrom("oidc_clients").selectAll().orderBy("created_at").orderBy("client_id").execute();
  return rows.map(view);
}

/** Every redirect origin of the registered clients (for `return_to` and similar allow-lists). */
export async function clientRedirectOrigins(ctx: Pick<AppContext, "db">): Promise<string[]> {
  const origins = new Set<string>();
  for (const client of await listClients(ctx)) for (const uri of client.redirectUris) origins.add(new URL(uri).origin);
  return [...origins];
}

/**
 * Deletes a client: its tokens stop working at once (every grant it holds is revoked) and it can start no sign-in.
 * Its clients' sessions are not told by back-channel logout: the client is gone.
 */
export async function deleteClient(ctx: Pick<AppContext, "db">, clientId: string): Promise<Result<{ name: string }, "not_found">> {
  return ctx.db.transaction().execute(async (tx) => {
    const row = await tx.selectFrom("oidc_clients").select("name").where("client_id", "=", clientId).executeTakeFirst();
    if (!row) return fail("not_found", `There is no client ${clientId} (\`latchkey client list\` shows them).`);
    const grants = await tx.selectFrom("oidc_grants").select("grant_id").where("client_id", "=", clientId).execute();
    for (const { grant_id } of grants) await revokeGrant(tx, grant_id);
    await tx.deleteFrom("oidc_grants").where("client_id", "=", clientId).execute();
    await tx.deleteFrom("oidc_clients").where("client_id", "=", clientId).execute();
    return ok({ name: row.name });
  });
}

/**
 * The client as oidc-provider reads it. Code flow only (with refresh tokens); confidential clients authenticate with
 * HTTP Basic, public ones with nothing (and PKCE, which the provider requires of every client). `client_secret` holds
 * the hash, which only `secretMatches` compares against; a client with a back-channel logout URI is sent the `sid`.
 */
export function clientMetadata(row: ClientRow): Record<string, unknown> {
  const backchannel = row.backchannel_logout_uri;
  return {
    client_id: row.client_id,
    client_name: row.name,
    ...(row.secret_hash === null
      ? { token_endpoint_auth_method: "none" }
      : { client_secret: row.secret_hash, token_endpoint_auth_method: "client_secret_basic" }),
    application_type: "web",
    grant_types: ["authorization_code", "refresh_token"],
    response_types: ["code"],
    redirect_uris: parseList(row.redirect_uris),
    post_logout_redirect_uris: parseList(row.post_logout_redirect_uris),
    ...(backchannel === null ? {} : { backchannel_logout_uri: backchannel, backchannel_logout_session_required: true }),
  };
}

/** Whether `presented` is the secret whose hash is stored (`stored`), in constant time. */
export function secretMatches(stored: string | undefined, presented: string): boolean {
  if (typeof stored !== "string" || typeof presented !== "string" || presented.length === 0 || presented.length > 512) return false;
  return constantTimeEqual(stored, hashToken(presented));
}
