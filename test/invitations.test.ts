import { afterAll, beforeAll, expect, it } from "vitest";
import { describeEachDialect } from "./helpers/dialects.js";
import { Browser, csrfFrom, seedMember, signedInBrowser, startTestApp, type TestApp } from "./helpers/app.js";
import { createAccountWithAdmin } from "../src/team/accounts.js";
import { hashToken, newId } from "../src/auth/tokens.js";

const GOOD_PASSWORD = "a long and unusual passphrase";

describeEachDialect("invitations", (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(dialect);
  });
  afterAll(async () => {
    await t?.close();
  });

  /** A new account whose first admin is invited; returns the invitation link and the invited email. */
  async function invite(
    email = `admin-${newId().slice(0, 8)}@example.com`,
  ): Promise<{ url: string; path: string; token: string; email: string; accountId: string }> {
    const created = await createAccountWithAdmin(t.ctx, { name: `Acme ${newId().slice(0, 4)}`, adminEmail: email });
    if (!created.ok) throw new Error(created.message);
    const url = created.value.invitationUrl;
    const path = new URL(url).pathname;
    return { url, path, token: path.split("/").pop() as string, email, accountId: created.value.accountId };
  }

  /** Opens the invitation in a fresh browser and submits the form. */
  async function accept(path: string, form: { name?: string; password: string }, browser = new Browser(t.app)) {
    return browser.submit(path, path, { name: form.name ?? "Ada Lovelace", password: form.password });
  }

  async function canSignIn(email: string, password: string): Promise<number> {
    const response = await new Browser(t.app).signInWithPassword(email, password);
    return response.statusCode;
  }

  it("the invitation link opens a form with the labels Name and Password, built on the public URL", async () => {
    const { url, path, email } = await invite();
    expect(url.startsWith(`${t.config.publicUrl.origin}/invite/`)).toBe(true);
    const page = await new Browser(t.app).get(path);
    expect(page.statusCode).toBe(200);
    expect(page.headers["content-type"]).toContain("text/html");
    expect(page.body).toMatch(/<label for="f-name">Name<\/label>/);
    expect(page.body).toMatch(/<label for="f-password">Password<\/label>/);
    expect(page.body).toContain(email);
    expect(page.headers["cache-control"]).toBe("no-store");
  });

  it("accepting with a name and password creates the user and an admin membership, then the person signs in with the email link", async () => {
    const { path, email, accountId } = await invite();
    const accepted = await accept(path, { name: "Grace Hopper", password: GOOD_PASSWORD });
    expect(accepted.statusCode).toBe(303);
    expect(accepted.headers.location).toBe("/login?notice=password_set");

    const user = await t.ctx.db.selectFrom("users").selectAll().where("email", "=", email).executeTakeFirstOrThrow();
    expect(user.name).toBe("Grace Hopper");
    expect(user.password_hash).toMatch(/^\$argon2id\$/);
    const memberships = await t.ctx.db.selectFrom("memberships").selectAll().where("user_id", "=", user.id).execute();
    expect(memberships).toHaveLength(1);
    expect(memberships[0]).toMatchObject({ account_id: accountId, role: "admin", sign_in_method: "password" });

    const browser = await signedInBrowser(t, { email, password: GOOD_PASSWORD });
    const session = await browser.get("/api/v1/session");
    expect(session.statusCode).toBe(200);
    expect(session.json()).toMatchObject({
      user: { email, name: "Grace Hopper" },
      account: { id: accountId },
      role: "admin",
      twoFactor: { method: "email_link" },
    });

    const events = await t.ctx.db.selectFrom("audit_events").select("type").where("user_id", "=", user.id).execute();
    expect(events.map((e) => e.type)).toContain("invitation.accepted");
  });

  /** The value of the Email field on a sign-in page, or undefined when it is empty. */
  const emailField = (body: string): string | undefined =>
    /<input id="f-email" name="email" type="email" value="([^"]*)"/.exec(body)?.[1] || undefined;

  it("the sign-in page it leads to has the address filled in, carried in a signed cookie (not the URL), once", async () => {
    const { path, email } = await invite();
    const browser = new Browser(t.app);
    const accepted = await accept(path, { name: "Grace Hopper", password: GOOD_PASSWORD }, browser);
    expect(accepted.statusCode).toBe(303);
    // Nothing of the address in the URL (logs, history, Referer): it rides in a cookie of this browser.
    expect(accepted.headers.location).toBe("/login?notice=password_set");
    const hint = accepted.cookies.find((c) => c.name === "latchkey_login_hint");
    expect(hint).toMatchObject({ httpOnly: true, sameSite: "Lax", path: "/", maxAge: t.config.limits.loginHintTtlSeconds });
    expect(hint?.value).not.toContain("@");

    const login = await browser.get(accepted.headers.location as string);
    expect(login.statusCode).toBe(200);
    expect(login.body).toContain("Your password is set. Sign in to continue.");
    expect(emailField(login.body)).toBe(email);
    // The password is what is left to type: the focus is there.
    expect(login.body).toMatch(/<input id="f-password" name="password" type="password"[^>]* autofocus/);
    // Used once: the cookie is cleared, and the next visit starts empty.
    expect(browser.cookies.has("latchkey_login_hint")).toBe(false);
    expect(emailField((await browser.get("/login")).body)).toBeUndefined();
    // And the address filled in is the one that signs in.
    expect(await canSignIn(email, GOOD_PASSWORD)).toBe(303);
  });

  it("a kept address that was altered, or is older than its lifetime, is not filled in", async () => {
    const { path, email } = await invite();
    const browser = new Browser(t.app);
    await accept(path, { name: "Grace Hopper", password: GOOD_PASSWORD }, browser);
    const value = browser.cookies.get("latchkey_login_hint")!;
    const [expires, encoded, mac] = value.split(".");

    const forged = new Browser(t.app);
    const other = Buffer.from("mallory@example.com", "utf8").toString("base64url");
    forged.cookies.set("latchkey_login_hint", `${expires}.${other}.${mac}`);
    const refused = await forged.get("/login");
    expect(refused.statusCode).toBe(200);
    expect(emailField(refused.body)).toBeUndefined();
    expect(refused.body).not.toContain("mallory@example.com");

    t.clock.advanceSeconds(t.config.limits.loginHintTtlSeconds + 1);
    const late = new Browser(t.app);
    late.cookies.set("latchkey_login_hint", `${expires}.${encoded}.${mac}`);
    expect(emailField((await late.get("/login")).body)).toBeUndefined();
    expect(email).toContain("@");
  });

  it("a password of 7 code points is refused with 422 and says at least 8; nothing is created", async () => {
    const { path, email } = await invite();
    const response = await accept(path, { password: "abcdefg" });
    expect(response.statusCode).toBe(422);
    expect(response.body).toContain("at least 8 characters");
    expect(response.body).toContain('id="f-password-error"');
    expect(await t.ctx.db.selectFrom("users").select("id").where("email", "=", email).execute()).toHaveLength(0);
    // The invitation was not spent: the form still opens.
    expect((await new Browser(t.app).get(path)).statusCode).toBe(200);
  });

  it("a password of exactly 8 code points is accepted", async () => {
    const { path, email } = await invite();
    expect((await accept(path, { password: "zq8#Lw!v" })).statusCode).toBe(303);
    expect(await canSignIn(email, "zq8#Lw!v")).toBe(303);
  });

  it("a password of 128 code points is accepted and only the exact password signs in (no truncation)", async () => {
    const { path, email } = await invite();
    const password = "x7-".repeat(42) + "ab"; // 128
    expect([...password]).toHaveLength(128);
    expect((await accept(path, { password })).statusCode).toBe(303);
    expect(await canSignIn(email, password.slice(0, 127))).toBe(401);
    expect(await canSignIn(email, password.slice(0, 72))).toBe(401);
    expect(await canSignIn(email, password.slice(0, 127) + "c")).toBe(401);
    expect(await canSignIn(email, password)).toBe(303);
  });

  it("a password of 129 code points is refused with 422 and says at most 128", async () => {
    const { path } = await invite();
    const response = await accept(path, { password: "y".repeat(129) });
    expect(response.statusCode).toBe(422);
    expect(response.body).toContain("at most 128 characters");
  });

  it.each(["password1", "qwertyuiop", "Password1"])("a top-10,000 common password (%s) is refused with the reason", async (password) => {
    const { path } = await invite();
    const response = await accept(path, { password });
    expect(response.statusCode).toBe(422);
    expect(response.body).toContain("most common passwords");
  });

  it("unicode and emoji passwords work, counted in code points, and sign in again in either normal form", async () => {
    const { path, email } = await invite();
    // 7 emoji are 14 UTF-16 units but 7 code points: too short.
    const short = await accept(path, { password: "🔐🔑🗝️🚪🏠🌍🙂".replace("\uFE0F", "") });
    expect(short.statusCode).toBe(422);
    expect(short.body).toContain("at least 8 characters");

    const password = "Ключ 密码 café 🔐🔑";
    const ok = await accept(path, { name: "Zoë 山田", password });
    expect(ok.statusCode).toBe(303);
    const user = await t.ctx.db.selectFrom("users").select("name").where("email", "=", email).executeTakeFirstOrThrow();
    expect(user.name).toBe("Zoë 山田");
    expect(await canSignIn(email, password)).toBe(303);
    // "é" typed as e + combining acute (NFD) is the same password.
    expect(await canSignIn(email, password.normalize("NFD"))).toBe(303);
    expect(await canSignIn(email, password.replace("🔑", ""))).toBe(401);
  });

  it("an invitation works once: a second acceptance shows a 410 page and changes nothing", async () => {
    const { path, email } = await invite();
    expect((await accept(path, { password: GOOD_PASSWORD })).statusCode).toBe(303);
    const before = await t.ctx.db.selectFrom("users").select(["id", "password_hash"]).where("email", "=", email).executeTakeFirstOrThrow();

    const page = await new Browser(t.app).get(path);
    expect(page.statusCode).toBe(410);
    expect(page.body).toContain("already accepted");

    // Posting anyway (with a valid CSRF token from another page) is refused the same way and sets no new password.
    const browser = new Browser(t.app);
    const csrf = csrfFrom((await browser.get("/login")).body);
    const again = await browser.request("POST", path, { form: { _csrf: csrf, name: "Mallory", password: "another long passphrase" } });
    expect(again.statusCode).toBe(410);
    const after = await t.ctx.db
      .selectFrom("users")
      .select(["id", "password_hash", "name"])
      .where("email", "=", email)
      .executeTakeFirstOrThrow();
    expect(after.password_hash).toBe(before.password_hash);
    expect(after.name).not.toBe("Mallory");
  });

  it("20 concurrent acceptances of one invitation give exactly one user and one membership", async () => {
    const { path, email, accountId } = await invite();
    const browser = new Browser(t.app);
    const csrf = csrfFrom((await browser.get(path)).body);
    const cookie = browser.cookieHeader();
    const responses = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        t.app.inject({
          method: "POST",
          url: path,
          headers: { cookie, "content-type": "application/x-www-form-urlencoded" },
          payload: new URLSearchParams({ _csrf: csrf, name: `Racer ${i}`, password: `racing passphrase number ${i}` }).toString(),
        }),
      ),
    );
    expect(responses.filter((r) => r.statusCode === 303)).toHaveLength(1);
    expect(responses.filter((r) => r.statusCode === 410)).toHaveLength(19);
    const users = await t.ctx.db.selectFrom("users").select("id").where("email", "=", email).execute();
    expect(users).toHaveLength(1);
    const memberships = await t.ctx.db.selectFrom("memberships").select("id").where("account_id", "=", accountId).execute();
    expect(memberships).toHaveLength(1);
  });

  it("an invitation expires after 7 days (410), and works until then", async () => {
    const early = await invite();
    const late = await invite();
    t.clock.advanceSeconds(7 * 24 * 3600 - 60);
    expect((await new Browser(t.app).get(early.path)).statusCode).toBe(200);
    expect((await accept(early.path, { password: GOOD_PASSWORD })).statusCode).toBe(303);

    t.clock.advanceSeconds(61);
    const page = await new Browser(t.app).get(late.path);
    expect(page.statusCode).toBe(410);
    expect(page.body).toContain("expired");
    const browser = new Browser(t.app);
    const csrf = csrfFrom((await browser.get("/login")).body);
    const post = await browser.request("POST", late.path, { form: { _csrf: csrf, name: "Late", password: GOOD_PASSWORD } });
    expect(post.statusCode).toBe(410);
    expect(await t.ctx.db.selectFrom("users").select("id").where("email", "=", late.email).execute()).toHaveLength(0);
  });

  it("an unknown or malformed invitation token shows a 404 page", async () => {
    expect((await new Browser(t.app).get(`/invite/${"A".repeat(43)}`)).statusCode).toBe(404);
    expect((await new Browser(t.app).get("/invite/short")).statusCode).toBe(404);
  });

  it("the invitation token is stored only as its hash", async () => {
    const { token, accountId } = await invite();
    const rows = await t.ctx.db.selectFrom("invitations").selectAll().where("account_id", "=", accountId).execute();
    expect(rows).toHaveLength(1);
    expect(rows[0]?.token_hash).toBe(hashToken(token));
    expect(JSON.stringify(rows)).not.toContain(token);
  });

  it("a bad name re-renders the form with the error next to the Name field and keeps the invitation open", async () => {
    const { path } = await invite();
    const response = await accept(path, { name: "   ", password: GOOD_PASSWORD });
    expect(response.statusCode).toBe(422);
    expect(response.body).toContain('id="f-name-error"');
    expect((await new Browser(t.app).get(path)).statusCode).toBe(200);
  });

  it("an existing user invited to a second account joins by entering their current password", async () => {
    const member = await seedMember(t, { password: "my current long password" });
    const second = await invite(member.email);
    const browser = new Browser(t.app);
    const page = await browser.get(second.path);
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain("You already have a login");
    expect(page.body).toMatch(/<label for="f-password">Password<\/label>/);
    expect(page.body).not.toContain('<label for="f-name">');

    const wrong = await browser.submit(second.path, second.path, { password: "not my password at all" });
    expect(wrong.statusCode).toBe(401);
    expect(wrong.body).toContain('id="f-password-error"');
    expect(await t.ctx.db.selectFrom("memberships").select("id").where("user_id", "=", member.userId).execute()).toHaveLength(1);

    const joined = await browser.submit(second.path, second.path, { password: member.password });
    expect(joined.statusCode).toBe(303);
    expect(joined.headers.location).toBe("/login?notice=joined");
    const memberships = await t.ctx.db
      .selectFrom("memberships")
      .select(["account_id", "role"])
      .where("user_id", "=", member.userId)
      .execute();
    expect(memberships.map((m) => m.account_id).sort()).toEqual([member.accountId, second.accountId].sort());
    expect(memberships.find((m) => m.account_id === second.accountId)?.role).toBe("admin");
    expect(await t.ctx.db.selectFrom("users").select("id").where("email", "=", member.email).execute()).toHaveLength(1);
    // Their password did not change.
    expect(await canSignIn(member.email, member.password)).toBe(303);
  });

  it("joining with a current password shares the sign-in form's budget: 10 wrong tries, then 429 even for the right one", async () => {
    const member = await seedMember(t);
    const second = await invite(member.email);
    const browser = new Browser(t.app);
    for (let i = 0; i < 10; i++)
      expect((await browser.submit(second.path, second.path, { password: `wrong password ${i}` })).statusCode).toBe(401);
    const paused = await browser.submit(second.path, second.path, { password: member.password });
    expect(paused.statusCode).toBe(429);
    expect(await t.ctx.db.selectFrom("memberships").select("id").where("user_id", "=", member.userId).execute()).toHaveLength(1);
    t.clock.advanceSeconds(15 * 60);
    expect((await browser.submit(second.path, second.path, { password: member.password })).statusCode).toBe(303);
  });
});
