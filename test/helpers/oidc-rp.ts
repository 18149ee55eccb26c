import { createPublicKey, verify, type JsonWebKey } from "node:crypto";
import { createServer, type Server } from "node:http";
import * as client from "openid-client";
import type { LightMyRequestResponse } from "fastify";
import type { Dialect } from "../../src/db/connect.js";
import { createClient, type ClientInput } from "../../src/oidc/clients.js";
import { startTestApp, type Browser, type TestApp, type TestAppOptions } from "./app.js";
import { freePort } from "./ports.js";

/**
 * A relying party built with openid-client (a real, certified library, not our code) against a Latchkey that listens
 * on a loopback port: discovery, the authorization URL with PKCE, state and nonce, the code exchange (ID token
 * checked against the JWKS), UserInfo and refresh all go over HTTP. The browser's part goes through the
 * `Browser` cookie jar over `app.inject`, following redirects by hand.
 */

export interface ListeningApp extends TestApp {
  /** http://127.0.0.1:<port>: the public URL and the issuer. */
  origin: string;
}

/** startTestApp, listening, with the public URL on its port (the issuer must be the URL clients use). */
export async function startListeningApp(dialect: Dialect, options: TestAppOptions = {}): Promise<ListeningApp> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const origin = `http://127.0.0.1:${port}`;
    const t = await startTestApp(dialect, { ...options, env: { LATCHKEY_PUBLIC_URL: origin, ...options.env } });
    try {
      await t.app.listen({ port, host: "127.0.0.1" });
      return { ...t, origin };
    } catch (error) {
      await t.close();
      if ((error as NodeJS.ErrnoException).code !== "EADDRINUSE" || attempt >= 5) throw error;
    }
  }
}

export const RP_REDIRECT_URI = "http://127.0.0.1:9/callback";

export interface RegisteredClient {
  clientId: string;
  clientSecret: string | null;
}

export async function registerClient(t: Pick<TestApp, "ctx">, input: Partial<ClientInput> = {}): Promise<RegisteredClient> {
  const result = await createClient(t.ctx, {
    name: "Test app",
    redirectUris: [RP_REDIRECT_URI],
    postLogoutRedirectUris: [],
    public: false,
    ...input,
  });
  if (!result.ok) throw new Error(result.message);
  return result.value;
}

/** openid-client's configuration for a registered client, from Latchkey's discovery document. */
export async function discover(origin: string, registered: RegisteredClient): Promise<client.Configuration> {
  const auth = registered.clientSecret === null ? client.None() : client.ClientSecretBasic(registered.clientSecret);
  return client.discovery(new URL(origin), registered.clientId, undefined, auth, { execute: [client.allowInsecureRequests] });
}

export interface StartedAuthorization {
  url: string;
  codeVerifier: string;
  state: string;
  nonce: string;
}

export async function authorizationUrl(
  config: client.Configuration,
  params: Record<string, string> = {},
  redirectUri = RP_REDIRECT_URI,
): Promise<StartedAuthorization> {
  const codeVerifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: "openid email profile account",
    code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: "S256",
    state,
    nonce,
    ...params,
  });
  return { url: url.href, codeVerifier, state, nonce };
}

export interface Followed {
  /** The last response (a redirect leaving Latchkey's origin, or a page). */
  response: LightMyRequestResponse;
  /** Every URL visited, in order (absolute). */
  visited: string[];
  /** Where the last redirect pointed, when it left Latchkey (e.g. the client's redirect URI). */
  leftTo: string | undefined;
}

/** Follows redirects within Latchkey's origin like a browser, stopping at a page or at a redirect to another origin. */
export async function follow(browser: Browser, origin: string, url: string, maxHops = 15): Promise<Followed> {
  const visited: string[] = [];
  let current = new URL(url, origin).href;
  for (let hop = 0; hop < maxHops; hop += 1) {
    visited.push(current);
    let response = await browser.get(current);
    // The provider's self-submitting form (form_post: a script posts it at once) to its own origin: post it, as a
    // browser would. (One to another origin is the answer to a client: left for the test to read.)
    const autoForm = response.body.includes("document.forms[0].submit()")
      ? /<form method="post" action="([^"]+)">([\s\S]*?)<\/form>/.exec(response.body)
      : null;
    if (response.statusCode === 200 && autoForm?.[1] && new URL(autoForm[1].replaceAll("&amp;", "&"), current).origin === origin) {
      const fields = Object.fromEntries([...autoForm[2]!.matchAll(/name="([^"]+)" value="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
      const action = autoForm[1].replaceAll("&amp;", "&");
      visited.push(`POST ${action}`);
      response = await browser.request("POST", action, { form: fields });
    }
    const location = response.headers.location;
    if (response.statusCode < 300 || response.statusCode >= 400 || typeof location !== "string") {
      return { response, visited, leftTo: undefined };
    }
    const next = new URL(location, current);
    if (next.origin !== origin) return { response, visited, leftTo: next.href };
    current = next.href;
  }
  throw new Error(`too many redirects: ${visited.join(" → ")}`);
}

/** The full front channel: authorization URL → … → the client's redirect URI with a code. */
export async function authorizeInBrowser(browser: Browser, origin: string, started: StartedAuthorization): Promise<URL> {
  const followed = await follow(browser, origin, started.url);
  if (!followed.leftTo) {
    throw new Error(
      `the authorization stopped at ${followed.visited.at(-1)} with ${followed.response.statusCode}: ${followed.response.body.slice(0, 300)}`,
    );
  }
  return new URL(followed.leftTo);
}

export async function exchangeCode(
  config: client.Configuration,
  callback: URL,
  started: StartedAuthorization,
): Promise<client.TokenEndpointResponse & client.TokenEndpointResponseHelpers> {
  return client.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: started.codeVerifier,
    expectedState: started.state,
    expectedNonce: started.nonce,
    idTokenExpected: true,
  });
}

/** A loopback HTTP server standing in for a client's back-channel logout endpoint: it keeps every logout token. */
export interface BackchannelReceiver {
  uri: string;
  tokens: string[];
  close(): Promise<void>;
}

export async function startBackchannelReceiver(): Promise<BackchannelReceiver> {
  const tokens: string[] = [];
  const server: Server = createServer((req, res) => {
    let body = "";
    req.on("data", (chunk: Buffer) => (body += chunk.toString("utf8")));
    req.on("end", () => {
      const token = new URLSearchParams(body).get("logout_token");
      if (req.method === "POST" && token) tokens.push(token);
      res.statusCode = token ? 200 : 400;
      res.setHeader("Cache-Control", "no-store");
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    uri: `http://127.0.0.1:${port}/backchannel`,
    tokens,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * Verifies a JWT (RS256) against the issuer's JWKS as a client would: the key is the JWKS entry with the token's kid.
 * Returns the payload; throws when the signature does not verify or the key is not published.
 */
export async function verifyWithJwks(origin: string, jwt: string): Promise<Record<string, unknown>> {
  const [headerPart, payloadPart, signaturePart] = jwt.split(".");
  if (!headerPart || !payloadPart || !signaturePart) throw new Error("not a JWT");
  const header = JSON.parse(Buffer.from(headerPart, "base64url").toString("utf8")) as { kid?: string; alg?: string };
  if (header.alg !== "RS256") throw new Error(`unexpected alg ${header.alg}`);
  const jwks = (await (await fetch(`${origin}/oidc/jwks`)).json()) as { keys: Array<Record<string, unknown>> };
  const jwk = jwks.keys.find((k) => k["kid"] === header.kid);
  if (!jwk) throw new Error(`kid ${header.kid} is not in the JWKS`);
  if ("d" in jwk) throw new Error("the JWKS publishes a private key");
  const key = createPublicKey({ key: jwk as unknown as JsonWebKey, format: "jwk" });
  const ok = verify("sha256", Buffer.from(`${headerPart}.${payloadPart}`), key, Buffer.from(signaturePart, "base64url"));
  if (!ok) throw new Error("the signature does not verify");
  return JSON.parse(Buffer.from(payloadPart, "base64url").toString("utf8")) as Record<string, unknown>;
}
