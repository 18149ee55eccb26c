import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { ssoRedirectUri } from "../src/auth/sso-sign-in.js";
import { signInLinkMessage } from "../src/mail/messages.js";
import { createMailer } from "../src/mail/transport.js";
import { createClient } from "../src/oidc/clients.js";
import { issueSetupLink } from "../src/team/setup.js";
import { connectSso } from "../src/team/sso.js";
import { Browser as HttpBrowser, seedMember, signedInBrowser } from "../test/helpers/app.js";
import { enableAuthApp } from "../test/helpers/auth-app.js";
import { startTestIdp, type TestIdp } from "../test/helpers/oidc-provider.js";
import { adoptCookies, launchChromium, startE2eServer, type E2eServer } from "./helpers.js";

/**
 * The world the page checks (e2e/pages.e2e.test.ts) and the screenshots (e2e/screenshots.ts) look at: a Latchkey server
 * with a few teams in every state a page can be in, a test identity provider for single sign-on, an application
 * registered for OpenID Connect, an outbox for /dev/mail, and Chromium. The teams:
 *
 * - Acme Rockets: Margaret (admin, email link), Katherine (member, email link), Dorothy (member, auth app), an open
 *   and an expired invitation, single sign-on for sso.acme.example (Barbara signs in with it).
 * - Globex: Grace (admin, auth app) and Alan (member, email link): "Enable Auth App" is ready.
 * - Initech: Ada (admin, auth app) requires the auth app; Joan (member, email link) must set it up.
 * - Hedy is a member of both Acme Rockets and Globex (the account picker).
 *
 * People are seeded in the database and signed in over HTTP (`test/helpers`), once each; a page that changes its
 * person's state (the auth-app setup steps, new recovery codes) asks for a fresh person instead.
 */

export interface Person {
  name: string;
  email: string;
  password: string;
  userId: string;
  accountId: string;
}

export type PersonaName = "admin" | "member" | "appMember" | "appAdmin" | "policyAdmin" | "forcedMember" | "twoAccounts" | "ssoMember";

export const ACME = "Acme Rockets";
export const SSO_DOMAIN = "sso.acme.example";

export interface World {
  server: E2eServer;
  browser: Browser;
  idp: TestIdp;
  /** The OpenID Connect application's client id and its (unreachable) callback. */
  client: { id: string; redirectUri: string };
  /** The person of a persona. */
  person(name: PersonaName): Person;
  /** That person's signed-in cookie jar (one session per persona, made on first use). */
  session(name: PersonaName): Promise<HttpBrowser>;
  /** A new person nobody else uses (email link), in Acme Rockets or the account given. */
  freshPerson(options?: { role?: "admin" | "member"; accountId?: string }): Promise<Person>;
  /** A fresh browser profile at `width` × 800, light colours; signed in as `as` when given. */
  newPage(options?: { as?: PersonaName | HttpBrowser; width?: number; javaScriptEnabled?: boolean }): Promise<Page>;
  /** An authorization request of the application, as an OpenID Connect library builds it. */
  authorizationPath(extra?: Record<string, string>): string;
  /** A server with an empty database: the only place the first-run setup page exists. */
  emptyServer(): Promise<{ server: E2eServer; setupUrl: string }>;
  /** Moves the server's clock on: people take time between clicks (and TOTP codes are single-use per step). */
  later(seconds?: number): void;
  close(): Promise<void>;
}

export async function startWorld(): Promise<World> {
  const outboxDir = mkdtempSync(join(tmpdir(), "latchkey-pages-outbox-"));
  const server = await startE2eServer({ outboxDir });
  const browser = await launchChromium();
  const idp = await startTestIdp({ redirectUri: ssoRedirectUri(server.ctx) });
  const contexts: BrowserContext[] = [];
  const extraServers: E2eServer[] = [];
  const clock = server.clock;
  const later = (seconds = 31): void => clock.advanceSeconds(seconds);

  // The application that signs people in with Latchkey. Nothing listens at its callback: the pages checked are
  // Latchkey's own.
  const redirectUri = "http://127.0.0.1:8999/callback";
  const registered = await createClient(server.ctx, {
    name: "Example app",
    redirectUris: [redirectUri],
    postLogoutRedirectUris: [],
    public: false,
  });
  if (!registered.ok) throw new Error(registered.message);

  // One message in the outbox, as `latchkey serve` writes it without SMTP_URL: /dev/mail lists it and shows both parts.
  const outbox = createMailer({ smtpUrl: undefined, from: "Latchkey <no-reply@127.0.0.1>", outboxDir });
  await outbox.send(
    signInLinkMessage({
      to: "margaret@acme.example",
      productName: "Latchkey",
      url: `${server.baseUrl}/login/email/${"x".repeat(43)}`,
      expiresInMinutes: 10,
      ip: "203.0.113.9",
      userAgent: "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
    }),
  );
  await outbox.close();

  let count = 0;
  async function seed(input: {
    name: string;
    email?: string;
    role: "admin" | "member";
    accountId?: string;
    accountName?: string;
  }): Promise<Person> {
    count += 1;
    const email = input.email ?? `mary-${count}@acme.example`;
    const password = `correct horse battery ${count} staple`;
    const seeded = await seedMember(server, {
      name: input.name,
      email,
      password,
      role: input.role,
      ...(input.accountId !== undefined ? { accountId: input.accountId } : { accountName: input.accountName ?? ACME }),
    });
    return { name: input.name, email, password, userId: seeded.userId, accountId: seeded.accountId };
  }

  async function addMembership(person: Person, accountId: string, role: "admin" | "member"): Promise<void> {
    await server.ctx.db
      .insertInto("memberships")
      .values({
        id: randomBytes(16).toString("hex"),
        account_id: accountId,
        user_id: person.userId,
        role,
        sign_in_method: "password",
        created_at: clock.now(),
        last_sign_in_at: null,
      })
      .execute();
  }

  /** Signs `person` in over HTTP with the emailed link, or (auth app) sets the app up in that session. */
  async function signIn(person: Person, authApp = false): Promise<HttpBrowser> {
    later();
    if (!authApp) return signedInBrowser(server, person);
    const enabled = await enableAuthApp(server, person);
    later();
    return enabled.browser;
  }

  async function invite(admin: HttpBrowser, email: string): Promise<void> {
    const invited = await admin.request("POST", "/api/v1/team/invitations", { json: { email, role: "member" } });
    if (invited.statusCode !== 201) throw new Error(`inviting ${email}: ${invited.statusCode} ${invited.body}`);
  }

  // Each team, made once with everything its pages show, one after the other: they share the clock, and auth-app
  // codes are single-use per time step.
  const acmeAdmin = await seed({ name: "Margaret Hamilton", email: "margaret@acme.example", role: "admin" });
  const acmeId = acmeAdmin.accountId;
  const acmeAdminSession = await signIn(acmeAdmin);
  const acmeMember = await seed({ name: "Katherine Johnson", email: "katherine@acme.example", role: "member", accountId: acmeId });
  const acmeAppMember = await seed({ name: "Dorothy Vaughan", email: "dorothy@acme.example", role: "member", accountId: acmeId });
  const acmeMemberSession = await signIn(acmeMember);
  const acmeAppMemberSession = await signIn(acmeAppMember, true);
  await invite(acmeAdminSession, "mary@acme.example");
  await invite(acmeAdminSession, "annie@acme.example");
  // Annie's invitation ran out (invitations last 7 days; the clock is not moved a week for everyone).
  await server.ctx.db
    .updateTable("invitations")
    .set({ expires_at: clock.now() - 1000 })
    .where("email", "=", "annie@acme.example")
    .execute();
  const connected = await connectSso(server.ctx, {
    accountId: acmeId,
    issuer: idp.issuer,
    clientId: idp.clientId,
    clientSecret: idp.clientSecret,
    domains: [SSO_DOMAIN],
  });
  if (!connected.ok) throw new Error(connected.message);

  const globexAdmin = await seed({ name: "Grace Hopper", email: "grace@globex.example", role: "admin", accountName: "Globex" });
  await seed({ name: "Alan Turing", email: "alan@globex.example", role: "member", accountId: globexAdmin.accountId });
  const globexAdminSession = await signIn(globexAdmin, true);

  const initechAdmin = await seed({ name: "Ada Lovelace", email: "ada@initech.example", role: "admin", accountName: "Initech" });
  const initechMember = await seed({
    name: "Joan Clarke",
    email: "joan@initech.example",
    role: "member",
    accountId: initechAdmin.accountId,
  });
  const initechAdminSession = await signIn(initechAdmin, true);
  const initechMemberSession = await signIn(initechMember);
  const required = await initechAdminSession.request("PUT", "/api/v1/policy", { json: { policy: "auth_app_required" } });
  if (required.statusCode !== 200) throw new Error(`requiring the auth app: ${required.statusCode} ${required.body}`);

  const hedy = await seed({ name: "Hedy Lamarr", email: "hedy@acme.example", role: "member", accountId: acmeId });
  await addMembership(hedy, globexAdmin.accountId, "admin");
  const barbara: Person = { name: "Barbara Liskov", email: `barbara@${SSO_DOMAIN}`, password: "", userId: "", accountId: acmeId };

  /** The whole single sign-on over HTTP: the API, the provider, the callback, in one cookie jar. */
  async function signInWithSso(person: Person): Promise<HttpBrowser> {
    const http = new HttpBrowser(server.app);
    const started = await http.request("POST", "/api/v1/login/sso", { json: { domain: SSO_DOMAIN } });
    if (started.statusCode !== 200) throw new Error(`SSO start: ${started.statusCode} ${started.body}`);
    idp.nextUser = { sub: `idp-${person.email}`, email: person.email, email_verified: true, name: person.name };
    const callback = await idp.signIn(started.json<{ authorizationUrl: string }>().authorizationUrl);
    const done = await http.get(callback);
    if (done.statusCode !== 303) throw new Error(`SSO callback: ${done.statusCode} ${done.body.slice(0, 300)}`);
    return http;
  }

  const personas: Record<PersonaName, { person: Person; session: () => Promise<HttpBrowser> }> = {
    admin: { person: acmeAdmin, session: async () => acmeAdminSession },
    member: { person: acmeMember, session: async () => acmeMemberSession },
    appMember: { person: acmeAppMember, session: async () => acmeAppMemberSession },
    appAdmin: { person: globexAdmin, session: async () => globexAdminSession },
    policyAdmin: { person: initechAdmin, session: async () => initechAdminSession },
    forcedMember: { person: initechMember, session: async () => initechMemberSession },
    twoAccounts: { person: hedy, session: () => signIn(hedy) },
    ssoMember: { person: barbara, session: () => signInWithSso(barbara) },
  };
  const sessions = new Map<PersonaName, Promise<HttpBrowser>>();

  const world: World = {
    server,
    browser,
    idp,
    client: { id: registered.value.clientId, redirectUri },
    later,
    person(name) {
      return personas[name].person;
    },
    session(name) {
      if (!sessions.has(name)) sessions.set(name, personas[name].session());
      return sessions.get(name)!;
    },
    async freshPerson(options = {}) {
      return seed({ name: "Mary Jackson", role: options.role ?? "member", accountId: options.accountId ?? acmeId });
    },
    async newPage(options = {}) {
      const context = await browser.newContext({
        baseURL: server.baseUrl,
        viewport: { width: options.width ?? 1280, height: 800 },
        colorScheme: "light",
        ...(options.javaScriptEnabled === false ? { javaScriptEnabled: false } : {}),
      });
      contexts.push(context);
      context.setDefaultTimeout(15_000);
      if (options.as !== undefined) {
        const http = typeof options.as === "string" ? await world.session(options.as) : options.as;
        await adoptCookies(context, http, server.baseUrl);
      }
      return context.newPage();
    },
    authorizationPath(extra = {}) {
      const verifier = randomBytes(32).toString("base64url");
      const query = new URLSearchParams({
        client_id: registered.value.clientId,
        redirect_uri: redirectUri,
        response_type: "code",
        scope: "openid email profile",
        code_challenge: createHash("sha256").update(verifier).digest("base64url"),
        code_challenge_method: "S256",
        state: randomBytes(16).toString("base64url"),
        nonce: randomBytes(16).toString("base64url"),
        ...extra,
      });
      return `/oidc/auth?${query.toString()}`;
    },
    async emptyServer() {
      const empty = await startE2eServer();
      extraServers.push(empty);
      const link = await issueSetupLink(empty.ctx);
      if (!link) throw new Error("no setup link on an empty database");
      return { server: empty, setupUrl: link.url };
    },
    async close() {
      for (const context of contexts) await context.close().catch(() => undefined);
      await browser.close().catch(() => undefined);
      await idp.close().catch(() => undefined);
      for (const extra of extraServers) await extra.close().catch(() => undefined);
      await server.close();
      rmSync(outboxDir, { recursive: true, force: true });
    },
  };
  return world;
}
