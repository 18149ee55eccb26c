import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectSso, disconnectSso } from "../src/team/sso.js";
import { ssoRedirectUri } from "../src/auth/sso-sign-in.js";
import { newId } from "../src/auth/tokens.js";
import { Browser, csrfFrom, seedMember, signedInBrowser, startTestApp, type TestApp } from "./helpers/app.js";
import { describeEachDialect } from "./helpers/dialects.js";
import { startTestIdp, type TestIdp } from "./helpers/oidc-provider.js";

describeEachDialect("single sign-on with OpenID Connect", (dialect) => {
  let t: TestApp;
  let idp: TestIdp;
  let accountId: string;
  let admin: { email: string; password: string };
  const domain = `acme-${newId().slice(0, 6)}.example`;

  beforeAll(async () => {
    t = await startTestApp(dialect);
    idp = await startTestIdp({ redirectUri: ssoRedirectUri(t.ctx) });
    const seeded = await seedMember(t, { role: "admin", email: `admin@${domain}`, accountName: "Acme SSO" });
    accountId = seeded.accountId;
    admin = seeded;
    const connected = await connectSso(t.ctx, {
      accountId,
      issuer: idp.issuer,
      clientId: idp.clientId,
      clientSecret: idp.clientSecret,
      domains: [domain.toUpperCase(), `sub.${domain}`],
    });
    expect(connected.ok).toBe(true);
  });
  afterAll(async () => {
    await idp?.close();
    await t?.close();
  });

  /** Starts SSO through the API in `browser`, lets the provider sign in `nextUser`, and returns the callback URL. */
  async function throughProvider(
    browser: Browser,
    who: { sub: string; email?: string; email_verified?: boolean; name?: string },
    input = `someone@${domain}`,
  ): Promise<string> {
    const started = await browser.request("POST", "/api/v1/login/sso", { json: { domain: input } });
    expect(started.statusCode, started.body).toBe(200);
    idp.nextUser = who;
    return idp.signIn(started.json<{ authorizationUrl: string }>().authorizationUrl);
  }

  function person(): { sub: string; email: string; email_verified: true; name: string } {
    const id = newId().slice(0, 10);
    return { sub: `sub-${id}`, email: `Person.${id}@${domain}`, email_verified: true, name: `Person ${id}` };
  }

  it("a full sign-in provisions an SSO member and a session whose method is sso, with no second factor", async () => {
    const browser = new Browser(t.app);
    const who = person();
    const callback = await throughProvider(browser, who);
    expect(callback.startsWith(`${t.config.publicUrl.origin}/sso/callback?`)).toBe(true);
    const done = await browser.get(callback);
    expect(done.statusCode, done.body).toBe(303);
    expect(done.headers.location).toBe("/");
    const session = await browser.get("/api/v1/session");
    expect(session.statusCode).toBe(200);
    const body = session.json<{
      user: { email: string; name: string };
      account: { id: string };
      role: string;
      twoFactor: { method: string };
    }>();
    expect(body.user.email).toBe(who.email.toLowerCase());
    expect(body.user.name).toBe(who.name);
    expect(body.account.id).toBe(accountId);
    expect(body.role).toBe("member");
    expect(body.twoFactor.method).toBe("sso");

    const user = await t.ctx.db.selectFrom("users").selectAll().where("email", "=", who.email.toLowerCase()).executeTakeFirstOrThrow();
    expect(user.password_hash).toBeNull();
    const membership = await t.ctx.db.selectFrom("memberships").selectAll().where("user_id", "=", user.id).execute();
    expect(membership.map((m) => [m.account_id, m.sign_in_method, m.role])).toEqual([[accountId, "sso", "member"]]);
    const events = await t.ctx.db
      .selectFrom("audit_events")
      .select(["type", "detail"])
      .where("user_id", "=", user.id)
      .orderBy("id")
      .execute();
    expect(events.map((e) => e.type)).toEqual(["sso.member_provisioned", "sign_in.succeeded"]);
    expect(JSON.parse(events[1]!.detail)).toEqual({ secondFactor: "sso" });
    // The Team Members list shows them as SSO.
    const members = await browser.get("/api/v1/team/members");
    expect(JSON.stringify(members.json())).toContain('"method":"sso"');

    // A second sign-in finds the same member: no new user, no new provisioning event.
    const again = new Browser(t.app);
    expect((await again.get(await throughProvider(again, who))).statusCode).toBe(303);
    const provisioned = await t.ctx.db
      .selectFrom("audit_events")
      .select("id")
      .where("user_id", "=", user.id)
      .where("type", "=", "sso.member_provisioned")
      .execute();
    expect(provisioned).toHaveLength(1);
  });

  it("the web flow: the login page links to SSO, the form takes a work email, and hands over to the provider", async () => {
    const browser = new Browser(t.app);
    const login = await browser.get("/login");
    expect(login.body).toContain('href="/login/sso"');
    expect(login.body).toContain("Sign in with SSO");
    const page = await browser.get("/login/sso");
    expect(page.body).toContain("Work email or domain");
    expect(page.body).toContain("Continue with SSO");
    const handOver = await browser.request("POST", "/login/sso", { form: { _csrf: csrfFrom(page.body), domain: `anyone@${domain}` } });
    expect(handOver.statusCode).toBe(200);
    const url = /<a class="button" href="([^"]+)"/.exec(handOver.body)?.[1]?.replaceAll("&amp;", "&");
    expect(url?.startsWith(`${idp.issuer}/auth?`)).toBe(true);
    expect(handOver.body).toContain('http-equiv="refresh"');
    const params = new URL(url!).searchParams;
    expect(params.get("code_challenge_method")).toBe("S256");
    expect(params.get("scope")).toBe("openid email profile");
    expect(params.get("redirect_uri")).toBe(`${t.config.publicUrl.origin}/sso/callback`);
    expect(params.get("nonce")).toBeTruthy();
    idp.nextUser = person();
    const done = await browser.get(await idp.signIn(url!));
    expect(done.statusCode).toBe(303);
    expect((await browser.get("/")).statusCode).toBe(200);
  });

  it("an SSO member cannot sign in with a password: the same 401 as a wrong password", async () => {
    const browser = new Browser(t.app);
    const who = person();
    await browser.get(await throughProvider(browser, who));
    const sso = await t.app.inject({
      method: "POST",
      url: "/api/v1/login",
      payload: { email: who.email, password: "any password at all" },
    });
    const other = await seedMember(t, { accountId });
    const wrong = await t.app.inject({
      method: "POST",
      url: "/api/v1/login",
      payload: { email: other.email, password: "not the password" },
    });
    expect(sso.statusCode).toBe(401);
    expect(sso.json()).toEqual({ error: "invalid_credentials", message: "The email or password is not correct." });
    expect(sso.body).toBe(wrong.body);
  });

  it("the auth_app_required policy leaves SSO members alone", async () => {
    const browser = new Browser(t.app);
    await browser.get(await throughProvider(browser, person()));
    await t.ctx.db.updateTable("accounts").set({ two_factor_policy: "auth_app_required" }).where("id", "=", accountId).execute();
    try {
      const home = await browser.get("/");
      expect(home.statusCode).toBe(200);
      expect((await browser.get("/api/v1/verify")).statusCode).toBe(200);
      expect((await browser.get("/api/v1/session")).json<{ twoFactor: { setupRequired: boolean } }>().twoFactor.setupRequired).toBe(false);
    } finally {
      await t.ctx.db.updateTable("accounts").set({ two_factor_policy: "email_link" }).where("id", "=", accountId).execute();
    }
  });

  it("a callback without the state cookie (another browser) is refused and spends nothing; a reused state is refused", async () => {
    const browser = new Browser(t.app);
    const callback = await throughProvider(browser, person());
    const elsewhere = new Browser(t.app);
    const refused = await elsewhere.get(callback);
    expect(refused.statusCode).toBe(403);
    expect(refused.body).toContain("browser where you started");
    expect(elsewhere.cookies.size).toBe(0);
    const done = await browser.get(callback);
    expect(done.statusCode).toBe(303);
    const replay = await browser.get(callback);
    expect(replay.statusCode).toBe(410);
    expect(replay.body).toContain("already used");
  });

  it("an expired state is refused", async () => {
    const browser = new Browser(t.app);
    const callback = await throughProvider(browser, person());
    t.clock.advanceSeconds(t.config.limits.ssoLoginTtlSeconds + 1);
    const late = await browser.get(callback);
    expect(late.statusCode).toBe(410);
    expect(late.body).toContain("expired");
  });

  it("refuses an email outside the connection's domains, and an unverified email", async () => {
    const outside = new Browser(t.app);
    const stranger = {
      sub: `sub-${newId()}`,
      email: `someone@elsewhere-${newId().slice(0, 6)}.example`,
      email_verified: true,
      name: "Stranger",
    };
    const refused = await outside.get(await throughProvider(outside, stranger));
    expect(refused.statusCode).toBe(401);
    expect(refused.body).toContain("not in a domain");
    expect(await t.ctx.db.selectFrom("users").select("id").where("email", "=", stranger.email).executeTakeFirst()).toBeUndefined();

    const unverified = new Browser(t.app);
    const who = { ...person(), email_verified: false };
    const refused2 = await unverified.get(await throughProvider(unverified, who));
    expect(refused2.statusCode).toBe(401);
    expect(refused2.body).toContain("not verified");
    expect((await unverified.get("/api/v1/session")).statusCode).toBe(401);
    expect(await t.ctx.db.selectFrom("users").select("id").where("email", "=", who.email.toLowerCase()).executeTakeFirst()).toBeUndefined();
  });

  it("an identity provider's email with a control character is refused, never a 500", async () => {
    const browser = new Browser(t.app);
    const started = await browser.request("POST", "/api/v1/login/sso", { json: { domain } });
    idp.nextUser = { sub: `sub-${newId().slice(0, 10)}`, email: `bad\u0000name@${domain}`, email_verified: true };
    const done = await browser.get(await idp.signIn(started.json<{ authorizationUrl: string }>().authorizationUrl));
    expect(done.statusCode, done.body.slice(0, 300)).toBe(401);
  });

  it("an unknown domain gets a clear answer, on the API and the page", async () => {
    const api = await t.app.inject({ method: "POST", url: "/api/v1/login/sso", payload: { domain: "someone@Unknown-Corp.example" } });
    expect(api.statusCode).toBe(404);
    expect(api.json<{ error: string; message: string }>().error).toBe("sso_not_configured");
    expect(api.json<{ message: string }>().message).toContain("No single sign-on is set up for unknown-corp.example");
    const browser = new Browser(t.app);
    const page = await browser.submit("/login/sso", "/login/sso", { domain: "unknown-corp.example" });
    expect(page.statusCode).toBe(404);
    expect(page.body).toContain("No single sign-on is set up for unknown-corp.example");
    const bad = await t.app.inject({ method: "POST", url: "/api/v1/login/sso", payload: { domain: "not a domain" } });
    expect(bad.statusCode).toBe(400);
  });

  it("refuses a person who already signs in to the account with a password", async () => {
    const member = await seedMember(t, { accountId, email: `pw-${newId().slice(0, 6)}@${domain}` });
    const browser = new Browser(t.app);
    const refused = await browser.get(
      await throughProvider(browser, { sub: `sub-${newId()}`, email: member.email, email_verified: true, name: "PW" }),
    );
    expect(refused.statusCode).toBe(409);
    expect(refused.body).toContain("remove this member");
    expect((await browser.get("/api/v1/session")).statusCode).toBe(401);
    const memberships = await t.ctx.db.selectFrom("memberships").select("sign_in_method").where("user_id", "=", member.userId).execute();
    expect(memberships).toEqual([{ sign_in_method: "password" }]);
  });

  it("admins see the connection read-only on the Security page, with the redirect URI", async () => {
    const browser = await signedInBrowser(t, admin);
    const page = await browser.get("/settings/security");
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain("Single sign-on");
    expect(page.body).toContain(idp.issuer);
    expect(page.body).toContain(`${t.config.publicUrl.origin}/sso/callback`);
    expect(page.body).not.toContain(idp.clientSecret);
  });

  it("stores the client secret sealed, never in clear", async () => {
    const row = await t.ctx.db.selectFrom("sso_connections").selectAll().where("account_id", "=", accountId).executeTakeFirstOrThrow();
    expect(row.client_secret_sealed).not.toContain(idp.clientSecret);
    expect(row.client_secret_sealed.startsWith("v1.")).toBe(true);
    const domains = await t.ctx.db
      .selectFrom("sso_domains")
      .select("domain")
      .where("account_id", "=", accountId)
      .orderBy("domain")
      .execute();
    expect(domains.map((d) => d.domain)).toEqual([domain, `sub.${domain}`]);
  });

  it("a domain belongs to one account; disconnecting ends SSO sessions and sign-ins", async () => {
    const other = await seedMember(t, { role: "admin" });
    const taken = await connectSso(t.ctx, {
      accountId: other.accountId,
      issuer: idp.issuer,
      clientId: idp.clientId,
      clientSecret: idp.clientSecret,
      domains: [domain],
    });
    expect(taken.ok ? "ok" : taken.reason).toBe("sso_domain_taken");

    const browser = new Browser(t.app);
    await browser.get(await throughProvider(browser, person()));
    const pending = new Browser(t.app);
    const callback = await throughProvider(pending, person());
    expect((await disconnectSso(t.ctx, { accountId })).ok).toBe(true);
    expect((await browser.get("/api/v1/session")).statusCode).toBe(401);
    expect((await pending.get(callback)).statusCode).toBe(400);
    expect((await t.app.inject({ method: "POST", url: "/api/v1/login/sso", payload: { domain } })).statusCode).toBe(404);
    const reconnected = await connectSso(t.ctx, {
      accountId,
      issuer: idp.issuer,
      clientId: idp.clientId,
      clientSecret: idp.clientSecret,
      domains: [domain, `sub.${domain}`],
    });
    expect(reconnected.ok).toBe(true);
  });
});

/** Runs `latchkey ARGS` from the sources with only the given variables (plus PATH/HOME), as an operator would. */
function latchkey(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ["--import", "tsx", join(process.cwd(), "src/cli.ts"), ...args],
      {
        env: { PATH: process.env["PATH"] ?? "", HOME: process.env["HOME"] ?? "", LOG_LEVEL: "silent", ...env },
        timeout: 45_000,
        cwd: process.cwd(),
      },
      (error, stdout, stderr) => resolve({ code: error ? (typeof error.code === "number" ? error.code : -1) : 0, stdout, stderr }),
    );
  });
}

describe("latchkey sso connect | show | disconnect", () => {
  let idp: TestIdp;
  let dir: string;
  const publicUrl = "http://localhost:3999";
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "latchkey-sso-cli-"));
    idp = await startTestIdp({ redirectUri: `${publicUrl}/sso/callback` });
  });
  afterAll(async () => {
    await idp?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("connects an account's provider, shows it without the secret, and disconnects it, with clear messages", async () => {
    const env = { LATCHKEY_DATA_DIR: dir, LATCHKEY_PUBLIC_URL: publicUrl };
    const help = await latchkey(["sso", "connect", "--help"], env);
    expect(help.code).toBe(0);
    for (const option of ["--account <id>", "--issuer <url>", "--client-id <id>", "--client-secret <secret>", "--domain <domain>"])
      expect(help.stdout).toContain(option);
    expect((await latchkey(["sso", "--help"], env)).stdout).toMatch(/connect[\s\S]*show[\s\S]*disconnect/);

    const created = await latchkey(["account", "create", "--name", "Globex", "--admin-email", "admin@globex.example"], env);
    expect(created.code, created.stderr).toBe(0);
    const accountId = /\(([0-9a-f]{32})\)/.exec(created.stdout)?.[1];
    expect(accountId).toBeTruthy();

    const none = await latchkey(["sso", "show", "--account", accountId!], env);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain("has no single sign-on connection");

    const badIssuer = await latchkey(
      [
        "sso",
        "connect",
        "--account",
        accountId!,
        "--issuer",
        "http://idp.example.com",
        "--client-id",
        "x",
        "--client-secret",
        "y",
        "--domain",
        "globex.example",
      ],
      env,
    );
    expect(badIssuer.code).toBe(1);
    expect(badIssuer.stderr).toContain("https");

    const connect = await latchkey(
      [
        "sso",
        "connect",
        "--account",
        accountId!,
        "--issuer",
        idp.issuer,
        "--client-id",
        idp.clientId,
        "--client-secret",
        idp.clientSecret,
        "--domain",
        "Globex.example",
        "--domain",
        "you@globex-labs.example",
      ],
      env,
    );
    expect(connect.code, connect.stderr).toBe(0);
    expect(connect.stdout).toContain(`Register this redirect URI at the provider (exactly): ${publicUrl}/sso/callback`);
    expect(connect.stdout).toContain("globex-labs.example, globex.example");
    expect(connect.stdout).not.toContain(idp.clientSecret);

    const show = await latchkey(["sso", "show", "--account", accountId!], env);
    expect(show.code).toBe(0);
    expect(show.stdout).toContain(`Issuer        ${idp.issuer}`);
    expect(show.stdout).toContain(`Redirect URI  ${publicUrl}/sso/callback`);
    expect(show.stdout).not.toContain(idp.clientSecret);

    const disconnect = await latchkey(["sso", "disconnect", "--account", accountId!], env);
    expect(disconnect.code).toBe(0);
    expect(disconnect.stdout).toContain("Disconnected single sign-on");
    const again = await latchkey(["sso", "disconnect", "--account", accountId!], env);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("has no single sign-on connection");
  }, 120_000);
});
