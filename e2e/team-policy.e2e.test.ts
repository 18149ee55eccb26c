import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createAccountWithAdmin } from "../src/team/accounts.js";
import { Browser as HttpBrowser, signedInBrowser } from "../test/helpers/app.js";
import { enableAuthApp } from "../test/helpers/auth-app.js";
import {
  adoptCookies,
  authenticatorCode,
  launchChromium,
  readQrCode,
  screenshot,
  sessionStatus,
  startE2eServer,
  type E2eServer,
} from "./helpers.js";

/**
 * The Account Admin side of the seed, in a real browser (Debian chromium) against a real Latchkey server on SQLite:
 * an admin without the auth app finds "Enable Auth App" unavailable with the reason; invites a member; sets up the
 * auth app (Edit your settings → Manage → Enable); turns the requirement on from Settings → Account Settings →
 * Security. The member, already signed in, is sent to set it up on their next click and can reach nothing else until
 * they finish; a member who signs in fresh goes from the email link straight into setup. The Audit log shows it all;
 * the Team Members page shows each member's method and has no per-member switch. Everything is found by its visible
 * label or name; the only thing the test reaches into is the server's clock, which stands in for the phones' clocks.
 *
 * Each step is a team of its own (a new account, admin and members), brought to where the step starts by its own
 * setup over HTTP (the same routes, without a browser: `theStorySoFar`), so one step failing does not fail the next.
 */
describe("Require auth app for all team members, in a browser", () => {
  let server: E2eServer;
  let browser: Browser;
  const contexts: BrowserContext[] = [];

  interface Person {
    name: string;
    email: string;
    password: string;
  }
  const accountName = "Apollo Guidance";
  let teams = 0;
  // This step's team: new addresses for each step.
  let admin: Person = { name: "Margaret Hamilton", email: "margaret@example.com", password: "priority displays saved apollo 11" };
  let katherine: Person = { name: "Katherine Johnson", email: "katherine@example.com", password: "trajectories for friendship seven" };
  let dorothy: Person = { name: "Dorothy Vaughan", email: "dorothy@example.com", password: "fortran for the west computers" };
  beforeEach(() => {
    teams += 1;
    admin = { ...admin, email: `margaret-${teams}@example.com` };
    katherine = { ...katherine, email: `katherine-${teams}@example.com` };
    dorothy = { ...dorothy, email: `dorothy-${teams}@example.com` };
  });

  beforeAll(async () => {
    server = await startE2eServer();
    browser = await launchChromium();
  });

  afterAll(async () => {
    for (const context of contexts) await context.close().catch(() => undefined);
    await browser?.close();
    await server?.close();
  });

  /** A fresh browser profile: its own cookies, nothing shared with any other. */
  async function newPage(): Promise<{ context: BrowserContext; page: Page }> {
    const context = await browser.newContext({ baseURL: server.baseUrl, viewport: { width: 1100, height: 800 }, colorScheme: "light" });
    contexts.push(context);
    return { context, page: await context.newPage() };
  }

  function path(page: Page): string {
    return new URL(page.url()).pathname;
  }

  async function mainText(page: Page): Promise<string> {
    return page.getByRole("main").innerText();
  }

  /** The newest message to `to` whose subject contains `subject`, or undefined. */
  function lastMail(to: string, subject: string): { subject: string; text: string } | undefined {
    return [...server.mail.sent].reverse().find((m) => m.to === to && m.subject.includes(subject));
  }

  /** People take a while between clicks; the server's clock would otherwise stand still and every event share one time. */
  function later(seconds = 7): void {
    server.clock.advanceSeconds(seconds);
  }

  /** Opens the invitation from the email, chooses a name and password; ends on the sign-in page. */
  async function acceptInvitation(page: Page, person: Person): Promise<void> {
    later(20);
    expect(lastMail(person.email, `invited to ${accountName}`), `invitation email to ${person.email}`).toBeDefined();
    await page.goto(server.mail.lastLink(person.email));
    await page.getByRole("heading", { name: `Join ${accountName}` }).waitFor();
    await page.getByLabel("Name").fill(person.name);
    await page.getByLabel("Password", { exact: true }).fill(person.password);
    await page.getByRole("button", { name: "Set password and join" }).click();
    await page.getByRole("heading", { name: "Sign in to Latchkey" }).waitFor();
  }

  /** Email + Password, "Check your email", then the emailed link in the same browser. Leaves the page wherever the link led. */
  async function signInWithEmailLink(page: Page, person: Person): Promise<void> {
    later();
    const before = server.mail.count(person.email);
    await page.goto("/login");
    await page.getByLabel("Email").fill(person.email);
    await page.getByLabel("Password").fill(person.password);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Check your email" }).waitFor();
    expect(server.mail.count(person.email)).toBe(before + 1);
    later(15);
    await page.goto(server.mail.lastLink(person.email));
    await page.waitForLoadState();
  }

  async function expectHome(page: Page, person: Person): Promise<void> {
    await page.getByRole("heading", { name: `Welcome, ${person.name}` }).waitFor();
    expect(path(page)).toBe("/");
  }

  /** Settings → Account Settings → one of its pages, by the links a person clicks. */
  async function openSettings(page: Page, section: "Team Members" | "Security" | "Audit log"): Promise<void> {
    later();
    await page.getByRole("link", { name: "Settings", exact: true }).click();
    await page.getByRole("heading", { name: "Account Settings" }).waitFor();
    await page.getByRole("main").getByRole("link", { name: section, exact: true }).click();
    await page.getByRole("heading", { name: section, level: 1 }).waitFor();
  }

  function memberRow(page: Page, email: string) {
    return page.getByRole("row").filter({ hasText: email });
  }

  /** The cells of a member's row, by the table's column headers. */
  async function memberCells(page: Page, email: string): Promise<Record<string, string>> {
    const headers = (await page.getByRole("columnheader").allInnerTexts()).map((h) => h.trim());
    const cells = (await memberRow(page, email).getByRole("cell").allInnerTexts()).map((c) => c.trim());
    expect(cells.length, `one row for ${email}`).toBe(headers.length);
    return Object.fromEntries(headers.map((h, i) => [h, cells[i] ?? ""]));
  }

  /**
   * From "Two-factor authentication" (the Manage page): "Enable: set up the auth app" → save the codes → Next → scan the QR code → a code
   * from the app → Verify → "Success!". `confirmPassword`: the sign-in is more than 10 minutes old, so Enable asks
   * for the password first.
   */
  async function setUpAuthApp(page: Page, person: Person, options: { confirmPassword: boolean; shot?: string }): Promise<void> {
    const { shot } = options;
    await page.getByRole("heading", { name: "Two-factor authentication", level: 1 }).waitFor();
    await page.getByRole("button", { name: "Enable: set up the auth app", exact: true }).click();
    await page.getByRole("heading", { name: /^(Confirm your password|Step 1 of 3: save your recovery codes)$/ }).waitFor();
    expect((await page.getByRole("heading", { level: 1 }).innerText()).trim()).toBe(
      options.confirmPassword ? "Confirm your password" : "Step 1 of 3: save your recovery codes",
    );
    if (options.confirmPassword) {
      if (shot) await screenshot(page, `${shot}-confirm-password`);
      await page.getByLabel("Password").fill(person.password);
      await page.getByRole("button", { name: "Confirm" }).click();
      await page.getByRole("status").filter({ hasText: "Password confirmed" }).waitFor();
      await page.getByRole("button", { name: "Enable: set up the auth app", exact: true }).click();
    }
    await page.getByRole("heading", { name: "Step 1 of 3: save your recovery codes" }).waitFor();
    expect(await page.locator("#recovery-codes li").count()).toBe(10);
    if (shot) await screenshot(page, `${shot}-recovery-codes`);
    await page.getByLabel("I have saved my recovery codes").check();
    await page.getByRole("button", { name: "Next" }).click();
    await page.getByRole("heading", { name: "Step 2 of 3: scan the QR code" }).waitFor();
    const uri = new URL(await readQrCode(page.getByRole("figure", { name: "QR code for your authenticator app" })));
    expect(uri.protocol).toBe("otpauth:");
    expect(decodeURIComponent(uri.pathname)).toBe(`/Latchkey:${person.email}`);
    const secret = uri.searchParams.get("secret") ?? "";
    expect(secret).toMatch(/^[A-Z2-7]{32}$/);
    later(20); // scanning with the phone
    await page.getByLabel("Authentication code").fill(authenticatorCode(secret, server.clock));
    await page.getByRole("button", { name: "Verify" }).click();
    await page.getByRole("heading", { name: "Success!" }).waitFor();
  }

  /** The page a member must set up the auth app on, and what it says. */
  async function expectForcedSetupPage(page: Page): Promise<void> {
    await page.getByRole("heading", { name: "Two-factor authentication", level: 1 }).waitFor();
    expect(path(page)).toBe("/settings/two-factor");
    expect(await mainText(page)).toContain(`${accountName} requires the auth app for every team member: set it up to continue.`);
    await page.getByRole("button", { name: "Enable: set up the auth app", exact: true }).waitFor();
  }

  /** Opens `person`'s invitation (the emailed one unless given) over HTTP and chooses their name and password. */
  async function acceptInvitationOverHttp(person: Person, invitationUrl = server.mail.lastLink(person.email)): Promise<void> {
    later(20);
    const path = new URL(invitationUrl).pathname;
    const accepted = await new HttpBrowser(server.app).submit(path, path, { name: person.name, password: person.password });
    if (accepted.statusCode !== 303) throw new Error(`accepting the invitation of ${person.email}: ${accepted.statusCode}`);
  }

  /** Password and emailed link over HTTP: a signed-in cookie jar. */
  async function signInOverHttp(person: Person): Promise<HttpBrowser> {
    later();
    const signedIn = await signedInBrowser(server, person);
    later(15);
    return signedIn;
  }

  /** The admin invites `person` as a member over the API; the person accepts. */
  async function inviteOverHttp(adminHttp: HttpBrowser, person: Person): Promise<void> {
    later();
    const invited = await adminHttp.request("POST", "/api/v1/team/invitations", { json: { email: person.email, role: "member" } });
    if (invited.statusCode !== 201) throw new Error(`inviting ${person.email}: ${invited.statusCode} ${invited.body}`);
    await acceptInvitationOverHttp(person);
  }

  /** The auth app set up over HTTP in `http`'s session, as a person would through the pages. */
  async function setUpAuthAppOverHttp(http: HttpBrowser, person: Person): Promise<void> {
    later();
    await enableAuthApp(server, person, http);
    later(20);
  }

  /** Step 3 over HTTP: the admin sets up the auth app, then requires it. */
  async function requireAuthAppOverHttp(adminHttp: HttpBrowser): Promise<void> {
    await setUpAuthAppOverHttp(adminHttp, admin);
    later();
    const required = await adminHttp.request("PUT", "/api/v1/policy", { json: { policy: "auth_app_required" } });
    if (required.statusCode !== 200) throw new Error(`requiring the auth app: ${required.statusCode} ${required.body}`);
  }

  /**
   * What the steps before `step` did, over HTTP, for this step's team: 1. the account and its admin (the invitation,
   * then signed in); 2. Katherine invited, accepted and signed in; 3. the admin's auth app, then the policy required;
   * 4. Katherine sets it up; 5. Dorothy invited, signed in fresh, and set up. Returns the signed-in cookie jars.
   */
  async function theStorySoFar(step: 2 | 3 | 5 | 6): Promise<{ adminHttp: HttpBrowser; katherineHttp: HttpBrowser | undefined }> {
    const created = await createAccountWithAdmin(server.ctx, { name: accountName, adminEmail: admin.email });
    if (!created.ok) throw new Error(created.message);
    await acceptInvitationOverHttp(admin, created.value.invitationUrl);
    const adminHttp = await signInOverHttp(admin);
    if (step === 2) return { adminHttp, katherineHttp: undefined };
    await inviteOverHttp(adminHttp, katherine);
    const katherineHttp = await signInOverHttp(katherine);
    if (step === 3) return { adminHttp, katherineHttp };
    await requireAuthAppOverHttp(adminHttp);
    if (step === 5) return { adminHttp, katherineHttp };
    await setUpAuthAppOverHttp(katherineHttp, katherine);
    await inviteOverHttp(adminHttp, dorothy);
    await setUpAuthAppOverHttp(await signInOverHttp(dorothy), dorothy);
    return { adminHttp, katherineHttp };
  }

  /** A browser tab holding the session of `http`, on the home page. */
  async function tabSignedInAs(http: HttpBrowser): Promise<{ context: BrowserContext; page: Page }> {
    const tab = await newPage();
    await adoptCookies(tab.context, http, server.baseUrl);
    await tab.page.goto("/");
    return tab;
  }

  it("1. an admin without the auth app finds Enable Auth App disabled, with the reason and a link to set it up", async () => {
    const created = await createAccountWithAdmin(server.ctx, { name: accountName, adminEmail: admin.email });
    if (!created.ok) throw new Error(created.message);
    const { page, context } = await newPage();
    await page.goto(created.value.invitationUrl);
    await page.getByLabel("Name").fill(admin.name);
    await page.getByLabel("Password", { exact: true }).fill(admin.password);
    await page.getByRole("button", { name: "Set password and join" }).click();
    await page.getByRole("heading", { name: "Sign in to Latchkey" }).waitFor();
    await signInWithEmailLink(page, admin);
    await expectHome(page, admin);
    expect((await sessionStatus(context, server.baseUrl)).body).toMatchObject({ role: "admin", twoFactor: { method: "email_link" } });

    await openSettings(page, "Security");
    expect(path(page)).toBe("/settings/security");
    await page.getByRole("heading", { name: "Require auth app for all team members" }).waitFor();
    const enable = page.getByRole("button", { name: "Enable Auth App" });
    expect(await enable.isDisabled()).toBe(true);
    // The reason is tied to the control, so a screen reader reads it with the button.
    const reason = await enable.evaluate(
      (button) => document.getElementById(button.getAttribute("aria-describedby") ?? "")?.textContent ?? "",
    );
    expect(reason).toContain("set up the auth app on your own login first");
    const text = await mainText(page);
    // The page says plainly that email is the weaker second factor.
    expect(text).toContain("NIST SP 800-63B does not accept email as a second factor");
    await screenshot(page, "team-policy-01-security-disabled");

    // The link in the reason leads to the setup.
    await page.getByRole("link", { name: "Set up your auth app" }).click();
    await page.getByRole("heading", { name: "Two-factor authentication", level: 1 }).waitFor();
    expect(path(page)).toBe("/settings/two-factor");
    await page.getByRole("button", { name: "Enable: set up the auth app", exact: true }).waitFor();
    // Not yet: the admin invites a member first.
  });

  it("2. the admin invites a member from Team Members; the member accepts, signs in with the email link, and shows as Email link", async () => {
    const { page } = await tabSignedInAs((await theStorySoFar(2)).adminHttp);
    await openSettings(page, "Team Members");
    await page.getByLabel("Email", { exact: true }).fill(katherine.email);
    await page.getByLabel("Role", { exact: true }).selectOption({ label: "Member" });
    await page.getByRole("button", { name: "Send invitation" }).click();
    await page.getByRole("status").filter({ hasText: "Invitation sent." }).waitFor();
    // Invited, and until when: the invitation's state is its status (it has no sign-in yet).
    const invited = await memberCells(page, katherine.email);
    expect(invited).toMatchObject({ Role: "Member", "Last sign-in": "" });
    expect(invited["Status"]).toMatch(/^Invited\s+expires \d{4}-\d{2}-\d{2}\s+\d{2}:\d{2} UTC$/);

    const katherineTab = await newPage();
    await acceptInvitation(katherineTab.page, katherine);
    await signInWithEmailLink(katherineTab.page, katherine);
    await expectHome(katherineTab.page, katherine);
    expect((await sessionStatus(katherineTab.context, server.baseUrl)).body).toMatchObject({
      user: { email: katherine.email },
      role: "member",
      twoFactor: { method: "email_link" },
    });

    await page.reload();
    const cells = await memberCells(page, katherine.email);
    expect(cells).toMatchObject({ Name: katherine.name, "Two-factor authentication": "Email link", Status: "Active" });
    // An active member's role is a control the admin can change (the 2FA method is not).
    expect(await page.getByLabel(`Role of ${katherine.email}`).inputValue()).toBe("member");
    expect(cells["Last sign-in"]).toMatch(/^\d{4}-\d{2}-\d{2}\s+\d{2}:\d{2} UTC$/);
    expect(await memberCells(page, admin.email)).toMatchObject({ "Two-factor authentication": "Email link", Status: "Active" });
    await screenshot(page, "team-policy-02-team-members-email-link");
  });

  it("3. the admin sets up the auth app, returns to Security, sees how many members it affects, and clicks Enable Auth App", async () => {
    const { page, context } = await tabSignedInAs((await theStorySoFar(3)).adminHttp);
    await openSettings(page, "Team Members");
    await page.getByRole("link", { name: "Edit your settings" }).click();
    await page.getByRole("heading", { name: "Your settings" }).waitFor();
    await page.getByRole("link", { name: "Manage" }).click();
    await setUpAuthApp(page, admin, { confirmPassword: false });
    expect((await sessionStatus(context, server.baseUrl)).body).toMatchObject({ twoFactor: { method: "auth_app" } });

    await openSettings(page, "Security");
    const enable = page.getByRole("button", { name: "Enable Auth App" });
    expect(await enable.isEnabled()).toBe(true);
    const before = await mainText(page);
    expect(before).not.toContain("Unavailable");
    // Katherine is the one member without it; nobody signs in with SSO.
    expect(before).toContain("Turning this on sends 1 member without an auth app to set one up on their next request");
    expect(before).toContain("0 SSO members are exempt.");
    await screenshot(page, "team-policy-03-security-ready");

    later();
    await enable.click();
    await page.getByRole("status").filter({ hasText: "The auth app is now required." }).waitFor();
    expect(path(page)).toBe("/settings/security");
    const after = await mainText(page);
    expect(after).toContain("On.");
    expect(after).toContain("1 of them still has to set it up and is sent to do so on their next request.");
    await page.getByRole("button", { name: "Stop requiring the auth app" }).waitFor();
    await screenshot(page, "team-policy-04-security-enabled");
    // The member is told by email; the admin, who has it already, is not.
    expect(lastMail(katherine.email, `${accountName} now requires an authenticator app`)).toBeDefined();
    expect(lastMail(admin.email, "now requires an authenticator app")).toBeUndefined();
  });

  it("4. the member, already signed in, lands on setup at the next click, can reach nothing else, sets it up, and carries on", async () => {
    // Katherine's tab shows the home page from before the admin required the auth app.
    const story = await theStorySoFar(3);
    const { page, context } = await tabSignedInAs(story.katherineHttp!);
    await page.getByRole("heading", { name: `Welcome, ${katherine.name}` }).waitFor();
    await requireAuthAppOverHttp(story.adminHttp);
    // The member's page is still the home page from before the change. Eleven minutes later they click Settings.
    expect(path(page)).toBe("/");
    server.clock.advanceSeconds(11 * 60);
    await page.getByRole("link", { name: "Settings", exact: true }).click();
    await expectForcedSetupPage(page);
    await screenshot(page, "team-policy-05-forced-setup");

    // Nothing else is reachable: pages redirect back to setup, the API and forward-auth refuse with the reason.
    for (const elsewhere of ["/", "/settings", "/settings/team", "/settings/profile", "/settings/security", "/settings/audit"]) {
      await page.goto(elsewhere);
      await expectForcedSetupPage(page);
    }
    const session = await sessionStatus(context, server.baseUrl);
    expect(session.status).toBe(200);
    expect(session.body).toMatchObject({ twoFactor: { method: "email_link", setupRequired: true } });
    const verify = await context.request.get(`${server.baseUrl}/api/v1/verify`, { failOnStatusCode: false });
    expect(verify.status()).toBe(403);
    expect(await verify.json()).toMatchObject({ error: "two_factor_setup_required", message: expect.stringContaining(accountName) });
    const members = await context.request.get(`${server.baseUrl}/api/v1/team/members`, { failOnStatusCode: false });
    expect(members.status()).toBe(403);
    // Help stays reachable, and comes back to setup.
    await page.goto("/help");
    await page.getByRole("heading", { name: "Two-factor authentication help" }).waitFor();
    await page.getByRole("link", { name: "Back" }).click();
    await expectForcedSetupPage(page);

    // The sign-in is eleven minutes old: setting up asks for the password first, which stays reachable.
    await setUpAuthApp(page, katherine, { confirmPassword: true, shot: "team-policy-06-member" });
    await page.getByRole("link", { name: "Continue" }).click();
    await expectHome(page, katherine);
    expect((await sessionStatus(context, server.baseUrl)).body).toMatchObject({ twoFactor: { method: "auth_app" } });
    // The same session carries on: Settings → Team Members works (read-only for a member).
    await openSettings(page, "Team Members");
    expect(path(page)).toBe("/settings/team");
    expect(await page.getByRole("button", { name: "Send invitation" }).count()).toBe(0);
    const verifyAfter = await context.request.get(`${server.baseUrl}/api/v1/verify`, { failOnStatusCode: false });
    expect(verifyAfter.status()).toBe(200);
  });

  it("5. a member who signs in fresh goes from the email link straight into setup", async () => {
    const { page } = await tabSignedInAs((await theStorySoFar(5)).adminHttp);
    await openSettings(page, "Team Members");
    await page.getByLabel("Email", { exact: true }).fill(dorothy.email);
    await page.getByLabel("Role", { exact: true }).selectOption({ label: "Member" });
    await page.getByRole("button", { name: "Send invitation" }).click();
    await page.getByRole("status").filter({ hasText: "Invitation sent." }).waitFor();

    const dorothyTab = await newPage();
    await acceptInvitation(dorothyTab.page, dorothy);
    await signInWithEmailLink(dorothyTab.page, dorothy);
    await expectForcedSetupPage(dorothyTab.page);
    await screenshot(dorothyTab.page, "team-policy-07-fresh-sign-in-setup");
    await dorothyTab.page.goto("/");
    await expectForcedSetupPage(dorothyTab.page);

    // Just signed in: no password to confirm.
    later(30);
    await setUpAuthApp(dorothyTab.page, dorothy, { confirmPassword: false });
    await dorothyTab.page.getByRole("link", { name: "Continue" }).click();
    await expectHome(dorothyTab.page, dorothy);
    expect((await sessionStatus(dorothyTab.context, server.baseUrl)).body).toMatchObject({
      role: "member",
      twoFactor: { method: "auth_app" },
    });
  });

  it("6. the admin's Audit log lists the policy change, the invitations and the sign-ins; the filters work", async () => {
    const { page } = await tabSignedInAs((await theStorySoFar(6)).adminHttp);
    await openSettings(page, "Audit log");
    expect(path(page)).toBe("/settings/audit");
    await screenshot(page, "team-policy-08-audit-log");

    /** Each listed event, newest first: its type, the person it is about, and who did it when that was someone else. */
    async function events(): Promise<{ type: string; who: string; by: string }[]> {
      const headers = (await page.getByRole("columnheader").allInnerTexts()).map((h) => h.trim());
      expect(headers.slice(0, 3)).toEqual(["When (UTC)", "Event", "Who"]);
      const rows = page.getByRole("main").getByRole("row");
      const out: { type: string; who: string; by: string }[] = [];
      for (const row of await rows.all()) {
        const cells = await row.getByRole("cell").allInnerTexts();
        if (cells.length === 0) continue; // header
        const [who = "", ...rest] = cells[2]!
          .trim()
          .split("\n")
          .map((line) => line.trim());
        const by = rest.find((line) => line.startsWith("by "))?.slice(3) ?? "";
        out.push({ type: cells[1]!.trim(), who, by });
      }
      return out;
    }

    const all = await events();
    expect(all).toContainEqual({ type: "policy.changed", who: admin.email, by: "" });
    for (const member of [katherine, dorothy]) {
      expect(all).toContainEqual({ type: "invitation.created", who: member.email, by: admin.email });
      expect(all).toContainEqual(expect.objectContaining({ type: "invitation.accepted", who: member.email }));
      expect(all).toContainEqual(expect.objectContaining({ type: "sign_in.succeeded", who: member.email }));
      expect(all).toContainEqual(expect.objectContaining({ type: "two_factor.auth_app_enabled", who: member.email }));
    }
    expect(all).toContainEqual(expect.objectContaining({ type: "sign_in.succeeded", who: admin.email }));
    // Newest first: Dorothy joined after the policy change, Katherine was invited before it.
    const at = (type: string, who: string): number => all.findIndex((e) => e.type === type && e.who === who);
    expect(at("sign_in.succeeded", dorothy.email)).toBeLessThan(at("policy.changed", admin.email));
    expect(at("policy.changed", admin.email)).toBeLessThan(at("invitation.created", katherine.email));
    const policyRow = page.getByRole("row").filter({ hasText: "policy.changed" });
    expect(await policyRow.innerText()).toContain("to: auth_app_required");

    // Filter by an exact event.
    await page.getByLabel("Event").fill("policy.changed");
    await page.getByRole("button", { name: "Filter" }).click();
    await page.waitForURL(/event=policy\.changed/);
    expect(await events()).toEqual([{ type: "policy.changed", who: admin.email, by: "" }]);
    await screenshot(page, "team-policy-09-audit-log-policy");

    // Filter by a family of events ("sign_in." as the field's placeholder suggests).
    await page.getByLabel("Event").fill("sign_in.");
    await page.getByRole("button", { name: "Filter" }).click();
    await page.waitForURL(/event=sign_in\./);
    const signIns = await events();
    expect(signIns.length).toBeGreaterThanOrEqual(3);
    for (const e of signIns) expect(e.type.startsWith("sign_in.")).toBe(true);
    for (const person of [admin, katherine, dorothy])
      expect(signIns).toContainEqual(expect.objectContaining({ type: "sign_in.succeeded", who: person.email }));

    // Filter by member as well: only Dorothy's sign-in events.
    await page.getByLabel("Member").selectOption({ label: dorothy.email });
    await page.getByRole("button", { name: "Filter" }).click();
    await page.waitForURL(/member=[0-9a-f]{32}/);
    const hers = await events();
    expect(hers.length).toBeGreaterThanOrEqual(1);
    for (const e of hers) expect(e).toMatchObject({ who: dorothy.email, type: expect.stringMatching(/^sign_in\./) });

    // And the invitations alone.
    await page.getByLabel("Member").selectOption({ label: "Everyone" });
    await page.getByLabel("Event").fill("invitation.created");
    await page.getByRole("button", { name: "Filter" }).click();
    await page.waitForURL(/event=invitation\.created/);
    const invitations = await events();
    // The admin's own invitation came with the account; the two members were invited by the admin.
    expect(invitations.map((e) => e.who).sort()).toEqual([dorothy.email, katherine.email, admin.email].sort());
    for (const e of invitations) expect(e.by).toBe(e.who === admin.email ? "" : admin.email);
  });

  it("7. Team Members shows everyone's method as Auth app, and there is no per-member 2FA switch", async () => {
    const { page } = await tabSignedInAs((await theStorySoFar(6)).adminHttp);
    await openSettings(page, "Team Members");
    for (const person of [admin, katherine, dorothy]) {
      expect(await memberCells(page, person.email)).toMatchObject({
        Name: person.email === admin.email ? `${person.name} (you)` : person.name,
        "Two-factor authentication": "Auth app",
        Status: "Active",
      });
    }
    // The admin can change roles and remove members, but nothing in a member's row turns two-factor on or off.
    for (const person of [admin, katherine, dorothy]) {
      const row = memberRow(page, person.email);
      expect(await row.getByRole("checkbox").count()).toBe(0);
      expect(await row.getByRole("switch").count()).toBe(0);
      const controls = [
        ...(await row.getByRole("button").allInnerTexts()),
        ...(await row.getByRole("link").allInnerTexts()),
        ...(await row.getByRole("combobox").allInnerTexts()),
      ];
      for (const control of controls) expect(control).not.toMatch(/two-factor|2fa|auth app|email link|disable|enable|turn (on|off)|reset/i);
    }
    expect(await mainText(page)).toContain("there is no per-member switch");
    await screenshot(page, "team-policy-10-team-members-auth-app");
  });
});
