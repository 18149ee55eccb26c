import { afterAll, beforeAll, expect, it } from "vitest";
import { describeEachDialect } from "./helpers/dialects.js";
import { Browser, csrfFrom, seedMember, signedInBrowser, startTestApp, type TestApp } from "./helpers/app.js";
import { newId } from "../src/auth/tokens.js";

const NEW_PASSWORD = "a long and unusual passphrase";
const PARALLEL = 20;

describeEachDialect("team races", (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(dialect);
  });
  afterAll(async () => {
    await t?.close();
  });

  async function admins(accountId: string): Promise<string[]> {
    const rows = await t.ctx.db
      .selectFrom("memberships")
      .select("user_id")
      .where("account_id", "=", accountId)
      .where("role", "=", "admin")
      .execute();
    return rows.map((r) => r.user_id);
  }

  /** 20 browsers that each opened the invitation page (and so hold a CSRF token for its form). */
  async function openedBy(path: string): Promise<Array<{ browser: Browser; csrf: string }>> {
    return Promise.all(
      Array.from({ length: PARALLEL }, async () => {
        const browser = new Browser(t.app);
        const page = await browser.get(path);
        expect(page.statusCode).toBe(200);
        return { browser, csrf: csrfFrom(page.body) };
      }),
    );
  }

  it(`an invitation accepted by ${PARALLEL} browsers at once makes exactly one user and one membership`, async () => {
    const admin = await seedMember(t, { role: "admin" });
    const adminBrowser = await signedInBrowser(t, admin);
    const email = `racer-${newId().slice(0, 6)}@example.com`;
    expect((await adminBrowser.request("POST", "/api/v1/team/invitations", { json: { email, role: "admin" } })).statusCode).toBe(201);
    const path = new URL(t.mail.lastLink(email)).pathname;
    const browsers = await openedBy(path);

    const responses = await Promise.all(
      browsers.map(({ browser, csrf }, i) =>
        browser.request("POST", path, { form: { _csrf: csrf, name: `Racer ${i}`, password: `${NEW_PASSWORD} ${i}` } }),
      ),
    );
    const statuses = responses.map((r) => r.statusCode);
    expect(statuses.filter((s) => s === 303)).toHaveLength(1);
    expect(statuses.filter((s) => s !== 303).every((s) => s === 410 || s === 404)).toBe(true);

    const users = await t.ctx.db.selectFrom("users").select(["id", "name"]).where("email", "=", email).execute();
    expect(users).toHaveLength(1);
    const memberships = await t.ctx.db.selectFrom("memberships").select(["role"]).where("user_id", "=", users[0]!.id).execute();
    expect(memberships).toEqual([{ role: "admin" }]);
    const accepted = await t.ctx.db
      .selectFrom("audit_events")
      .select("id")
      .where("type", "=", "invitation.accepted")
      .where("user_id", "=", users[0]!.id)
      .execute();
    expect(accepted).toHaveLength(1);
    // The one who won signs in with the password they chose; nobody else's password works.
    const winner = Number(/Racer (\d+)/.exec(users[0]!.name)?.[1]);
    expect(responses[winner]?.statusCode).toBe(303);
    const loser = (winner + 1) % PARALLEL;
    expect(
      (await new Browser(t.app).request("POST", "/api/v1/login", { json: { email, password: `${NEW_PASSWORD} ${loser}` } })).statusCode,
    ).toBe(401);
    expect(
      (await new Browser(t.app).request("POST", "/api/v1/login", { json: { email, password: `${NEW_PASSWORD} ${winner}` } })).statusCode,
    ).toBe(200);
  });

  it(`an invitation for an existing login accepted ${PARALLEL} times at once joins once`, async () => {
    const admin = await seedMember(t, { role: "admin" });
    const elsewhere = await seedMember(t);
    const adminBrowser = await signedInBrowser(t, admin);
    expect(
      (await adminBrowser.request("POST", "/api/v1/team/invitations", { json: { email: elsewhere.email, role: "member" } })).statusCode,
    ).toBe(201);
    const path = new URL(t.mail.lastLink(elsewhere.email)).pathname;
    const browsers = await openedBy(path);
    const responses = await Promise.all(
      browsers.map(({ browser, csrf }) => browser.request("POST", path, { form: { _csrf: csrf, password: elsewhere.password } })),
    );
    expect(responses.filter((r) => r.statusCode === 303)).toHaveLength(1);
    expect(responses.every((r) => r.statusCode < 500)).toBe(true);
    const memberships = await t.ctx.db
      .selectFrom("memberships")
      .select("id")
      .where("user_id", "=", elsewhere.userId)
      .where("account_id", "=", admin.accountId)
      .execute();
    expect(memberships).toHaveLength(1);
  });

  it("two admins demoting each other at once: at least one admin remains (10 rounds)", async () => {
    for (let round = 0; round < 10; round++) {
      const a = await seedMember(t, { role: "admin" });
      const b = await seedMember(t, { accountId: a.accountId, role: "admin" });
      await seedMember(t, { accountId: a.accountId });
      const [ba, bb] = await Promise.all([signedInBrowser(t, a), signedInBrowser(t, b)]);
      const [ra, rb] = await Promise.all([
        ba.request("PATCH", `/api/v1/team/members/${b.userId}`, { json: { role: "member" } }),
        bb.request("PATCH", `/api/v1/team/members/${a.userId}`, { json: { role: "member" } }),
      ]);
      const statuses = [ra.statusCode, rb.statusCode].sort();
      expect(
        statuses.every((s) => s === 200 || s === 403 || s === 409),
        String(statuses),
      ).toBe(true);
      expect(statuses.filter((s) => s === 200)).toHaveLength(1);
      expect(await admins(a.accountId)).toHaveLength(1);
    }
  });

  it("two admins removing each other, or demoting themselves, at once: at least one admin remains", async () => {
    for (let round = 0; round < 6; round++) {
      const a = await seedMember(t, { role: "admin" });
      const b = await seedMember(t, { accountId: a.accountId, role: "admin" });
      const [ba, bb] = await Promise.all([signedInBrowser(t, a), signedInBrowser(t, b)]);
      const requests =
        round % 2 === 0
          ? [ba.request("DELETE", `/api/v1/team/members/${b.userId}`), bb.request("DELETE", `/api/v1/team/members/${a.userId}`)]
          : [
              ba.request("PATCH", `/api/v1/team/members/${a.userId}`, { json: { role: "member" } }),
              bb.request("DELETE", `/api/v1/team/members/${b.userId}`),
            ];
      const responses = await Promise.all(requests);
      expect(responses.every((r) => r.statusCode < 500)).toBe(true);
      expect(responses.filter((r) => r.statusCode === 200)).toHaveLength(1);
      expect(await admins(a.accountId)).toHaveLength(1);
    }
  });

  it("three admins each demoting the next at once: at least one admin remains", async () => {
    for (let round = 0; round < 5; round++) {
      const first = await seedMember(t, { role: "admin" });
      const trio = [
        first,
        await seedMember(t, { accountId: first.accountId, role: "admin" }),
        await seedMember(t, { accountId: first.accountId, role: "admin" }),
      ];
      const browsers = await Promise.all(trio.map((m) => signedInBrowser(t, m)));
      const responses = await Promise.all(
        browsers.map((b, i) => b.request("PATCH", `/api/v1/team/members/${trio[(i + 1) % 3]!.userId}`, { json: { role: "member" } })),
      );
      expect(responses.every((r) => r.statusCode < 500)).toBe(true);
      const left = await admins(first.accountId);
      expect(left.length).toBeGreaterThanOrEqual(1);
      expect(responses.filter((r) => r.statusCode === 200)).toHaveLength(3 - left.length);
    }
  });
});

describeEachDialect("parallel resends", (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(dialect);
  });
  afterAll(async () => {
    await t?.close();
  });

  it("10 parallel resends of one invitation leave exactly one open invitation", async () => {
    const admin = await seedMember(t, { role: "admin" });
    const browser = await signedInBrowser(t, admin);
    const created = await browser.request("POST", "/api/v1/team/invitations", { json: { email: "parallel@example.com", role: "member" } });
    expect(created.statusCode).toBe(201);
    const id = created.json().id as string;
    const cookie = browser.cookieHeader();
    await Promise.all(
      Array.from({ length: 10 }, () => t.app.inject({ method: "POST", url: `/api/v1/team/invitations/${id}/resend`, headers: { cookie } })),
    );
    const open = await t.ctx.db
      .selectFrom("invitations")
      .select("id")
      .where("account_id", "=", admin.accountId)
      .where("email", "=", "parallel@example.com")
      .where("accepted_at", "is", null)
      .where("revoked_at", "is", null)
      .execute();
    expect(open).toHaveLength(1);
  });
});
