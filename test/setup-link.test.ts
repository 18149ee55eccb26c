import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { describeEachDialect } from "./helpers/dialects.js";
import { Browser, csrfFrom, seedMember, signedInBrowser, startTestApp, type TestApp } from "./helpers/app.js";
import { createAccountWithAdmin } from "../src/team/accounts.js";
import { issueSetupLink } from "../src/team/setup.js";
import { hashToken } from "../src/auth/tokens.js";

const ADMIN = { accountName: "Acme Inc.", name: "Ada Lovelace", email: "Ada@Example.com", password: "first admin passphrase" };

describeEachDialect("first-run setup link", (dialect) => {
  let t: TestApp;
  beforeEach(async () => {
    t = await startTestApp(dialect);
  });
  afterEach(async () => {
    await t?.close();
  });

  async function link(): Promise<{ url: string; path: string }> {
    const issued = await issueSetupLink(t.ctx);
    if (!issued) throw new Error("no setup link on an empty database");
    return { url: issued.url, path: new URL(issued.url).pathname };
  }

  async function count(table: "accounts" | "users" | "memberships"): Promise<number> {
    return (await t.ctx.db.selectFrom(table).select("id").execute()).length;
  }

  it("is issued on an empty database as a /setup/ URL on the public URL, stored only as a hash", async () => {
    const issued = await issueSetupLink(t.ctx);
    expect(issued).not.toBeNull();
    expect(issued?.url).toMatch(new RegExp(`^${t.config.publicUrl.origin}/setup/[A-Za-z0-9_-]{43}$`));
    const token = issued?.url.split("/").pop() as string;
    const rows = await t.ctx.db.selectFrom("setup_tokens").selectAll().execute();
    expect(rows).toHaveLength(1);
    expect(rows[0]?.token_hash).toBe(hashToken(token));
    expect(JSON.stringify(rows)).not.toContain(token);
  });

  it("is not issued once any account exists", async () => {
    await seedMember(t);
    expect(await issueSetupLink(t.ctx)).toBeNull();
  });

  it("creates the first account and its admin once; the admin then signs in with the email link", async () => {
    const { path } = await link();
    const browser = new Browser(t.app);
    const page = await browser.get(path);
    expect(page.statusCode).toBe(200);
    for (const label of ["Account name", "Your name", "Email", "Password"]) expect(page.body).toContain(`>${label}</label>`);

    const created = await browser.submit(path, path, ADMIN);
    expect(created.statusCode).toBe(303);
    expect(created.headers.location).toBe("/login?notice=setup_done");
    expect(await count("accounts")).toBe(1);
    expect(await count("users")).toBe(1);
    const membership = await t.ctx.db
      .selectFrom("memberships")
      .innerJoin("users", "users.id", "memberships.user_id")
      .select(["role", "email"])
      .executeTakeFirstOrThrow();
    expect(membership).toEqual({ role: "admin", email: "ada@example.com" });

    // The sign-in page it leads to has the new admin's address filled in (kept in a cookie of this browser, once).
    const login = await browser.get(created.headers.location as string);
    expect(login.body).toContain("Your account is ready. Sign in to continue.");
    expect(login.body).toContain('<input id="f-email" name="email" type="email" value="ada@example.com"');

    const admin = await signedInBrowser(t, { email: "ada@example.com", password: ADMIN.password });
    const session = await admin.get("/api/v1/session");
    expect(session.json()).toMatchObject({
      user: { email: "ada@example.com", name: ADMIN.name },
      account: { name: ADMIN.accountName },
      role: "admin",
    });
  });

  it("a second use of the link shows a 410 page and creates nothing", async () => {
    const { path } = await link();
    const browser = new Browser(t.app);
    expect((await browser.submit(path, path, ADMIN)).statusCode).toBe(303);

    const reopened = await browser.get(path);
    expect(reopened.statusCode).toBe(410);
    expect(reopened.body).toContain("This setup link does not work");

    const csrf = csrfFrom((await browser.get("/login")).body);
    const reused = await browser.request("POST", path, {
      form: { _csrf: csrf, ...ADMIN, accountName: "Evil Corp", email: "mallory@example.com" },
    });
    expect(reused.statusCode).toBe(410);
    expect(await count("accounts")).toBe(1);
    expect(await count("users")).toBe(1);
    expect(await issueSetupLink(t.ctx)).toBeNull();
  });

  it("10 concurrent submissions of one link create exactly one account", async () => {
    const { path } = await link();
    const browser = new Browser(t.app);
    const csrf = csrfFrom((await browser.get(path)).body);
    const cookie = browser.cookieHeader();
    const responses = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        t.app.inject({
          method: "POST",
          url: path,
          headers: { cookie, "content-type": "application/x-www-form-urlencoded" },
          payload: new URLSearchParams({ _csrf: csrf, ...ADMIN, email: `racer${i}@example.com` }).toString(),
        }),
      ),
    );
    expect(responses.filter((r) => r.statusCode === 303)).toHaveLength(1);
    expect(responses.filter((r) => r.statusCode === 410)).toHaveLength(9);
    expect(await count("accounts")).toBe(1);
    expect(await count("users")).toBe(1);
  });

  it("a newer setup link voids older unused ones", async () => {
    const older = await link();
    const newer = await link();
    expect(older.path).not.toBe(newer.path);
    expect((await new Browser(t.app).get(older.path)).statusCode).toBe(410);
    const browser = new Browser(t.app);
    expect((await browser.submit(newer.path, newer.path, ADMIN)).statusCode).toBe(303);
  });

  it("expires after its lifetime", async () => {
    const { path } = await link();
    t.clock.advanceSeconds(t.config.limits.setupLinkTtlSeconds + 1);
    expect((await new Browser(t.app).get(path)).statusCode).toBe(410);
  });

  it.each([
    { field: "accountName", values: { accountName: "  " }, says: "Enter an account name" },
    { field: "name", values: { name: "" }, says: "Enter a name" },
    { field: "email", values: { email: "not-an-email" }, says: "name@example.com" },
    { field: "password", values: { password: "short" }, says: "at least 8 characters" },
    { field: "password", values: { password: "password1" }, says: "most common passwords" },
    { field: "password", values: { password: "p".repeat(129) }, says: "at most 128 characters" },
  ])("a bad $field re-renders the form with 422 and the error next to that field", async ({ field, values, says }) => {
    const { path } = await link();
    const browser = new Browser(t.app);
    const response = await browser.submit(path, path, { ...ADMIN, ...values });
    expect(response.statusCode).toBe(422);
    const error = new RegExp(
      `<input id="f-${field}"[^>]*aria-invalid="true"[^>]*>\\s*(<p class="hint"[^>]*>[^<]*</p>\\s*)?<p class="field-error" id="f-${field}-error">([^<]*)</p>`,
    );
    const match = error.exec(response.body);
    expect(match, `error next to ${field}`).not.toBeNull();
    expect(match?.[2]).toContain(says);
    // What the person typed is kept (never the password), and the link still works.
    if (field !== "accountName") expect(response.body).toContain('value="Acme Inc."');
    expect(response.body).not.toContain(ADMIN.password);
    expect(await count("accounts")).toBe(0);
    expect((await browser.submit(path, path, ADMIN)).statusCode).toBe(303);
  });
});

describe("first-run setup link and an account made another way", () => {
  it("a setup link printed on an empty database is void once an account exists (e.g. made with the CLI)", async () => {
    const fresh = await startTestApp("sqlite");
    try {
      const setup = await issueSetupLink(fresh.ctx);
      expect(setup).not.toBeNull();
      const created = await createAccountWithAdmin(fresh.ctx, { name: "Made by CLI", adminEmail: "ops@example.com" });
      expect(created.ok).toBe(true);
      const browser = new Browser(fresh.app);
      const path = new URL(setup!.url).pathname;
      const page = await browser.get(path);
      expect(page.statusCode).toBe(410);
      const form = await fresh.app.inject({ method: "GET", url: "/login" });
      const cookie = form.cookies.map((c) => `${c.name}=${c.value}`).join("; ");
      const posted = await fresh.app.inject({
        method: "POST",
        url: path,
        headers: { cookie, "content-type": "application/x-www-form-urlencoded" },
        payload: new URLSearchParams({
          _csrf: csrfFrom(form.body),
          accountName: "Hijack",
          name: "X",
          email: "x@example.com",
          password: "a long enough password",
        }).toString(),
      });
      expect(posted.statusCode).toBe(410);
      const accounts = await fresh.ctx.db.selectFrom("accounts").select("name").execute();
      expect(accounts.map((a) => a.name)).toEqual(["Made by CLI"]);
    } finally {
      await fresh.close();
    }
  });
});
