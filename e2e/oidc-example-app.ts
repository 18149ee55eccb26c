import { randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import * as client from "openid-client";

/**
 * The example application of README.md, "Protect an app with OpenID Connect": a Node app that signs people in with
 * Latchkey through openid-client, with nothing else. Kept here, runnable, so the e2e test proves the README's code
 * works in a real browser. (The only difference: `allowInsecure` for the tests' plain-http loopback issuer.)
 */
export interface ExampleApp {
  origin: string;
  close(): Promise<void>;
}

export async function startExampleApp(options: {
  issuer: string;
  clientId: string;
  clientSecret: string;
  port: number;
  allowInsecure?: boolean;
}): Promise<ExampleApp> {
  const appUrl = `http://127.0.0.1:${options.port}`;
  const config = await client.discovery(
    new URL(options.issuer),
    options.clientId,
    undefined,
    client.ClientSecretBasic(options.clientSecret),
    options.allowInsecure ? { execute: [client.allowInsecureRequests] } : undefined,
  );

  /** Sign-ins in flight (by a random cookie) and signed-in people (by another): an app's own session store. */
  const pending = new Map<string, { state: string; nonce: string; verifier: string }>();
  const sessions = new Map<string, { claims: client.IDToken; idToken: string }>();
  const cookieOf = (header: string | undefined, name: string): string | undefined =>
    header
      ?.split(";")
      .map((part) => part.trim().split("="))
      .find(([key]) => key === name)?.[1];
  const escape = (text: unknown): string => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

  const server: Server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? "/", appUrl);
      const session = sessions.get(cookieOf(req.headers.cookie, "app_session") ?? "");

      if (url.pathname === "/login") {
        // A fresh PKCE verifier, state and nonce for every sign-in, kept server-side under a cookie of this browser.
        const flow = { state: client.randomState(), nonce: client.randomNonce(), verifier: client.randomPKCECodeVerifier() };
        const flowId = randomBytes(16).toString("hex");
        pending.set(flowId, flow);
        const to = client.buildAuthorizationUrl(config, {
          redirect_uri: `${appUrl}/callback`,
          scope: "openid email profile account",
          code_challenge: await client.calculatePKCECodeChallenge(flow.verifier),
          code_challenge_method: "S256",
          state: flow.state,
          nonce: flow.nonce,
        });
        res.writeHead(303, { location: to.href, "set-cookie": `app_flow=${flowId}; HttpOnly; SameSite=Lax; Path=/` }).end();
        return;
      }

      if (url.pathname === "/callback") {
        const flowId = cookieOf(req.headers.cookie, "app_flow") ?? "";
        const flow = pending.get(flowId);
        pending.delete(flowId);
        if (!flow) return void res.writeHead(400).end("No sign-in in progress in this browser.");
        // Checks the state, exchanges the code with the PKCE verifier, verifies the ID token (signature against the
        // JWKS, issuer, audience, expiry, nonce).
        const tokens = await client.authorizationCodeGrant(config, url, {
          pkceCodeVerifier: flow.verifier,
          expectedState: flow.state,
          expectedNonce: flow.nonce,
          idTokenExpected: true,
        });
        const sessionId = randomBytes(16).toString("hex");
        sessions.set(sessionId, { claims: tokens.claims()!, idToken: tokens.id_token! });
        res.writeHead(303, { location: "/", "set-cookie": `app_session=${sessionId}; HttpOnly; SameSite=Lax; Path=/` }).end();
        return;
      }

      if (url.pathname === "/logout" && session) {
        // RP-initiated logout: Latchkey asks the person, signs them out, and sends them back here.
        const to = client.buildEndSessionUrl(config, { id_token_hint: session.idToken, post_logout_redirect_uri: `${appUrl}/signed-out` });
        res.writeHead(303, { location: to.href }).end();
        return;
      }

      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      if (url.pathname === "/signed-out") return void res.end("<h1>Signed out</h1>");
      if (!session) return void res.end('<h1>Example app</h1><a href="/login">Sign in with Latchkey</a>');
      const { claims } = session;
      res.end(
        `<h1>Hello, ${escape(claims["name"])}</h1>` +
          `<p id="who">${escape(claims["email"])} in ${escape(claims["account_name"])} (${escape(claims["role"])})</p>` +
          `<p id="how">acr ${escape(claims.acr)}, amr ${escape([claims.amr ?? []].flat().join(" "))}</p>` +
          '<a href="/logout">Sign out</a>',
      );
    })().catch((error: unknown) => {
      res.writeHead(500).end(String(error));
    });
  });
  await new Promise<void>((resolve) => server.listen(options.port, "127.0.0.1", resolve));
  return {
    origin: appUrl,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
