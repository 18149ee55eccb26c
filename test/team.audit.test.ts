import { afterAll, beforeAll, expect, it } from "vitest";
import { describeEachDialect } from "./helpers/dialects.js";
import { Browser, seedMember, signedInBrowser, startTestApp, type TestApp } from "./helpers/app.js";
import { enableAuthApp } from "./helpers/auth-app.js";
import { newId } from "../src/auth/tokens.js";

const UA = "AuditTest/1.0 (team.audit)";
const NEW_PASSWORD = "a long and unusual passphrase";

interface ApiEvent {
  id: string;
  type: string;
  at: string;
  user: { id: string; email: string | null } | null;
  actor: { id: string; email: string | null } | null;
  ip: string | null;
  userAgent: string | null;
  detail: Record<string, unknown>;
}

describeEachDialect("audit log", (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(dialect);
  });
  afterAll(async () => {
    await t?.close();
  });

  const tick = (): void => t.clock.advanceSeconds(1);
  const ua = { headers: { "user-agent": UA } };

  /** Every event the admin can see with these filters, walking all pages. */
  async function allEvents(browser: Browser, query = "", limit = 200): Promise<ApiEvent[]> {
    const events: ApiEvent[] = [];
    let cursor: string | null = null;
    for (let page = 0; page < 100; page++) {
      const params = new URLSearchParams(query);
      params.set("limit", String(limit));
      if (cursor) params.set("cursor", cursor);
      const response = await browser.get(`/api/v1/audit?${params.toString()}`);
      expect(response.statusCode, response.body).toBe(200);
      const body = response.json() as { events: ApiEvent[]; nextCursor: string | null };
      expect(body.events.length).toBeLessThanOrEqual(limit);
      events.push(...body.events);
      cursor = body.nextCursor;
      if (!cursor) return events;
    }
    throw new Error("too many pages");
  }

  it("records every team action with who, when, IP and browser", async () => {
    const admin = await seedMember(t, { role: "admin", accountName: "Audited" });
    const member = await seedMember(t, { accountId: admin.accountId });
    const adminBrowser = await signedInBrowser(t, admin);
    tick();
    // invitation.created / resent / revoked / accepted
    const email = `joiner-${newId().slice(0, 6)}@example.com`;
    const created = await adminBrowser.request("POST", "/api/v1/team/invitations", { json: { email, role: "member" }, ...ua });
    tick();
    await adminBrowser.request("POST", `/api/v1/team/invitations/${created.json().id}/resend`, ua);
    tick();
    const invitationId = (await adminBrowser.get("/api/v1/team/invitations")).json().invitations[0].id as string;
    await adminBrowser.request("DELETE", `/api/v1/team/invitations/${invitationId}`, ua);
    tick();
    await adminBrowser.request("POST", "/api/v1/team/invitations", { json: { email, role: "member" }, ...ua });
    const path = new URL(t.mail.lastLink(email)).pathname;
    const joiner = new Browser(t.app);
    const csrf = /name="_csrf" value="([^"]+)"/.exec((await joiner.get(path, { "user-agent": UA })).body)?.[1] as string;
    await joiner.request("POST", path, { form: { _csrf: csrf, name: "Jo Joiner", password: NEW_PASSWORD }, ...ua });
    tick();
    // member.role_changed, member.removed
    await adminBrowser.request("PATCH", `/api/v1/team/members/${member.userId}`, { json: { role: "admin" }, ...ua });
    tick();
    await adminBrowser.request("PATCH", `/api/v1/team/members/${member.userId}`, { json: { role: "member" }, ...ua });
    tick();
    await adminBrowser.request("DELETE", `/api/v1/team/members/${member.userId}`, ua);
    tick();
    // sign_in.* (a failure and a success) and two_factor.* for a member that stays
    const stays = await seedMember(t, { accountId: admin.accountId });
    await new Browser(t.app).request("POST", "/api/v1/login", { json: { email: stays.email, password: "not the password at all" }, ...ua });
    tick();
    await enableAuthApp(t, stays);
    tick();
    // policy.changed (the admin needs the app first)
    const { browser: withApp } = await enableAuthApp(t, admin);
    tick();
    expect((await withApp.request("PUT", "/api/v1/policy", { json: { policy: "auth_app_required" }, ...ua })).statusCode).toBe(200);
    tick();
    expect((await withApp.request("PUT", "/api/v1/policy", { json: { policy: "email_link" }, ...ua })).statusCode).toBe(200);

    const events = await allEvents(withApp);
    const types = new Set(events.map((e) => e.type));
    for (const type of [
      "invitation.created",
      "invitation.resent",
      "invitation.revoked",
      "invitation.accepted",
      "member.role_changed",
      "member.removed",
      "policy.changed",
      "sign_in.password_failed",
      "sign_in.password_accepted",
      "sign_in.email_link_sent",
      "sign_in.succeeded",
      "two_factor.auth_app_enabled",
    ]) {
      expect(types, type).toContain(type);
    }
    // Every event carries IP and browser; those made with our user agent show it.
    for (const e of events) {
      expect(e.ip, e.type).toBe("127.0.0.1");
      expect(e.userAgent, e.type).toBeTruthy();
      expect(Number.isNaN(Date.parse(e.at))).toBe(false);
    }
    for (const type of [
      "invitation.created",
      "invitation.resent",
      "invitation.revoked",
      "invitation.accepted",
      "member.role_changed",
      "member.removed",
      "policy.changed",
      "sign_in.password_failed",
    ]) {
      expect(
        events.filter((e) => e.type === type).every((e) => e.userAgent === UA),
        `${type} user agent`,
      ).toBe(true);
    }
    // Who did what to whom.
    const removed = events.find((e) => e.type === "member.removed")!;
    expect(removed.actor).toEqual({ id: admin.userId, email: admin.email });
    expect(removed.user?.id).toBe(member.userId);
    expect(removed.detail).toMatchObject({ email: member.email, loginDeleted: true });
    const roles = events.filter((e) => e.type === "member.role_changed").map((e) => e.detail);
    expect(roles).toEqual([
      { from: "admin", to: "member" },
      { from: "member", to: "admin" },
    ]);
    expect(events.find((e) => e.type === "invitation.created")?.actor?.id).toBe(admin.userId);
    expect(events.find((e) => e.type === "invitation.created")?.detail).toMatchObject({ email, role: "member" });
    expect(events.filter((e) => e.type === "policy.changed").map((e) => e.detail.to)).toEqual(["email_link", "auth_app_required"]);

    // The page shows them too.
    const page = await withApp.get("/settings/audit");
    expect(page.statusCode).toBe(200);
    for (const type of ["member.removed", "policy.changed", "invitation.accepted"]) expect(page.body).toContain(`<code>${type}</code>`);
    expect(page.body).toContain("127.0.0.1");
    expect(page.body).toContain("AuditTest/1.0");
  });

  it("filters by member, by exact event and by prefix, and by time", async () => {
    const start = t.clock.now();
    const admin = await seedMember(t, { role: "admin", accountName: "Filtered" });
    const a = await seedMember(t, { accountId: admin.accountId });
    const b = await seedMember(t, { accountId: admin.accountId });
    await signedInBrowser(t, admin);
    t.clock.advanceSeconds(86_400 * 3);
    await signedInBrowser(t, a);
    const dayOfA = t.clock.now();
    t.clock.advanceSeconds(86_400 * 3);
    await signedInBrowser(t, b);
    await new Browser(t.app).request("POST", "/api/v1/login", { json: { email: b.email, password: "wrong wrong wrong" } });
    tick();
    // A new session (the first one ended long ago: idle timeout).
    const adminBrowser = await signedInBrowser(t, admin);
    tick();
    await adminBrowser.request("PATCH", `/api/v1/team/members/${b.userId}`, { json: { role: "admin" } });

    const ofA = await allEvents(adminBrowser, `member=${a.userId}`);
    expect(ofA.length).toBeGreaterThan(0);
    expect(ofA.every((e) => e.user?.id === a.userId || e.actor?.id === a.userId)).toBe(true);
    const ofB = await allEvents(adminBrowser, `member=${b.userId}`);
    expect(ofB.map((e) => e.type)).toEqual(expect.arrayContaining(["member.role_changed", "sign_in.password_failed", "sign_in.succeeded"]));
    expect(ofB.some((e) => e.user?.id === a.userId)).toBe(false);

    const exact = await allEvents(adminBrowser, "event=sign_in.succeeded");
    expect(exact.length).toBe(4);
    expect(exact.every((e) => e.type === "sign_in.succeeded")).toBe(true);
    const prefix = await allEvents(adminBrowser, "event=sign_in.");
    expect(prefix.every((e) => e.type.startsWith("sign_in."))).toBe(true);
    expect(new Set(prefix.map((e) => e.type))).toEqual(
      new Set(["sign_in.password_accepted", "sign_in.email_link_sent", "sign_in.succeeded", "sign_in.password_failed"]),
    );
    expect(await allEvents(adminBrowser, "event=sign_in")).toEqual([]);
    const memberPrefix = await allEvents(adminBrowser, `event=member.&member=${b.userId}`);
    expect(memberPrefix.map((e) => e.type)).toEqual(["member.role_changed"]);

    // Time: ISO date-times (from inclusive, to exclusive) and whole UTC dates (to includes the day).
    const iso = (ms: number): string => new Date(ms).toISOString();
    const window = await allEvents(adminBrowser, `from=${iso(dayOfA)}&to=${iso(dayOfA + 1000)}`);
    expect(window.length).toBeGreaterThan(0);
    expect(window.every((e) => Date.parse(e.at) === dayOfA)).toBe(true);
    expect(window.every((e) => e.user?.id === a.userId)).toBe(true);
    const before = await allEvents(adminBrowser, `to=${iso(start + 86_400_000)}`);
    expect(before.every((e) => Date.parse(e.at) < start + 86_400_000)).toBe(true);
    expect(before.some((e) => e.user?.id === admin.userId)).toBe(true);
    expect(before.some((e) => e.user?.id === b.userId)).toBe(false);
    const day = iso(dayOfA).slice(0, 10);
    const wholeDay = await allEvents(adminBrowser, `from=${day}&to=${day}`);
    expect(wholeDay.map((e) => e.id).sort()).toEqual(window.map((e) => e.id).sort());
    const after = await allEvents(adminBrowser, `from=${iso(dayOfA + 86_400_000)}`);
    expect(after.length).toBeGreaterThan(0);
    expect(after.every((e) => Date.parse(e.at) > dayOfA)).toBe(true);

    // The page applies the same filters.
    const page = await adminBrowser.get(`/settings/audit?event=member.&member=${b.userId}`);
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain("<code>member.role_changed</code>");
    expect(page.body).not.toContain("<code>sign_in.");
  });

  it("paginates newest first with nextCursor: every event once, across pages of any size", async () => {
    const admin = await seedMember(t, { role: "admin", accountName: "Paged" });
    const adminBrowser = await signedInBrowser(t, admin);
    const members = [];
    for (let i = 0; i < 4; i++) members.push(await seedMember(t, { accountId: admin.accountId }));
    // 24 role changes, some of them in the same millisecond (ties are broken by id).
    for (let i = 0; i < 24; i++) {
      if (i % 3 === 0) tick();
      const m = members[i % 4]!;
      await adminBrowser.request("PATCH", `/api/v1/team/members/${m.userId}`, { json: { role: i % 8 < 4 ? "admin" : "member" } });
    }
    const everything = await allEvents(adminBrowser, "", 200);
    expect(everything.length).toBeGreaterThan(24);
    for (const limit of [1, 5, 7, 24, 25]) {
      const walked = await allEvents(adminBrowser, "", limit);
      expect(
        walked.map((e) => e.id),
        `limit ${limit}`,
      ).toEqual(everything.map((e) => e.id));
    }
    const ids = everything.map((e) => e.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (let i = 1; i < everything.length; i++)
      expect(Date.parse(everything[i - 1]!.at)).toBeGreaterThanOrEqual(Date.parse(everything[i]!.at));
    const roleChanges = await allEvents(adminBrowser, "event=member.role_changed", 5);
    expect(roleChanges).toHaveLength(24);
    // The last page says so; a page size over the maximum is capped, not refused.
    const first = (await adminBrowser.get("/api/v1/audit?limit=999")).json();
    expect(first.nextCursor).toBeNull();
    expect(first.events).toHaveLength(everything.length);
    const paged = (await adminBrowser.get("/api/v1/audit?limit=10&event=member.role_changed")).json();
    expect(paged.events).toHaveLength(10);
    expect(typeof paged.nextCursor).toBe("string");
    // The page links to the next one.
    const page = await adminBrowser.get("/settings/audit?limit=5");
    expect(page.statusCode).toBe(200);
    expect(page.body).toMatch(/href="\/settings\/audit\?[^"]*cursor=/);
  });

  it("never shows another account's events, not even by member filter", async () => {
    const admin = await seedMember(t, { role: "admin", accountName: "Mine" });
    const mine = await seedMember(t, { accountId: admin.accountId });
    const adminBrowser = await signedInBrowser(t, admin);
    await signedInBrowser(t, mine);
    const otherAdmin = await seedMember(t, { role: "admin", accountName: "Theirs" });
    const theirs = await seedMember(t, { accountId: otherAdmin.accountId });
    const otherBrowser = await signedInBrowser(t, otherAdmin);
    await signedInBrowser(t, theirs);
    const secretEmail = `secret-${newId().slice(0, 6)}@example.com`;
    await otherBrowser.request("POST", "/api/v1/team/invitations", { json: { email: secretEmail, role: "admin" } });
    await otherBrowser.request("PATCH", `/api/v1/team/members/${theirs.userId}`, { json: { role: "admin" } });
    await new Browser(t.app).request("POST", "/api/v1/login", { json: { email: theirs.email, password: "wrong wrong wrong" } });

    const seen = await allEvents(adminBrowser);
    const foreign = new Set([otherAdmin.userId, theirs.userId]);
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.filter((e) => foreign.has(e.user?.id ?? "") || foreign.has(e.actor?.id ?? ""))).toEqual([]);
    expect(JSON.stringify(seen)).not.toContain(secretEmail);
    expect(JSON.stringify(seen)).not.toContain(theirs.email);
    expect(await allEvents(adminBrowser, `member=${theirs.userId}`)).toEqual([]);
    const page = await adminBrowser.get("/settings/audit");
    expect(page.body).not.toContain(secretEmail);
    expect(page.body).not.toContain(theirs.email);
    // The other admin sees their own.
    expect(JSON.stringify(await allEvents(otherBrowser))).toContain(secretEmail);
  });

  it("refuses bad filters with 400 and a message naming the parameter, on the API and the page", async () => {
    const admin = await seedMember(t, { role: "admin" });
    const browser = await signedInBrowser(t, admin);
    const cases: Array<[string, string]> = [
      ["event=sign in", '"event"'],
      ["event=SIGN_IN.", '"event"'],
      ["event=" + "a".repeat(65), '"event"'],
      ["limit=abc", '"limit"'],
      ["limit=-1", '"limit"'],
      ["limit=1.5", '"limit"'],
      ["cursor=bogus", '"cursor"'],
      ["cursor=" + Buffer.from("123:not-an-id").toString("base64url"), '"cursor"'],
      ["member=not-an-id", '"member"'],
      ["member=" + "A".repeat(32), '"member"'],
      ["from=notadate", '"from"'],
      ["to=2026-13-45", '"to"'],
      ["from=yesterday", '"from"'],
      ["colour=blue", "colour"],
      ["limit=1&limit=2", '"limit"'],
    ];
    for (const [query, names] of cases) {
      const response = await browser.get(`/api/v1/audit?${query.replace(/ /g, "%20")}`);
      expect(response.statusCode, query).toBe(400);
      expect(response.json().error, query).toBe("invalid_request");
      expect(response.json().message, query).toContain(names);
      const page = await browser.get(`/settings/audit?${query.replace(/ /g, "%20")}`);
      expect(page.statusCode, `page ${query}`).toBe(400);
      expect(page.headers["content-type"]).toContain("text/html");
    }
    // Empty filters are no filters.
    expect((await browser.get("/api/v1/audit?member=&event=&from=&to=")).statusCode).toBe(200);
  });
});
