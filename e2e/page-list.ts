import type { Page } from "playwright-core";
import { Browser as HttpBrowser, signedInBrowser } from "../test/helpers/app.js";
import { enableAuthApp } from "../test/helpers/auth-app.js";
import { adoptCookies } from "./helpers.js";
import { ACME, SSO_DOMAIN, type Person, type PersonaName, type World } from "./page-world.js";

/**
 * Every page people see, in each state it can be in: the list the accessibility and width checks
 * (e2e/pages.e2e.test.ts) and the README's screenshots (e2e/screenshots.ts) go through. A new page is one line:
 *
 *     { name: "sessions", as: "admin", path: "/settings/sessions", heading: "Where you are signed in" },
 *
 * `open` brings a page to a state a path alone does not reach (a form sent with a mistake, a step of a flow).
 */
export interface PageCase {
  /** What the page is, and its state. */
  name: string;
  /** Who looks: a fresh browser profile holding this persona's session (e2e/page-world.ts); a visitor when absent. */
  as?: PersonaName;
  /** The path to open (first, when there is also `open`). */
  path?: string;
  /** Steps from there to the state to check. */
  open?: (page: Page, world: World) => Promise<unknown>;
  /** The page's one h1: the check makes sure it looks at the page meant. */
  heading: string | RegExp;
  /** Part of the README's gallery: docs/screenshots/<screenshot>-desktop.png and -phone.png. */
  screenshot?: string;
}

async function fill(page: Page, label: string, value: string): Promise<void> {
  await page.getByLabel(label, { exact: true }).fill(value);
}

async function press(page: Page, button: string): Promise<void> {
  await page.getByRole("button", { name: button, exact: true }).click();
  await page.waitForLoadState();
}

/** A form on the page filled in (label → value, in order) and sent with its button: the `open` of a case. */
function submitted(values: Record<string, string>, button: string): (page: Page) => Promise<void> {
  return async (page) => {
    for (const [label, value] of Object.entries(values)) await fill(page, label, value);
    await press(page, button);
  };
}

/** The page's browser signed in as `http`'s session (for a person made by the case itself). */
async function holdSession(page: Page, world: World, http: HttpBrowser): Promise<void> {
  await adoptCookies(page.context(), http, world.server.baseUrl);
}

/** A fresh person of Acme Rockets, signed in (email link) in this page's browser, on the Manage page. */
async function onManagePage(page: Page, world: World): Promise<Person> {
  const person = await world.freshPerson();
  world.later();
  await holdSession(page, world, await signedInBrowser(world.server, person));
  await page.goto("/settings/two-factor");
  return person;
}

/** Step 1 of the auth-app setup: Manage → the setup button. */
async function onRecoveryCodesStep(page: Page, world: World): Promise<void> {
  await onManagePage(page, world);
  await page.getByRole("button", { name: /set up the auth app/i }).click();
  await page.getByRole("heading", { name: "Step 1 of 3: save your recovery codes" }).waitFor();
}

/** Step 2: the codes saved, the QR code. */
async function onScanStep(page: Page, world: World): Promise<void> {
  await onRecoveryCodesStep(page, world);
  await page.getByLabel("I have saved my recovery codes").check();
  await press(page, "Next");
}

/** A fresh person asks to change their address (over HTTP); the link mailed to the new address, or the notice's to the old. */
async function emailChangeLink(world: World, which: "new" | "old"): Promise<string> {
  const person = await world.freshPerson();
  const http = await signedInBrowser(world.server, person);
  const newEmail = `moved-${person.userId.slice(0, 8)}@globex.example`;
  const form = await http.get("/settings/email");
  const csrf = /name="_csrf" value="([^"]+)"/.exec(form.body)?.[1] ?? "";
  const asked = await http.request("POST", "/settings/email", { form: { _csrf: csrf, email: newEmail } });
  if (asked.statusCode !== 303) throw new Error(`email change: ${asked.statusCode} ${asked.body.slice(0, 200)}`);
  return world.server.mail.lastLink(which === "new" ? newEmail : person.email);
}

/** "Forgot your password?" for `email` (over HTTP); the link mailed to it. */
async function passwordResetLink(world: World, email: string): Promise<string> {
  const before = world.server.mail.count(email);
  const http = new HttpBrowser(world.server.app);
  await http.submit("/login/forgot", "/login/forgot", { email });
  // The email is sent once the answer has gone out (the same answer for any address).
  for (let tries = 0; tries < 50 && world.server.mail.count(email) === before; tries++) await new Promise((r) => setTimeout(r, 50));
  return world.server.mail.lastLink(email);
}

/** The password step typed into the browser's own form (where it goes next depends on the person). */
async function passwordStep(page: Page, person: { email: string; password: string }): Promise<void> {
  await page.goto("/login");
  await fill(page, "Email", person.email);
  await fill(page, "Password", person.password);
  await press(page, "Sign in");
}

export const PAGES: PageCase[] = [
  // Signed out: signing in.
  { name: "sign-in", path: "/login", heading: "Sign in to Latchkey", screenshot: "sign-in" },
  {
    name: "sign-in, wrong password",
    open: async (page, w) => passwordStep(page, { email: w.person("admin").email, password: "not the password at all" }),
    heading: "Sign in to Latchkey",
  },
  { name: "sign-in, signed out", path: "/login?notice=signed_out", heading: "Sign in to Latchkey" },
  {
    name: "check your email",
    open: async (page, w) => passwordStep(page, await w.freshPerson()),
    heading: "Check your email",
    screenshot: "check-email",
  },
  {
    name: "check your email, a new link asked for too soon",
    open: async (page, w) => {
      await passwordStep(page, await w.freshPerson());
      await press(page, "Send a new link");
    },
    heading: "Check your email",
  },
  {
    name: "sign-in link opened in another browser",
    open: async (page, w) => {
      const person = await w.freshPerson();
      await new HttpBrowser(w.server.app).signInWithPassword(person.email, person.password);
      await page.goto(w.server.mail.lastLink(person.email));
    },
    heading: "Open this in the browser where you started",
  },
  {
    name: "sign-in link already used",
    open: async (page, w) => {
      const person = await w.freshPerson();
      const http = new HttpBrowser(w.server.app);
      await http.signInWithPassword(person.email, person.password);
      const link = w.server.mail.lastLink(person.email);
      await http.get(link);
      await holdSession(page, w, new HttpBrowser(w.server.app));
      await page.goto(link);
    },
    heading: /This link was already used|Open this in the browser where you started/,
  },
  {
    name: "authentication code",
    open: async (page, w) => passwordStep(page, w.person("appMember")),
    heading: "Enter your authentication code",
  },
  {
    name: "authentication code, wrong code",
    open: async (page, w) => {
      await passwordStep(page, w.person("appMember"));
      await fill(page, "Authentication code", "000000");
      await press(page, "Verify");
    },
    heading: "Enter your authentication code",
  },
  {
    name: "recovery code",
    open: async (page, w) => {
      await passwordStep(page, w.person("appMember"));
      await page.getByRole("link", { name: "Use a recovery code" }).click();
    },
    heading: "Use a recovery code",
  },
  { name: "forgot your password", path: "/login/forgot", heading: "Forgot your password?" },
  {
    name: "forgot your password, not an address",
    path: "/login/forgot",
    open: submitted({ Email: "not an address" }, "Send reset link"),
    heading: "Forgot your password?",
  },
  {
    name: "forgot your password, link sent",
    path: "/login/forgot",
    open: submitted({ Email: "someone@acme.example" }, "Send reset link"),
    heading: "Check your email",
  },
  {
    name: "choose a new password (email link)",
    open: async (page, w) => page.goto(await passwordResetLink(w, (await w.freshPerson()).email)),
    heading: "Choose a new password",
  },
  {
    name: "choose a new password (auth app), a wrong code",
    open: async (page, w) => {
      await page.goto(await passwordResetLink(w, w.person("appMember").email));
      await fill(page, "New password", "a brand new passphrase here");
      await fill(page, "Authentication code", "000000");
      await press(page, "Set new password");
    },
    heading: "Choose a new password",
  },
  { name: "password reset link that does not work", path: `/login/reset/${"a".repeat(43)}`, heading: "This link does not work" },
  { name: "sign in with SSO", path: "/login/sso", heading: "Sign in with SSO" },
  {
    name: "sign in with SSO, no SSO for the domain",
    path: "/login/sso",
    open: submitted({ "Work email or domain": "nowhere.example" }, "Continue with SSO"),
    heading: /No single sign-on|Sign in with SSO/,
  },
  {
    name: "SSO hand-over to the identity provider",
    path: "/login/sso",
    open: async (page, w) => {
      // The provider answers the page's refresh with 204: the browser stays on the hand-over page.
      await page.route(`${w.idp.issuer}/**`, (route) => route.fulfill({ status: 204 }));
      await fill(page, "Work email or domain", SSO_DOMAIN);
      await press(page, "Continue with SSO");
    },
    heading: "Continue to your identity provider",
  },

  // Signed out: joining, first run, support, help, errors.
  {
    name: "invitation",
    open: async (page, w) => {
      const email = `invited-${Date.now()}@acme.example`;
      await (await w.session("admin")).request("POST", "/api/v1/team/invitations", { json: { email, role: "member" } });
      await page.goto(w.server.mail.lastLink(email));
    },
    heading: `Join ${ACME}`,
  },
  {
    name: "invitation, a common password",
    open: async (page, w) => {
      const email = `invited-${Date.now()}@acme.example`;
      await (await w.session("admin")).request("POST", "/api/v1/team/invitations", { json: { email, role: "member" } });
      await page.goto(w.server.mail.lastLink(email));
      await fill(page, "Name", "Mary Jackson");
      await fill(page, "Password", "password");
      await press(page, "Set password and join");
    },
    heading: `Join ${ACME}`,
  },
  {
    name: "invitation for an existing login",
    open: async (page, w) => {
      const email = w.person("appAdmin").email;
      await (await w.session("admin")).request("POST", "/api/v1/team/invitations", { json: { email, role: "member" } });
      await page.goto(w.server.mail.lastLink(email));
    },
    heading: `Join ${ACME}`,
  },
  { name: "invitation that does not work", path: `/invite/${"a".repeat(43)}`, heading: "This invitation does not work" },
  {
    name: "first-run setup",
    open: async (page, w) => page.goto((await w.emptyServer()).setupUrl),
    heading: "Set up Latchkey",
  },
  {
    name: "first-run setup, only the email wrong",
    open: async (page, w) => {
      await page.goto((await w.emptyServer()).setupUrl);
      await fill(page, "Account name", "Initech");
      await fill(page, "Your name", "Peter Gibbons");
      await fill(page, "Email", "peter at initech");
      await fill(page, "Password", "a long enough passphrase for this");
      await press(page, "Create account");
    },
    heading: "Set up Latchkey",
  },
  {
    name: "first-run setup, mistakes",
    open: async (page, w) => {
      await page.goto((await w.emptyServer()).setupUrl);
      await fill(page, "Email", "not an email");
      await press(page, "Create account");
    },
    heading: "Set up Latchkey",
  },
  { name: "support", path: "/support", heading: "Locked out? Ask support" },
  {
    name: "support, not an address",
    path: "/support",
    open: submitted({ Email: "someone at acme" }, "Send request"),
    heading: "Locked out? Ask support",
  },
  {
    name: "support, request sent",
    path: "/support",
    open: submitted({ Email: "someone@acme.example" }, "Send request"),
    heading: "Check your email",
  },
  {
    name: "support, confirm the request",
    open: async (page, w) => {
      const person = await w.freshPerson();
      const http = new HttpBrowser(w.server.app);
      await http.submit("/support", "/support", { email: person.email, message: "Lost my phone" });
      // The confirmation is sent once the answer has gone out.
      for (let tries = 0; tries < 50 && w.server.mail.count(person.email) === 0; tries++) await new Promise((r) => setTimeout(r, 50));
      await page.goto(w.server.mail.lastLink(person.email));
    },
    heading: "Confirm your reset request",
  },
  { name: "help", path: "/help", heading: "Two-factor authentication help" },
  { name: "page not found", path: "/no-such-page", heading: "Page not found" },

  // Signed in: home and the account.
  { name: "home", as: "admin", path: "/", heading: "Welcome, Margaret Hamilton", screenshot: "home" },
  {
    name: "home, few recovery codes left",
    open: async (page, w) => {
      const person = await w.freshPerson();
      w.later();
      const enabled = await enableAuthApp(w.server, person);
      w.later();
      // Eight of the ten codes used: what signing in with them would do, without eight sign-ins.
      const codes = await w.server.ctx.db.selectFrom("recovery_codes").select("id").where("user_id", "=", person.userId).limit(8).execute();
      for (const code of codes) {
        await w.server.ctx.db.updateTable("recovery_codes").set({ used_at: w.server.clock.now() }).where("id", "=", code.id).execute();
      }
      await holdSession(page, w, enabled.browser);
      await page.goto("/");
    },
    heading: "Welcome, Mary Jackson",
  },
  { name: "choose an account", as: "twoAccounts", path: "/accounts", heading: "Choose an account" },
  { name: "help, signed in", as: "member", path: "/help", heading: "Two-factor authentication help" },
  { name: "account settings (admin)", as: "admin", path: "/settings", heading: "Account Settings" },
  { name: "account settings (member)", as: "member", path: "/settings", heading: "Account Settings" },
  { name: "team members (admin)", as: "admin", path: "/settings/team", heading: "Team Members", screenshot: "team-members" },
  { name: "team members (member)", as: "member", path: "/settings/team", heading: "Team Members" },
  {
    name: "team members, a later page of a long list",
    as: "admin",
    open: async (page, w) => {
      // One member a page for this one request: the pager as a long list shows it (Previous and Next).
      const { limits } = w.server.config;
      const size = limits.teamMembersPageSize;
      limits.teamMembersPageSize = 1;
      try {
        await page.goto("/settings/team?page=2");
      } finally {
        limits.teamMembersPageSize = size;
      }
      await page.getByRole("link", { name: "Next page" }).waitFor();
    },
    heading: "Team Members",
  },
  {
    name: "team members, an invitation to a bad address",
    as: "admin",
    path: "/settings/team",
    open: submitted({ Email: "not an address" }, "Send invitation"),
    heading: "Team Members",
  },
  {
    name: "remove a member",
    as: "admin",
    open: async (page, w) => page.goto(`/settings/team/members/${w.person("member").userId}/remove`),
    heading: "Remove Katherine Johnson?",
  },
  { name: "security, unavailable without the auth app", as: "admin", path: "/settings/security", heading: "Security" },
  {
    name: "security, ready to require the auth app",
    as: "appAdmin",
    path: "/settings/security",
    heading: "Security",
    screenshot: "security",
  },
  { name: "security, auth app required", as: "policyAdmin", path: "/settings/security", heading: "Security" },
  { name: "audit log", as: "admin", path: "/settings/audit", heading: "Audit log", screenshot: "audit-log" },
  { name: "audit log, nothing matches", as: "admin", path: "/settings/audit?event=nothing.here", heading: "Audit log" },

  // Signed in: your own settings and two-factor authentication.
  { name: "your settings", as: "admin", path: "/settings/profile", heading: "Your settings" },
  { name: "your settings, auth app", as: "appAdmin", path: "/settings/profile", heading: "Your settings" },
  { name: "change password", as: "admin", path: "/settings/password", heading: "Change password" },
  {
    name: "change password, wrong current password",
    as: "admin",
    path: "/settings/password",
    open: submitted({ "Current password": "not my password", "New password": "a brand new passphrase here" }, "Change password"),
    heading: "Change password",
  },
  { name: "change email address", as: "admin", path: "/settings/email", heading: "Change email address" },
  {
    name: "change email address, not an address",
    as: "admin",
    path: "/settings/email",
    open: submitted({ "New email address": "margaret at acme" }, "Send confirmation link"),
    heading: "Change email address",
  },
  {
    name: "change email address, a change waiting",
    open: async (page, w) => {
      await holdSession(page, w, await signedInBrowser(w.server, await w.freshPerson()));
      await page.goto("/settings/email");
      await fill(page, "New email address", `moved-${Date.now()}@globex.example`);
      await press(page, "Send confirmation link");
    },
    heading: "Change email address",
  },
  {
    name: "email change: the link to the new address",
    open: async (page, w) => page.goto(await emailChangeLink(w, "new")),
    heading: "Confirm your new email address",
  },
  {
    name: "email change: the link to the old address",
    open: async (page, w) => page.goto(await emailChangeLink(w, "old")),
    heading: "Stop the change of your email address?",
  },
  {
    name: "where you're signed in",
    open: async (page, w) => {
      const person = await w.freshPerson();
      w.later();
      const here = await signedInBrowser(w.server, person);
      w.later();
      await signedInBrowser(w.server, person);
      await holdSession(page, w, here);
      await page.goto("/settings/sessions");
    },
    heading: "Where you're signed in",
  },
  {
    name: "two-factor authentication (email link)",
    as: "admin",
    path: "/settings/two-factor",
    heading: "Two-factor authentication",
    screenshot: "two-factor",
  },
  { name: "two-factor authentication (auth app)", as: "appAdmin", path: "/settings/two-factor", heading: "Two-factor authentication" },
  { name: "two-factor authentication, required by the account", as: "forcedMember", path: "/", heading: "Two-factor authentication" },
  {
    name: "confirm your password",
    open: async (page, w) => {
      const person = await onManagePage(page, w);
      // The sign-in is older than the fresh-proof window (10 minutes), without moving everyone's clock.
      const stale = w.server.clock.now() - 11 * 60 * 1000;
      await w.server.ctx.db.updateTable("sessions").set({ fresh_proof_at: stale }).where("user_id", "=", person.userId).execute();
      await page.getByRole("button", { name: /set up the auth app/i }).click();
    },
    heading: "Confirm your password",
  },
  {
    name: "auth app setup, step 1: recovery codes",
    open: onRecoveryCodesStep,
    heading: "Step 1 of 3: save your recovery codes",
    screenshot: "recovery-codes",
  },
  { name: "auth app setup, step 2: QR code", open: onScanStep, heading: "Step 2 of 3: scan the QR code", screenshot: "scan-qr-code" },
  {
    name: "auth app setup, step 2: a wrong code",
    open: async (page, w) => {
      await onScanStep(page, w);
      await fill(page, "Authentication code", "000000");
      await press(page, "Verify");
    },
    heading: "Step 2 of 3: scan the QR code",
  },
  {
    name: "new recovery codes",
    open: async (page, w) => {
      const person = await w.freshPerson();
      w.later();
      const enabled = await enableAuthApp(w.server, person);
      w.later();
      await holdSession(page, w, enabled.browser);
      await page.goto("/settings/two-factor");
      await press(page, "Generate new recovery codes");
    },
    heading: "Your new recovery codes",
  },
  {
    name: "recovery codes, print view",
    open: async (page, w) => {
      const person = await w.freshPerson();
      w.later();
      const enabled = await enableAuthApp(w.server, person);
      w.later();
      const manage = await enabled.browser.get("/settings/two-factor");
      const csrf = /name="_csrf" value="([^"]+)"/.exec(manage.body)?.[1] ?? "";
      await enabled.browser.request("POST", "/settings/two-factor/recovery-codes", { form: { _csrf: csrf } });
      await holdSession(page, w, enabled.browser);
      // The print view prints itself on load; Chromium has no printer here, so that does nothing.
      await page.goto("/settings/two-factor/recovery-codes/print");
    },
    heading: "Latchkey recovery codes",
  },

  // Signed in with single sign-on.
  { name: "home, signed in with SSO", as: "ssoMember", path: "/", heading: "Welcome, Barbara Liskov" },
  { name: "change password, signed in with SSO", as: "ssoMember", path: "/settings/password", heading: "Signed in with single sign-on" },

  // The OpenID Provider's pages.
  {
    name: "application sign-in: sign in again",
    as: "admin",
    open: async (page, w) => page.goto(w.authorizationPath({ prompt: "login" })),
    heading: "Sign in again",
  },
  {
    name: "application sign-in: on the way back",
    open: async (page, w) => {
      const person = await w.freshPerson();
      await page.goto(w.authorizationPath());
      await page.getByRole("heading", { name: "Sign in to Latchkey" }).waitFor();
      // The page moves on at once to the provider's interaction, which redirects to the application: answered with
      // 204 here, the browser stays on it.
      await page.route(`${w.server.baseUrl}/oidc/interaction/**`, (route) => route.fulfill({ status: 204 }));
      await fill(page, "Email", person.email);
      await fill(page, "Password", person.password);
      await press(page, "Sign in");
      await page.getByRole("heading", { name: "Check your email" }).waitFor();
      await page.goto(w.server.mail.lastLink(person.email));
    },
    heading: "You are signed in",
  },
  { name: "application sign-in: a bad request", path: "/oidc/auth?client_id=nobody", heading: "This sign-in request did not work" },
  {
    name: "application sign-out: asked",
    as: "admin",
    open: async (page, w) => {
      // Signed in to the application first (the provider's own session, a cookie of this browser), which the sign-out
      // then ends: the authorization's redirects followed with the browser's cookies, up to the application's callback.
      let next = new URL(w.authorizationPath(), w.server.baseUrl).href;
      for (let hops = 0; hops < 10 && !next.startsWith(w.client.redirectUri); hops++) {
        const response = await page.request.get(next, { maxRedirects: 0 });
        next = new URL(response.headers()["location"] ?? w.client.redirectUri, next).href;
      }
      await page.goto("/oidc/session/end");
    },
    heading: "Sign out of Latchkey?",
  },
  { name: "application sign-out: done", path: "/oidc/session/end/success", heading: "You are signed out" },

  // The local outbox (development, mail without SMTP).
  { name: "outbox", path: "/dev/mail", heading: "Outbox" },
  {
    name: "outbox, a message",
    path: "/dev/mail",
    open: async (page) => {
      await page.getByRole("link", { name: "Your Latchkey sign-in link" }).click();
      await page.waitForLoadState();
    },
    heading: "Your Latchkey sign-in link",
  },
];
