import { afterAll, beforeAll, expect, it } from "vitest";
import { describeEachDialect } from "./helpers/dialects.js";
import { addMembership, Browser, csrfFrom, rowCounts, seedMember, signedInBrowser, startTestApp, type TestApp } from "./helpers/app.js";
import { defaultLimits } from "../src/config.js";
import { hashToken } from "../src/auth/tokens.js";

const CHROME_MAC = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
const FIREFOX_WINDOWS = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0";

interface SessionJson {
  id: string;
  current: boolean;
  device: string;
  ip: string | null;
  method: string;
  createdAt: string;
  lastSeenAt: string;
}

describeEachDialect("where you're signed in (sessions list)", (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(dialect);
  });
  afterAll(async () => {
    await t?.close();
  });

  async function listOf(browser: Browser): Promise<SessionJson[]> {
    const response = await browser.get("/api/v1/sessions");
    expect(response.statusCode, response.body).toBe(200);
    return (response.json() as { sessions: SessionJson[] }).sessions;
  }

  /** One person signed in twice: on a Mac in Chrome (`here`), on Windows in Firefox (`there`). */
  async function twoBrowsers(): Promise<{ member: Awaited<ReturnType<typeof seedMember>>; here: Browser; there: Browser }> {
    const member = await seedMember(t);
    const here = await signedInBrowser(t, member, { "user-agent": CHROME_MAC });
    const there = await signedInBrowser(t, member, { "user-agent": FIREFOX_WINDOWS });
    return { member, here, there };
  }

  it("lists both browsers, this one first and marked current, described by browser and system, with ISO times", async () => {
    const { here, there } = await twoBrowsers();
    const sessions = await listOf(here);
    expect(sessions).toHaveLength(2);
    expect(sessions[0]).toMatchObject({ current: true, device: "Chrome 120 on macOS", method: "email_link", ip: "127.0.0.1" });
    expect(sessions[1]).toMatchObject({ current: false, device: "Firefox 121 on Windows", method: "email_link" });
    for (const s of sessions) {
      expect(s.id).toMatch(/^[0-9a-f]{32}$/);
      expect(new Date(s.createdAt).toISOString()).toBe(s.createdAt);
      expect(new Date(s.lastSeenAt).toISOString()).toBe(s.lastSeenAt);
    }
    // The other browser sees the same two, itself as current.
    const fromThere = await listOf(there);
    expect(fromThere.map((s) => [s.id, s.current])).toEqual([
      [sessions[1]!.id, true],
      [sessions[0]!.id, false],
    ]);

    const page = await here.get("/settings/sessions");
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain("Where you're signed in");
    expect(page.body).toContain("Chrome 120 on macOS");
    expect(page.body).toContain("Firefox 121 on Windows");
    expect(page.body).toContain("This browser");
    expect(page.body).toContain("Password and email link");
    expect(page.body).toContain(`/settings/sessions/${sessions[1]!.id}/sign-out`);
    // Never a sign-out button for this browser, never the User-Agent itself.
    expect(page.body).not.toContain(`/settings/sessions/${sessions[0]!.id}/sign-out`);
    expect(page.body).not.toContain("KHTML");
    expect(page.body).toContain('aria-current="page"');
  });

  it("shows only the person's own sessions, and a session id is not a credential", async () => {
    const { here, member } = await twoBrowsers();
    const stranger = await signedInBrowser(t, await seedMember(t));
    const theirs = await listOf(stranger);
    expect(theirs).toHaveLength(1);
    const mine = await listOf(here);
    expect(mine.map((s) => s.id)).not.toContain(theirs[0]!.id);
    // The id is the row's, not the token or its hash.
    const row = await t.ctx.db.selectFrom("sessions").select(["id", "token_hash"]).where("id", "=", mine[0]!.id).executeTakeFirstOrThrow();
    expect(row.token_hash).not.toBe(mine[0]!.id);
    expect(here.cookies.get("latchkey_session")).not.toBe(mine[0]!.id);
    expect(hashToken(here.cookies.get("latchkey_session")!)).toBe(row.token_hash);
    // A cookie holding an id signs nobody in.
    const forged = new Browser(t.app);
    forged.cookies.set("latchkey_session", mine[0]!.id);
    expect((await forged.get("/api/v1/session")).statusCode).toBe(401);
    expect((await forged.get("/settings/sessions")).statusCode).toBe(303);
    expect(member.userId).toBeTruthy();
  });

  it("signs out the other browser from the page: its next request is refused, and the event is in the log", async () => {
    const { member, here, there } = await twoBrowsers();
    const [, other] = await listOf(here);
    const page = await here.get("/settings/sessions");
    const response = await here.request("POST", `/settings/sessions/${other!.id}/sign-out`, { form: { _csrf: csrfFrom(page.body) } });
    expect(response.statusCode).toBe(303);
    expect(response.headers.location).toBe("/settings/sessions?notice=signed_out");
    expect((await there.get("/api/v1/session")).statusCode).toBe(401);
    const thereHome = await there.get("/settings/team");
    expect(thereHome.statusCode).toBe(303);
    expect(thereHome.headers.location).toBe("/login");
    expect((await here.get("/api/v1/session")).statusCode).toBe(200);
    expect((await here.get("/settings/sessions?notice=signed_out")).body).toContain("That session is signed out.");
    expect(await listOf(here)).toHaveLength(1);
    const events = await t.ctx.db
      .selectFrom("audit_events")
      .select(["type", "account_id", "detail"])
      .where("user_id", "=", member.userId)
      .where("type", "=", "session.revoked")
      .execute();
    expect(events).toHaveLength(1);
    expect(events[0]!.account_id).toBe(member.accountId);
    expect(JSON.parse(events[0]!.detail)).toMatchObject({ sessionId: other!.id, device: "Firefox 121 on Windows" });
  });

  it("ends a session through the API with 204; the calling session's own id signs it out", async () => {
    const { here, there } = await twoBrowsers();
    const [mine, other] = await listOf(here);
    const deleted = await here.request("DELETE", `/api/v1/sessions/${other!.id}`);
    expect(deleted.statusCode).toBe(204);
    expect((await there.get("/api/v1/session")).statusCode).toBe(401);
    // Again: gone.
    const again = await here.request("DELETE", `/api/v1/sessions/${other!.id}`);
    expect(again.statusCode).toBe(404);
    expect(again.json()).toMatchObject({ error: "session_not_found" });
    const self = await here.request("DELETE", `/api/v1/sessions/${mine!.id}`);
    expect(self.statusCode).toBe(204);
    expect((await here.get("/api/v1/session")).statusCode).toBe(401);
  });

  it("answers another person's session id exactly like one that does not exist, and ends nothing", async () => {
    const { here } = await twoBrowsers();
    const stranger = await signedInBrowser(t, await seedMember(t));
    const [theirs] = await listOf(stranger);
    const before = await rowCounts(t, ["sessions", "audit_events"]);
    const foreign = await here.request("DELETE", `/api/v1/sessions/${theirs!.id}`);
    const unknown = await here.request("DELETE", `/api/v1/sessions/${"0".repeat(32)}`);
    expect(foreign.statusCode).toBe(404);
    expect(unknown.statusCode).toBe(404);
    expect(foreign.json()).toEqual(unknown.json());
    const page = await here.get("/settings/sessions");
    const foreignPage = await here.request("POST", `/settings/sessions/${theirs!.id}/sign-out`, { form: { _csrf: csrfFrom(page.body) } });
    expect(foreignPage.statusCode).toBe(404);
    expect(foreignPage.body).toContain("No such session");
    expect(await rowCounts(t, ["sessions", "audit_events"])).toEqual(before);
    expect((await stranger.get("/api/v1/session")).statusCode).toBe(200);
  });

  it("refuses ids that are not ids with a 4xx and changes nothing", async () => {
    const { here } = await twoBrowsers();
    const page = await here.get("/settings/sessions");
    const csrf = csrfFrom(page.body);
    const before = await rowCounts(t, ["sessions", "audit_events"]);
    for (const bad of ["nope", "ZZ".repeat(16), "0".repeat(33), "%00", "..%2F..%2Flogout", "x".repeat(300)]) {
      const api = await here.request("DELETE", `/api/v1/sessions/${bad}`);
      expect(api.statusCode, bad).toBeGreaterThanOrEqual(400);
      expect(api.statusCode, bad).toBeLessThan(500);
      const form = await here.request("POST", `/settings/sessions/${bad}/sign-out`, { form: { _csrf: csrf } });
      expect(form.statusCode, bad).toBeGreaterThanOrEqual(400);
      expect(form.statusCode, bad).toBeLessThan(500);
    }
    // Without the form token nothing happens either.
    const [, other] = await listOf(here);
    expect((await here.request("POST", `/settings/sessions/${other!.id}/sign-out`, { form: {} })).statusCode).toBe(403);
    // A cross-site API call is refused.
    const crossSite = await here.request("DELETE", `/api/v1/sessions/${other!.id}`, { headers: { origin: "https://evil.example" } });
    expect(crossSite.statusCode).toBe(403);
    expect(await rowCounts(t, ["sessions", "audit_events"])).toEqual(before);
  });

  it("needs a fresh proof to sign out all other sessions, then ends them all and keeps this one", async () => {
    const member = await seedMember(t);
    const here = await signedInBrowser(t, member, { "user-agent": CHROME_MAC });
    const others = [await signedInBrowser(t, member), await signedInBrowser(t, member)];
    t.clock.advanceSeconds(defaultLimits.freshProofSeconds + 60);
    // A sign-in in progress that passed the password must not finish afterwards either.
    const halfway = new Browser(t.app);
    await halfway.signInWithPassword(member.email, member.password);
    const link = t.mail.lastLink(member.email);

    const page = await here.get("/settings/sessions");
    expect(page.body).toContain("Sign out all other sessions");
    const before = await rowCounts(t, ["sessions"]);
    const stale = await here.request("POST", "/settings/sessions/sign-out-others", { form: { _csrf: csrfFrom(page.body) } });
    expect(stale.statusCode).toBe(403);
    expect(stale.body).toContain("Confirm your password");
    expect(stale.body).toContain('value="/settings/sessions"');
    expect(await rowCounts(t, ["sessions"])).toEqual(before);
    // The API says the same through the status: a stale session cannot do it.
    const confirm = await here.request("POST", "/settings/confirm-password", {
      form: { _csrf: csrfFrom(stale.body), password: member.password, next: "/settings/sessions" },
    });
    expect(confirm.statusCode).toBe(303);
    expect(confirm.headers.location).toBe("/settings/sessions");

    const fresh = await here.get("/settings/sessions");
    const done = await here.request("POST", "/settings/sessions/sign-out-others", { form: { _csrf: csrfFrom(fresh.body) } });
    expect(done.statusCode).toBe(303);
    expect(done.headers.location).toBe("/settings/sessions?notice=signed_out_others");
    for (const other of others) expect((await other.get("/api/v1/session")).statusCode).toBe(401);
    expect((await here.get("/api/v1/session")).statusCode).toBe(200);
    expect((await halfway.get(link)).statusCode).toBe(401);
    expect(await listOf(here)).toHaveLength(1);
    const after = await here.get("/settings/sessions?notice=signed_out_others");
    expect(after.body).toContain("Every other session is signed out.");
    expect(after.body).toContain("You are signed in nowhere else.");
    const event = await t.ctx.db
      .selectFrom("audit_events")
      .select("detail")
      .where("user_id", "=", member.userId)
      .where("type", "=", "session.others_revoked")
      .executeTakeFirstOrThrow();
    expect(JSON.parse(event.detail)).toEqual({ ended: 2 });
  });

  it("leaves out sessions that ended by the idle timeout, and lists the person's sessions in every account", async () => {
    const member = await seedMember(t, { accountName: "First" });
    const second = await seedMember(t, { accountName: "Second" });
    // The same person in a second account.
    await addMembership(t, { userId: member.userId, accountId: second.accountId });
    const idle = await signedInBrowser(t, member);
    t.clock.advanceSeconds(defaultLimits.sessionIdleTimeoutSeconds + 60);
    const here = await signedInBrowser(t, member);
    expect(await listOf(here)).toHaveLength(1);
    expect((await idle.get("/api/v1/session")).statusCode).toBe(401);
    expect((await here.get("/settings/sessions")).body).not.toContain('<th scope="col">Account</th>');

    const there = await signedInBrowser(t, member);
    const switchTo = async (browser: Browser, accountId: string): Promise<void> => {
      const response = await browser.request("POST", "/api/v1/session/account", { json: { accountId } });
      expect(response.statusCode, response.body).toBe(200);
    };
    await switchTo(here, member.accountId);
    await switchTo(there, second.accountId);
    expect(await listOf(here)).toHaveLength(2);
    const page = await here.get("/settings/sessions");
    expect(page.body).toContain('<th scope="col">Account</th>');
    expect(page.body).toContain(`<td data-label="Account">Second</td>`);
    expect(page.body).toContain(`<td data-label="Account">First</td>`);
  });
});
