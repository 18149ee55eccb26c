import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Browser, csrfFrom, seedMember, signedInBrowser, startTestApp, type TestApp } from "./helpers/app.js";
import { enableAuthApp } from "./helpers/auth-app.js";

/** The text of an HTML fragment, as read: tags gone, entities of the escaper decoded, spaces collapsed. */
function text(fragment: string): string {
  return fragment
    .replace(/<br>/g, " ")
    .replace(/<[^>]+>/g, "")
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&amp;/g, "&")
    .replace(/\s+/g, " ")
    .trim();
}

/** The cells of the table row that mentions `needle`: each cell's column name (data-label) and text. */
function rowCells(body: string, needle: string): Record<string, string> {
  const row = [...body.matchAll(/<tr>([\s\S]*?)<\/tr>/g)].map((m) => m[1]!).find((r) => r.includes(needle));
  if (!row) throw new Error(`no row with ${needle}`);
  return Object.fromEntries([...row.matchAll(/<td data-label="([^"]+)"[^>]*>([\s\S]*?)<\/td>/g)].map((m) => [m[1]!, text(m[2]!)]));
}

/** The links of the navigation named `label`, with whether each is marked as the current page. */
function navLinks(body: string, label: string): { text: string; current: boolean }[] {
  const nav = new RegExp(`<nav aria-label="${label}"[^>]*>([\\s\\S]*?)</nav>`).exec(body)?.[1];
  if (nav === undefined) return [];
  return [...nav.matchAll(/<(a|span)\b([^>]*)>([\s\S]*?)<\/\1>/g)].map((m) => ({
    text: text(m[3]!),
    current: m[2]!.includes('aria-current="page"'),
  }));
}

/**
 * The markup behind the UI fixes of issue 12 (what a browser then shows is e2e/ui-fit.e2e.test.ts's and
 * e2e/pages.e2e.test.ts's): where you are in the settings, the tables' column names for the phone layout, the
 * invitations' state, the labels and counts that read right, the print view's landmark. Markup does not depend on the
 * database, so SQLite only.
 */
describe("pages: navigation, tables, labels", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp("sqlite");
  });
  afterAll(async () => {
    await t?.close();
  });

  /** An account with an admin and a member, both signed in. */
  async function team(): Promise<{ admin: Browser; member: Browser; adminPerson: { email: string; password: string }; memberId: string }> {
    const admin = await seedMember(t, { role: "admin", name: "Ada Admin" });
    const member = await seedMember(t, { accountId: admin.accountId, name: "Max Member" });
    return {
      admin: await signedInBrowser(t, admin),
      member: await signedInBrowser(t, member),
      adminPerson: admin,
      memberId: member.userId,
    };
  }

  it("the account's tabs mark the page shown with aria-current=page, and only that one", async () => {
    const { admin, member, memberId } = await team();
    for (const [path, current] of [
      ["/settings/team", "Team Members"],
      ["/settings/security", "Security"],
      ["/settings/audit", "Audit log"],
      [`/settings/team/members/${memberId}/remove`, "Team Members"],
    ] as const) {
      const page = await admin.get(path);
      expect(page.statusCode, path).toBe(200);
      expect(navLinks(page.body, "Account settings"), path).toEqual(
        ["Team Members", "Security", "Audit log"].map((tab) => ({ text: tab, current: tab === current })),
      );
    }
    // A member has one tab: theirs, and it is marked.
    expect(navLinks((await member.get("/settings/team")).body, "Account settings")).toEqual([{ text: "Team Members", current: true }]);
  });

  it("the person's own pages have a trail through Your settings and not the account's tabs", async () => {
    const { admin } = await team();
    const pages = [
      ["/settings/profile", ["Account Settings", "Your settings"]],
      ["/settings/password", ["Account Settings", "Your settings", "Change password"]],
      ["/settings/two-factor", ["Account Settings", "Your settings", "Two-factor authentication"]],
      ["/settings/email", ["Account Settings", "Your settings", "Change email address"]],
      ["/settings/sessions", ["Account Settings", "Your settings", "Where you're signed in"]],
    ] as const;
    for (const [path, trail] of pages) {
      const page = await admin.get(path);
      expect(page.statusCode, path).toBe(200);
      expect(navLinks(page.body, "Account settings"), path).toEqual([]);
      expect(navLinks(page.body, "Breadcrumb"), path).toEqual(trail.map((crumb, i) => ({ text: crumb, current: i === trail.length - 1 })));
    }
    // The setup steps sit under Two-factor authentication.
    const manage = await admin.get("/settings/two-factor");
    expect((await admin.request("POST", "/settings/two-factor/setup", { form: { _csrf: csrfFrom(manage.body) } })).statusCode).toBe(303);
    const step1 = await admin.get("/settings/two-factor/setup");
    expect(step1.body).toContain("Step 1 of 3: save your recovery codes");
    expect(navLinks(step1.body, "Account settings")).toEqual([]);
    expect(navLinks(step1.body, "Breadcrumb").map((c) => c.text)).toEqual([
      "Account Settings",
      "Your settings",
      "Two-factor authentication",
      "Set up the auth app",
    ]);
  });

  it("the personal setup button starts with the seed's Enable and says what it does; Security's policy button is another", async () => {
    const { admin } = await team();
    const manage = await admin.get("/settings/two-factor");
    const buttons = [...manage.body.matchAll(/<button[^>]*>([^<]*)<\/button>/g)].map((m) => m[1]);
    expect(buttons.filter((b) => b?.startsWith("Enable"))).toEqual(["Enable: set up the auth app"]);
    const security = await admin.get("/settings/security");
    expect(security.body).toContain(">Enable Auth App</button>");
    expect(security.body).not.toContain("set up the auth app</button>");
  });

  it("Team Members: every cell names its column; an invitation's state and expiry are its Status, its Last sign-in is empty", async () => {
    const { admin, adminPerson, memberId } = await team();
    const email = `invitee-${memberId.slice(0, 8)}@example.com`;
    expect((await admin.request("POST", "/api/v1/team/invitations", { json: { email, role: "member" } })).statusCode).toBe(201);
    const page = await admin.get("/settings/team");
    const columns = ["Name", "Email", "Role", "Two-factor authentication", "Status", "Last sign-in", "Actions"];
    expect([...page.body.matchAll(/<th scope="col">([^<]*)<\/th>/g)].map((m) => m[1])).toEqual(columns);

    const invitation = rowCells(page.body, email);
    expect(Object.keys(invitation)).toEqual(columns);
    expect(invitation["Status"]).toMatch(/^Invited expires \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC$/);
    expect(invitation["Last sign-in"]).toBe("");
    expect(invitation["Two-factor authentication"]).toBe("");
    expect(invitation["Actions"]).toBe("Resend Revoke");

    const member = rowCells(page.body, "Max Member");
    expect(Object.keys(member)).toEqual(columns);
    expect(member).toMatchObject({ Name: "Max Member", Status: "Active", "Two-factor authentication": "Email link" });
    expect(member["Last sign-in"]).toMatch(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC$/);

    // An expired one says so, and since when (a week later: the admin signs in again).
    t.clock.advanceSeconds(t.config.limits.invitationTtlSeconds + 60);
    const later = await signedInBrowser(t, adminPerson);
    expect(rowCells((await later.get("/settings/team")).body, email)["Status"]).toMatch(
      /^Invitation expired on \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC$/,
    );
  });

  it("the Audit log's cells name their columns", async () => {
    const { admin } = await team();
    const page = await admin.get("/settings/audit");
    const columns = ["When (UTC)", "Event", "Who", "From", "Details"];
    expect([...page.body.matchAll(/<th scope="col">([^<]*)<\/th>/g)].map((m) => m[1])).toEqual(columns);
    const cells = rowCells(page.body, "sign_in.succeeded");
    expect(Object.keys(cells)).toEqual(columns);
    expect(cells["Event"]).toBe("sign_in.succeeded");
  });

  it("counts agree with their nouns: one recovery code, one member who still has to set the app up", async () => {
    const admin = await seedMember(t, { role: "admin", name: "Ada Admin" });
    await seedMember(t, { accountId: admin.accountId, name: "Max Member" });
    const { browser, codes } = await enableAuthApp(t, admin);
    // Nine of the ten codes used, as nine sign-ins with them would.
    const rows = await t.ctx.db
      .selectFrom("recovery_codes")
      .select("id")
      .where("user_id", "=", admin.userId)
      .limit(codes.length - 1)
      .execute();
    for (const row of rows) await t.ctx.db.updateTable("recovery_codes").set({ used_at: t.clock.now() }).where("id", "=", row.id).execute();
    expect(text((await browser.get("/settings/profile")).body)).toContain("Method: Auth app · 1 recovery code left");
    expect(text((await browser.get("/settings/two-factor")).body)).toContain("1 of your recovery codes is unused.");
    expect((await browser.request("PUT", "/api/v1/policy", { json: { policy: "auth_app_required" } })).statusCode).toBe(200);
    expect(text((await browser.get("/settings/security")).body)).toContain(
      "1 of them still has to set it up and is sent to do so on their next request.",
    );
  });

  it("the recovery codes' print view has a main landmark with the codes in it", async () => {
    const admin = await seedMember(t, { role: "admin" });
    const { browser } = await enableAuthApp(t, admin);
    const manage = await browser.get("/settings/two-factor");
    expect(
      (await browser.request("POST", "/settings/two-factor/recovery-codes", { form: { _csrf: csrfFrom(manage.body) } })).statusCode,
    ).toBe(303);
    const print = await browser.get("/settings/two-factor/recovery-codes/print");
    expect(print.statusCode).toBe(200);
    const main = /<main>([\s\S]*)<\/main>/.exec(print.body)?.[1] ?? "";
    expect(main).toContain("<h1>");
    expect([...main.matchAll(/<li>[0-9a-z]{5}-[0-9a-z]{5}-[0-9a-z]{5}<\/li>/g)]).toHaveLength(10);
    expect(print.body).toContain('<meta name="viewport"');
  });

  it("the Copy button is in the page hidden (it needs JavaScript, which shows it)", async () => {
    const admin = await seedMember(t, { role: "admin" });
    const { browser } = await enableAuthApp(t, admin);
    const manage = await browser.get("/settings/two-factor");
    await browser.request("POST", "/settings/two-factor/recovery-codes", { form: { _csrf: csrfFrom(manage.body) } });
    const codes = await browser.get("/settings/two-factor/recovery-codes");
    expect(codes.body).toMatch(/<button type="button" id="copy-codes" data-codes="[^"]+" hidden>Copy<\/button>/);
    // And the stylesheet lets the attribute win over the buttons' own display.
    expect(codes.body).toContain("[hidden]{display:none!important}");
  });
});
