import { generateKeyPairSync, randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import Provider, { type ProviderContext } from "oidc-provider";

/** Who the test provider signs in next: its claims, as the provider releases them. */
export interface TestIdentity {
  sub: string;
  email?: string;
  email_verified?: boolean;
  name?: string;
  /** The `amr` the provider puts in the ID token (RFC 8176), e.g. ["pwd", "mfa"]. */
  amr?: string[];
}

export interface TestIdp {
  issuer: string;
  clientId: string;
  clientSecret: string;
  /** The person the next sign-in logs in as (no login form: the interaction finishes at once). */
  nextUser: TestIdentity;
  /** Follows the authorization URL through the provider like a browser (cookies, redirects) and returns the callback URL it ends at. */
  signIn(authorizationUrl: string): Promise<string>;
  close(): Promise<void>;
}

/**
 * A real OpenID provider (oidc-provider) on 127.0.0.1 and a free port, with one confidential client
 * (client_secret_basic, PKCE). Login and consent happen without UI: the interaction logs in `nextUser`, and a grant
 * for the requested scopes is created on the fly.
 */
export async function startTestIdp(options: { redirectUri: string }): Promise<TestIdp> {
  const clientId = "latchkey-test";
  const clientSecret = randomBytes(24).toString("base64url");
  const users = new Map<string, TestIdentity>();
  let provider: Provider | undefined; // eslint-disable-line prefer-const -- assigned once the issuer URL is known
  const idp = { nextUser: { sub: "nobody" } as TestIdentity };

  const server: Server = createServer((req, res) => {
    if (!provider) {
      res.statusCode = 503;
      res.end();
      return;
    }
    const p = provider;
    if (req.url?.startsWith("/interaction/")) {
      void (async () => {
        await p.interactionDetails(req, res);
        users.set(idp.nextUser.sub, idp.nextUser);
        const { sub, amr } = idp.nextUser;
        await p.interactionFinished(req, res, { login: { accountId: sub, ...(amr ? { amr } : {}) } }, { mergeWithLastSubmission: false });
      })().catch((error: unknown) => {
        res.statusCode = 500;
        res.end(String(error));
      });
      return;
    }
    p.callback()(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  const issuer = `http://127.0.0.1:${port}`;

  const jwk = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ format: "jwk" });
  provider = new Provider(issuer, {
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        redirect_uris: [options.redirectUri],
        token_endpoint_auth_method: "client_secret_basic",
        grant_types: ["authorization_code"],
        response_types: ["code"],
      },
    ],
    jwks: { keys: [{ ...jwk, kid: "test-key", use: "sig", alg: "RS256" }] },
    cookies: { keys: [randomBytes(16).toString("hex")] },
    claims: { openid: ["sub", "amr"], email: ["email", "email_verified"], profile: ["name"] },
    features: { devInteractions: { enabled: false } },
    ttl: { Interaction: 600, Session: 600, Grant: 600, AccessToken: 600, IdToken: 600, AuthorizationCode: 60 },
    interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
    findAccount: async (_ctx: unknown, sub: string) => ({
      accountId: sub,
      claims: async () => {
        const { amr: _amr, ...user } = users.get(sub) ?? { sub };
        return { ...user, sub };
      },
    }),
    // First-party client: consent is implied, so a grant for what was asked is made without a prompt.
    loadExistingGrant: async (ctx: ProviderContext) => {
      const grantId = ctx.oidc.result?.consent?.grantId ?? ctx.oidc.session.grantIdFor(ctx.oidc.client!.clientId);
      if (grantId) return ctx.oidc.provider.Grant.find(grantId);
      const grant = new ctx.oidc.provider.Grant({ accountId: ctx.oidc.session.accountId!, clientId: ctx.oidc.client!.clientId });
      grant.addOIDCScope("openid email profile");
      grant.addOIDCClaims(["email", "email_verified", "name"]);
      await grant.save();
      return grant;
    },
  });

  return {
    issuer,
    clientId,
    clientSecret,
    get nextUser() {
      return idp.nextUser;
    },
    set nextUser(user: TestIdentity) {
      idp.nextUser = user;
    },
    async signIn(authorizationUrl: string): Promise<string> {
      const jar = new Map<string, string>();
      let url = authorizationUrl;
      for (let hop = 0; hop < 15; hop += 1) {
        if (url.startsWith(options.redirectUri)) return url;
        const response = await fetch(url, {
          redirect: "manual",
          headers: jar.size ? { cookie: [...jar].map(([k, v]) => `${k}=${v}`).join("; ") } : {},
        });
        for (const cookie of response.headers.getSetCookie()) {
          const [pair] = cookie.split(";");
          const eq = pair?.indexOf("=") ?? -1;
          if (pair && eq > 0) jar.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
        }
        const location = response.headers.get("location");
        if (!location) throw new Error(`the provider stopped at ${url} with ${response.status}: ${(await response.text()).slice(0, 500)}`);
        await response.arrayBuffer().catch(() => undefined);
        url = new URL(location, url).href;
      }
      throw new Error("too many redirects at the provider");
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
