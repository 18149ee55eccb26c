import { afterAll, beforeAll, expect, it } from "vitest";
import type { LightMyRequestResponse } from "fastify";
import { describeEachDialect } from "./helpers/dialects.js";
import { addMembership, Browser, csrfFrom, rowCounts, seedMember, signedInBrowser, startTestApp, type TestApp } from "./helpers/app.js";
import { defaultLimits } from "../src/config.js";
import { newId } from "../src/auth/tokens.js";
import type { Database } from "../src/db/schema.js";

const TABLES: ReadonlyArray<keyof Database> = ["users", "email_changes", "sessions", "audit_events", "support_requests"];

describeEachDialect("changing the email address", (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(dialect);
  });
  afterAll(async () => {
    await t?.close();
  });

  let n = 0;
  const fresh = (): string => `new-${++n}-${newId().slice(0, 6)}@example.org`;

  async function ask(browser: Browser, form: Record<string, string>): Promise<LightMyRequestResponse> {
    const page = await browser.get("/settings/email");
    return browser.request("POST", "/settings/email", { form: { _csrf: csrfFrom(page.body), ...form } });
  }

  /** Opens a link's page and presses its button, as a person does. */
  async function press(browser: Browser, link: string): Promise<LightMyRequestResponse> {
    const page = await browser.get(link);
    if (page.statusCode !== 200) return page;
    return browser.request("POST", link, { form: { _csrf: csrfFrom(page.body) } });
  }

  const emailOf = async (userId: string): Promise<string> =>
    (await t.ctx.db.selectFrom("users").select("email").where("id", "=", userId).executeTakeFirstOrThrow()).email;

  async function eventsOf(userId: string, type: string): Promise<Array<{ account_id: string | null; detail: Record<string, unknown> }>> {
    const rows = await t.ctx.db
      .selectFrom("audit_events")
      .select(["account_id", "detail"])
      .where("user_id", "=", userId)
      .where("type", "=", type)
      .execute();
    return rows.map((r) => ({ account_id: r.account_id, detail: JSON.parse(r.detail) as Record<string, unknown> }));
  }

  it("end to end: a link to the new address, a notice to the old, the switch, other sessions ended, audit in each account", async () => {
    const member = await seedMember(t, { accountName: "First", role: "admin" });
    const second = await seedMember(t, { accountName: "Second", role: "admin" });
    await addMembership(t, { userId: member.userId, accountId: second.accountId });
    const here = await signedInBrowser(t, member);
    const elsewhere = await signedInBrowser(t, member);
    const target = fresh();

    const form = await here.get("/settings/email");
    expect(form.statusCode).toBe(200);
    expect(form.body).toContain("New email address");
    // Just signed in: the proof is fresh, no password asked.
    expect(form.body).not.toContain('name="password"');
    const asked = await ask(here, { email: `  ${target.toUpperCase()} ` });
    expect(asked.statusCode).toBe(303);
    expect(asked.headers.location).toBe("/settings/email?notice=sent");
    const pendingPage = await here.get("/settings/email?notice=sent");
    expect(pendingPage.body).toContain(`Check the inbox of <strong>${target}</strong>`);

    // Nothing changed yet.
    expect(await emailOf(member.userId)).toBe(member.email);
    const confirmMail = t.mail.last(target)!;
    expect(confirmMail.subject).toContain("Confirm your new");
    expect(confirmMail.text).not.toContain(member.email);
    const link = t.mail.lastLink(target);
    expect(link).toMatch(/^http:\/\/localhost:3000\/settings\/email\/confirm\/[A-Za-z0-9_-]{43}$/);
    const notice = t.mail.last(member.email)!;
    expect(notice.subject).toContain("about to change");
    expect(notice.text).toContain(target);
    expect(notice.text).toContain("Stop this change");
    expect(notice.text).toMatch(/\/settings\/email\/cancel\/[A-Za-z0-9_-]{43}/);
    expect(notice.text).toContain("/support");
    // Only hashes are stored.
    const row = await t.ctx.db.selectFrom("email_changes").selectAll().where("user_id", "=", member.userId).executeTakeFirstOrThrow();
    expect(link).not.toContain(row.token_hash);
    expect(row.new_email).toBe(target);
    expect(row.expires_at - row.created_at).toBe(defaultLimits.emailChangeTtlSeconds * 1000);
    expect(await eventsOf(member.userId, "email.change_requested")).toHaveLength(2);

    const page = await here.get(link);
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain("Confirm your new email address");
    expect(page.body).toContain(target);
    const confirmed = await here.request("POST", link, { form: { _csrf: csrfFrom(page.body) } });
    expect(confirmed.statusCode).toBe(200);
    expect(confirmed.body).toContain(`Your email address is now ${target}`);

    expect(await emailOf(member.userId)).toBe(target);
    // The confirming browser is the person's own: it stays signed in, with the new address; the other one is out.
    const session = await here.get("/api/v1/session");
    expect(session.statusCode).toBe(200);
    expect((session.json() as { user: { email: string } }).user.email).toBe(target);
    expect((await elsewhere.get("/api/v1/session")).statusCode).toBe(401);
    expect(t.mail.last(member.email)!.subject).toContain("your email address was changed");
    expect(t.mail.last(member.email)!.text).toContain("tell your Account Admin");
    expect(t.mail.last(target)!.subject).toContain("your email address was changed");
    const changed = await eventsOf(member.userId, "email.changed");
    expect(changed.map((e) => e.account_id).sort()).toEqual([member.accountId, second.accountId].sort());
    expect(changed[0]!.detail).toMatchObject({ from: member.email, to: target, sessionsEnded: 1 });

    // Admins see it: the Team Members page of each account, and their audit log.
    const admin = await signedInBrowser(t, second);
    const team = await admin.get("/settings/team");
    expect(team.body).toContain(target);
    expect(team.body).toContain("changed ");
    expect(team.body).not.toContain(member.email);
    const audit = await admin.get("/settings/audit");
    expect(audit.body).toContain("email.changed");

    // Sign-in works with the new address only.
    const old = await new Browser(t.app).request("POST", "/api/v1/login", { json: { email: member.email, password: member.password } });
    expect(old.statusCode).toBe(401);
    const now = await new Browser(t.app).request("POST", "/api/v1/login", { json: { email: target, password: member.password } });
    expect(now.statusCode).toBe(200);

    // The link worked once.
    const again = await here.get(link);
    expect(again.statusCode).toBe(410);
    expect(again.body).toContain("already confirmed");
  });

  it("confirmed in a browser that is not the person's, every session of the person ends and that browser's own stays", async () => {
    const member = await seedMember(t);
    const here = await signedInBrowser(t, member);
    const someoneElse = await signedInBrowser(t, await seedMember(t));
    const target = fresh();
    expect((await ask(here, { email: target })).statusCode).toBe(303);
    const confirmed = await press(someoneElse, t.mail.lastLink(target));
    expect(confirmed.statusCode).toBe(200);
    expect(confirmed.body).toContain("sign in with the new address");
    expect(await emailOf(member.userId)).toBe(target);
    expect((await here.get("/api/v1/session")).statusCode).toBe(401);
    expect((await someoneElse.get("/api/v1/session")).statusCode).toBe(200);
    // And from a browser with no session at all.
    const again = await seedMember(t);
    const mine = await signedInBrowser(t, again);
    const target2 = fresh();
    expect((await ask(mine, { email: target2 })).statusCode).toBe(303);
    expect((await press(new Browser(t.app), t.mail.lastLink(target2))).statusCode).toBe(200);
    expect((await mine.get("/api/v1/session")).statusCode).toBe(401);
  });

  it("ends sign-ins in progress: a link emailed to the old address no longer signs in", async () => {
    const member = await seedMember(t);
    const here = await signedInBrowser(t, member);
    const target = fresh();
    expect((await ask(here, { email: target })).statusCode).toBe(303);
    const halfway = new Browser(t.app);
    await halfway.signInWithPassword(member.email, member.password);
    const signInLink = t.mail.lastLink(member.email);
    expect((await press(here, t.mail.lastLink(target))).statusCode).toBe(200);
    expect((await halfway.get(signInLink)).statusCode).toBe(401);
    expect((await halfway.get("/api/v1/session")).statusCode).toBe(401);
  });

  it("asks for the password when the proof is stale, and counts wrong ones", async () => {
    const member = await seedMember(t);
    const here = await signedInBrowser(t, member);
    t.clock.advanceSeconds(defaultLimits.freshProofSeconds + 60);
    const form = await here.get("/settings/email");
    expect(form.body).toContain('name="password"');
    const before = await rowCounts(t, TABLES);
    const target = fresh();
    const stale = await ask(here, { email: target });
    expect(stale.statusCode).toBe(403);
    expect(stale.body).toContain("Enter your password");
    const wrong = await ask(here, { email: target, password: "not the password" });
    expect(wrong.statusCode).toBe(401);
    const api = await here.request("POST", "/api/v1/email-change", { json: { email: target } });
    expect(api.statusCode).toBe(403);
    expect(api.json()).toMatchObject({ error: "fresh_proof_required" });
    const after = await rowCounts(t, TABLES);
    // The wrong password is in the log (session.reauthentication_failed); nothing else changed, nothing was sent.
    expect({ ...after, audit_events: before["audit_events"] }).toEqual(before);
    expect(t.mail.last(target)).toBeUndefined();
    const right = await ask(here, { email: target, password: member.password });
    expect(right.statusCode).toBe(303);
    expect(t.mail.last(target)).toBeDefined();
  });

  it("refuses an address in use at request time (page and API), changing nothing", async () => {
    const member = await seedMember(t);
    const other = await seedMember(t);
    const here = await signedInBrowser(t, member);
    const before = await rowCounts(t, TABLES);
    const page = await ask(here, { email: other.email.toUpperCase() });
    expect(page.statusCode).toBe(409);
    expect(page.body).toContain("already used by another login");
    const api = await here.request("POST", "/api/v1/email-change", { json: { email: other.email } });
    expect(api.statusCode).toBe(409);
    expect(api.json()).toMatchObject({ error: "email_in_use" });
    expect(await rowCounts(t, TABLES)).toEqual(before);
  });

  it("refuses an address taken between the request and the confirmation, changing nothing", async () => {
    const member = await seedMember(t);
    const here = await signedInBrowser(t, member);
    const elsewhere = await signedInBrowser(t, member);
    const target = fresh();
    expect((await ask(here, { email: target })).statusCode).toBe(303);
    const link = t.mail.lastLink(target);
    await seedMember(t, { email: target });
    const before = await rowCounts(t, TABLES);
    const refused = await press(here, link);
    expect(refused.statusCode).toBe(409);
    expect(refused.body).toContain("used by another login");
    expect(await rowCounts(t, TABLES)).toEqual(before);
    expect(await emailOf(member.userId)).toBe(member.email);
    expect((await elsewhere.get("/api/v1/session")).statusCode).toBe(200);
    const row = await t.ctx.db.selectFrom("email_changes").select("confirmed_at").where("new_email", "=", target).executeTakeFirstOrThrow();
    expect(row.confirmed_at).toBeNull();
  });

  it("of two logins confirming the same new address at once, exactly one wins", async () => {
    for (let round = 0; round < 3; round++) {
      const a = await seedMember(t);
      const b = await seedMember(t);
      const target = fresh();
      const links: string[] = [];
      for (const member of [a, b]) {
        const browser = await signedInBrowser(t, member);
        const response = await browser.request("POST", "/api/v1/email-change", { json: { email: target } });
        expect(response.statusCode, response.body).toBe(200);
        links.push(t.mail.lastLink(target));
      }
      const pages = await Promise.all(links.map(async (link) => ({ link, browser: new Browser(t.app), csrf: "" })));
      for (const p of pages) p.csrf = csrfFrom((await p.browser.get(p.link)).body);
      const results = await Promise.all(pages.map((p) => p.browser.request("POST", p.link, { form: { _csrf: p.csrf } })));
      expect(results.map((r) => r.statusCode).sort()).toEqual([200, 409]);
      const owners = await t.ctx.db.selectFrom("users").select("id").where("email", "=", target).execute();
      expect(owners).toHaveLength(1);
      const loser = owners[0]!.id === a.userId ? b : a;
      expect(await emailOf(loser.userId)).toBe(loser.email);
    }
  });

  it("of parallel confirmations of one link, exactly one changes anything", async () => {
    const member = await seedMember(t);
    const here = await signedInBrowser(t, member);
    const target = fresh();
    expect((await ask(here, { email: target })).statusCode).toBe(303);
    const link = t.mail.lastLink(target);
    const browsers = [new Browser(t.app), new Browser(t.app), new Browser(t.app), new Browser(t.app)];
    const csrfs = await Promise.all(browsers.map(async (b) => csrfFrom((await b.get(link)).body)));
    const results = await Promise.all(browsers.map((b, i) => b.request("POST", link, { form: { _csrf: csrfs[i]! } })));
    expect(results.filter((r) => r.statusCode === 200)).toHaveLength(1);
    for (const r of results) if (r.statusCode !== 200) expect(r.statusCode).toBe(410);
    expect(await eventsOf(member.userId, "email.changed")).toHaveLength(1);
  });

  it("refuses expired, replaced, withdrawn and made-up links, and shows each why", async () => {
    const member = await seedMember(t);
    const here = await signedInBrowser(t, member);
    const first = fresh();
    expect((await ask(here, { email: first })).statusCode).toBe(303);
    const firstLink = t.mail.lastLink(first);
    const firstCancel = /https?:\/\/\S+\/settings\/email\/cancel\/\S+/.exec(t.mail.last(member.email)!.text)![0];
    // A newer request voids the older link, and its cancel link.
    const second = fresh();
    expect((await ask(here, { email: second })).statusCode).toBe(303);
    const replaced = await here.get(firstLink);
    expect(replaced.statusCode).toBe(400);
    expect(replaced.body).toContain("A newer change of email address");
    expect((await press(new Browser(t.app), firstCancel)).statusCode).toBe(400);
    // Expired.
    t.clock.advanceSeconds(defaultLimits.emailChangeTtlSeconds + 1);
    const before = await rowCounts(t, TABLES);
    const expired = await press(new Browser(t.app), t.mail.lastLink(second));
    expect(expired.statusCode).toBe(410);
    expect(expired.body).toContain("expired");
    // Made up, or mangled.
    const stranger = new Browser(t.app);
    for (const bad of ["A".repeat(43), "short", "..%2F..%2Flogout", "%00"]) {
      const response = await stranger.get(`/settings/email/confirm/${bad}`);
      expect(response.statusCode, bad).toBe(400);
      const post = await stranger.request("POST", `/settings/email/cancel/${bad}`, { form: { _csrf: "x" } });
      expect(post.statusCode, bad).toBeGreaterThanOrEqual(400);
      expect(post.statusCode, bad).toBeLessThan(500);
    }
    expect(await rowCounts(t, TABLES)).toEqual(before);
    expect(await emailOf(member.userId)).toBe(member.email);

    // Withdrawn from the settings (page) and through the API.
    const me = await signedInBrowser(t, member);
    const third = fresh();
    expect((await ask(me, { email: third })).statusCode).toBe(303);
    const page = await me.get("/settings/email");
    expect(page.body).toContain("Withdraw this change");
    const withdrawn = await me.request("POST", "/settings/email/withdraw", { form: { _csrf: csrfFrom(page.body) } });
    expect(withdrawn.statusCode).toBe(303);
    expect((await me.get(t.mail.lastLink(third))).statusCode).toBe(400);
    const fourth = fresh();
    expect((await me.request("POST", "/api/v1/email-change", { json: { email: fourth } })).statusCode).toBe(200);
    const status = await me.get("/api/v1/email-change");
    expect(status.json()).toMatchObject({ email: member.email, pending: { newEmail: fourth }, changeable: true });
    expect((await me.request("DELETE", "/api/v1/email-change")).statusCode).toBe(204);
    expect((await me.get("/api/v1/email-change")).json()).toMatchObject({ pending: null });
    expect((await me.get(t.mail.lastLink(fourth))).statusCode).toBe(400);
    expect(await emailOf(member.userId)).toBe(member.email);
  });

  it("the old address can stop the change: cancelled, every session signed out, the link dead, in the log", async () => {
    const member = await seedMember(t);
    const here = await signedInBrowser(t, member);
    const elsewhere = await signedInBrowser(t, member);
    const target = fresh();
    expect((await ask(here, { email: target })).statusCode).toBe(303);
    const cancel = /https?:\/\/\S+\/settings\/email\/cancel\/\S+/.exec(t.mail.last(member.email)!.text)![0];
    const page = await new Browser(t.app).get(cancel);
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain("Stop the change of your email address?");
    expect(page.body).toContain(target);
    const stopped = await press(new Browser(t.app), cancel);
    expect(stopped.statusCode).toBe(200);
    expect(stopped.body).toContain("The change is stopped");
    expect((await here.get("/api/v1/session")).statusCode).toBe(401);
    expect((await elsewhere.get("/api/v1/session")).statusCode).toBe(401);
    expect((await new Browser(t.app).get(t.mail.lastLink(target))).statusCode).toBe(400);
    expect((await new Browser(t.app).get(cancel)).statusCode).toBe(400);
    expect(await emailOf(member.userId)).toBe(member.email);
    const events = await eventsOf(member.userId, "email.change_cancelled");
    expect(events).toHaveLength(1);
    expect(events[0]!.detail).toMatchObject({ to: target, by: "old_address", sessionsEnded: 2 });
    // A change already confirmed can no longer be stopped, and the page says so.
    const again = await signedInBrowser(t, member);
    const target2 = fresh();
    expect((await ask(again, { email: target2 })).statusCode).toBe(303);
    const cancel2 = /https?:\/\/\S+\/settings\/email\/cancel\/\S+/.exec(t.mail.last(member.email)!.text)![0];
    expect((await press(again, t.mail.lastLink(target2))).statusCode).toBe(200);
    const late = await new Browser(t.app).get(cancel2);
    expect(late.statusCode).toBe(410);
    expect(late.body).toContain("already happened");
  });

  it("refuses SSO members: their address comes from their identity provider", async () => {
    const member = await seedMember(t);
    const ssoAccount = await seedMember(t, { accountName: "Federated" });
    await addMembership(t, { userId: member.userId, accountId: ssoAccount.accountId, signInMethod: "sso" });
    const here = await signedInBrowser(t, member);
    const page = await here.get("/settings/email");
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain("single sign-on");
    expect(page.body).not.toContain("Send confirmation link");
    const before = await rowCounts(t, TABLES);
    const refused = await ask(here, { email: fresh() });
    expect(refused.statusCode).toBe(403);
    const api = await here.request("POST", "/api/v1/email-change", { json: { email: fresh() } });
    expect(api.statusCode).toBe(403);
    expect(api.json()).toMatchObject({ error: "email_managed_by_sso" });
    expect((await here.get("/api/v1/email-change")).json()).toMatchObject({ changeable: false });
    expect(await rowCounts(t, TABLES)).toEqual(before);
  });

  it("answers bad input with a 4xx and a clear message, changing nothing", async () => {
    const member = await seedMember(t);
    const here = await signedInBrowser(t, member);
    const before = await rowCounts(t, TABLES);
    const cases: Array<[string, number, string]> = [
      ["", 422, "Enter an email address."],
      ["not-an-email", 422, "like name@example.com"],
      ["a@b", 422, "like name@example.com"],
      ["x@corp.test.", 422, "no dot at its start or end"],
      ["ann;bob@x.org", 422, "cannot contain"],
      [`${"a".repeat(250)}@x.org`, 422, "at most"],
      [member.email.toUpperCase(), 422, "already your email address"],
    ];
    for (const [email, status, message] of cases) {
      const page = await ask(here, { email });
      expect(page.statusCode, email).toBe(status);
      expect(page.body, email).toContain(message);
      const api = await here.request("POST", "/api/v1/email-change", { json: { email } });
      expect(api.statusCode, email).toBe(status);
      expect((api.json() as { message: string }).message, email).toContain(message);
    }
    for (const json of [{}, { email: 5 }, { email: ["a@b.org"] }, { email: "a@b.org", extra: 1 }, { email: "x".repeat(5000) }]) {
      const api = await here.request("POST", "/api/v1/email-change", { json });
      expect(api.statusCode, JSON.stringify(json).slice(0, 50)).toBe(400);
      expect(api.json()).toMatchObject({ error: "invalid_request" });
    }
    const malformed = await here.request("POST", "/api/v1/email-change", { headers: { "content-type": "application/json" } });
    expect(malformed.statusCode).toBeGreaterThanOrEqual(400);
    expect(malformed.statusCode).toBeLessThan(500);
    const noToken = await here.request("POST", "/settings/email", { form: { email: fresh() } });
    expect(noToken.statusCode).toBe(403);
    const anonymous = await new Browser(t.app).request("POST", "/api/v1/email-change", { json: { email: fresh() } });
    expect(anonymous.statusCode).toBe(401);
    expect(await rowCounts(t, TABLES)).toEqual(before);
  });

  it("limits requests per person per day (each mails an address they typed)", async () => {
    const member = await seedMember(t);
    const here = await signedInBrowser(t, member);
    for (let i = 0; i < defaultLimits.emailChangeRequestsPerUserPerDay; i++) {
      expect((await here.request("POST", "/api/v1/email-change", { json: { email: fresh() } })).statusCode).toBe(200);
    }
    const before = await rowCounts(t, TABLES);
    const refused = await here.request("POST", "/api/v1/email-change", { json: { email: fresh() } });
    expect(refused.statusCode).toBe(429);
    expect(refused.headers["retry-after"]).toBeDefined();
    expect(await rowCounts(t, TABLES)).toEqual(before);
    t.clock.advanceSeconds(24 * 60 * 60 + 1);
    const next = await signedInBrowser(t, member);
    expect((await next.request("POST", "/api/v1/email-change", { json: { email: fresh() } })).statusCode).toBe(200);
  });

  it("cancels an open support request of the person when the address changes", async () => {
    const member = await seedMember(t);
    const here = await signedInBrowser(t, member);
    const requestId = newId();
    await t.ctx.db
      .insertInto("support_requests")
      .values({
        id: requestId,
        user_id: member.userId,
        email: member.email,
        message: "",
        status: "approved",
        confirm_token_hash: newId(),
        cancel_token_hash: newId(),
        created_at: t.clock.now(),
        confirm_expires_at: t.clock.now(),
        confirmed_at: t.clock.now(),
        decided_at: t.clock.now(),
        decided_by: "op",
        decision_note: null,
        resets_at: t.clock.now() + 60_000,
        completed_at: null,
        ip: null,
        user_agent: null,
      })
      .execute();
    const target = fresh();
    expect((await ask(here, { email: target })).statusCode).toBe(303);
    expect((await press(here, t.mail.lastLink(target))).statusCode).toBe(200);
    const request = await t.ctx.db.selectFrom("support_requests").select("status").where("id", "=", requestId).executeTakeFirstOrThrow();
    expect(request.status).toBe("cancelled");
    expect((await eventsOf(member.userId, "support.cancelled"))[0]!.detail).toMatchObject({ requestId, reason: "email_changed" });
  });
});
