import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { seedMember, signedInBrowser } from "../test/helpers/app.js";
import { enableAuthApp, STEP_SECONDS } from "../test/helpers/auth-app.js";
import { adoptCookies, authenticatorCode, launchChromium, screenshot, sessionStatus, startE2eServer, type E2eServer } from "./helpers.js";

const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

/**
 * "Forgot your password?" in a real browser (Debian chromium) against a real Latchkey server on SQLite: from the
 * sign-in page to the emailed link, opened in another browser (it works in any), to a new password; the second factor
 * is still asked (an auth-app user enters a code on the same form), nobody is signed in by the reset, the sessions from
 * before end, and the person then signs in as usual. Every page of the flow passes axe-core's WCAG 2.x A/AA rules.
 */
describe("forgot password in a browser", () => {
  let server: E2eServer;
  let browser: Browser;
  const contexts: BrowserContext[] = [];

  let people = 0;
  let person = { name: "Katherine Johnson", email: "katherine@example.com", password: "trajectories for friendship 7" };
  const newPassword = "a brand new orbit of words";
  beforeEach(() => {
    people += 1;
    person = { ...person, email: `katherine-${people}@example.com` };
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

  async function newPage(): Promise<{ context: BrowserContext; page: Page }> {
    const context = await browser.newContext({ baseURL: server.baseUrl, viewport: { width: 900, height: 800 }, colorScheme: "light" });
    contexts.push(context);
    return { context, page: await context.newPage() };
  }

  /** axe-core's WCAG 2.0–2.2 A and AA rules on the page as it is: no violations. (Run through DevTools: the CSP allows no script.) */
  async function expectAccessible(page: Page, what: string): Promise<void> {
    await page.evaluate(axeSource);
    const { violations, passed } = await page.evaluate(async () => {
      type AxeResult = { violations: Array<{ id: string; nodes: unknown[] }>; passes: unknown[] };
      const axe = (window as unknown as { axe: { run: (o: unknown) => Promise<AxeResult> } }).axe;
      const result = await axe.run({ runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"] } });
      return { violations: result.violations.map((v) => `${v.id} (${v.nodes.length})`), passed: result.passes.length };
    });
    // Rules ran (a page of a form passes dozens), and none found anything.
    expect(passed, what).toBeGreaterThan(5);
    expect(violations, what).toEqual([]);
  }

  async function heading(page: Page): Promise<string> {
    return ((await page.getByRole("heading", { level: 1 }).textContent()) ?? "").trim();
  }

  /** From the sign-in page: "Forgot your password?", the address, the one answer; returns the emailed link. */
  async function askForLink(page: Page): Promise<string> {
    const before = server.mail.count(person.email);
    await page.goto("/login");
    await page.getByRole("link", { name: "Forgot your password?" }).click();
    expect(await heading(page)).toBe("Forgot your password?");
    await expectAccessible(page, "the request form");
    await page.getByLabel("Email").fill(person.email);
    await page.getByRole("button", { name: "Send reset link" }).click();
    await page.getByRole("heading", { name: "Check your email" }).waitFor();
    expect(await page.getByRole("status").innerText()).toContain("If an account uses this address, we sent a link");
    await expectAccessible(page, "the answer");
    await server.app.afterResponse.settled();
    expect(server.mail.count(person.email)).toBe(before + 1);
    return server.mail.lastLink(person.email);
  }

  async function expectSignInNotice(page: Page): Promise<void> {
    await page.getByRole("status").filter({ hasText: "Your new password is set" }).waitFor();
    expect(new URL(page.url()).pathname).toBe("/login");
  }

  it("an email-link user: the link opens in another browser, sets the new password, ends the old session; then sign-in as usual", async () => {
    await seedMember(server, { email: person.email, password: person.password, name: person.name });
    // Signed in before, in a browser of its own: that session must end.
    const before = await newPage();
    await adoptCookies(before.context, await signedInBrowser(server, person), server.baseUrl);
    expect((await sessionStatus(before.context, server.baseUrl)).status).toBe(200);

    const asking = await newPage();
    const link = await askForLink(asking.page);

    // Opened in a third browser: reset links are not bound to the one that asked.
    const { context, page } = await newPage();
    await page.goto(link);
    expect(await heading(page)).toBe("Choose a new password");
    expect(await page.getByLabel("Authentication code").count()).toBe(0);
    await expectAccessible(page, "the new-password form");
    await screenshot(page, "password-reset-email-link");

    // A common password is refused at the field, which takes the focus.
    await page.getByLabel("New password").fill("password123");
    await page.getByRole("button", { name: "Set new password" }).click();
    await page.getByText("one of the most common passwords").waitFor();
    expect(await page.evaluate(() => document.activeElement?.id)).toBe("f-password");
    expect(await page.getByLabel("New password").getAttribute("aria-invalid")).toBe("true");
    await expectAccessible(page, "the form with an error");

    await page.getByLabel("New password").fill(newPassword);
    await page.getByRole("button", { name: "Set new password" }).click();
    await expectSignInNotice(page);
    await expectAccessible(page, "the sign-in page after the reset");
    // Nobody was signed in by the reset, and the session from before has ended.
    expect((await sessionStatus(context, server.baseUrl)).status).toBe(401);
    expect((await sessionStatus(before.context, server.baseUrl)).status).toBe(401);
    expect(server.mail.last(person.email)?.subject).toBe("Latchkey: Your password was reset");
    // The link is spent: opened again, it says so and offers no form.
    await page.goto(link);
    expect(await heading(page)).toBe("This link was already used");
    expect(await page.locator("form").count()).toBe(0);

    // Sign in as usual: the new password, then the emailed link in this browser.
    await page.goto("/login");
    await page.getByLabel("Email").fill(person.email);
    await page.getByLabel("Password", { exact: true }).fill(newPassword);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Check your email" }).waitFor();
    await page.goto(server.mail.lastLink(person.email));
    await page.getByRole("heading", { name: `Welcome, ${person.name}` }).waitFor();
    expect((await sessionStatus(context, server.baseUrl)).status).toBe(200);
  });

  it("an auth-app user: the new password works only after a right code on the same form; old sessions end", async () => {
    const member = await seedMember(server, { email: person.email, password: person.password, name: person.name });
    const { browser: setUpIn, secret } = await enableAuthApp(server, member);
    // The confirming code's time step is spent: the phone shows the next one.
    server.clock.advanceSeconds(STEP_SECONDS);
    const before = await newPage();
    await adoptCookies(before.context, setUpIn, server.baseUrl);
    expect((await sessionStatus(before.context, server.baseUrl)).status).toBe(200);

    const { context, page } = await newPage();
    const link = await askForLink(page);
    await page.goto(link);
    expect(await heading(page)).toBe("Choose a new password");
    expect(await page.getByLabel("Authentication code").isVisible()).toBe(true);
    await expectAccessible(page, "the form with the code field");
    await screenshot(page, "password-reset-auth-app");

    // A wrong code: the password is not set, the code field has the focus and says why.
    const right = authenticatorCode(secret, server.clock);
    await page.getByLabel("New password").fill(newPassword);
    await page.getByLabel("Authentication code").fill(right === "000000" ? "111111" : "000000");
    await page.getByRole("button", { name: "Set new password" }).click();
    await page.getByText("That code is not right.").waitFor();
    expect(await page.evaluate(() => document.activeElement?.id)).toBe("f-code");
    await expectAccessible(page, "the form with a wrong code");
    const stillOld = await context.request.post(`${server.baseUrl}/api/v1/login`, {
      data: { email: person.email, password: newPassword },
      failOnStatusCode: false,
    });
    expect(stillOld.status()).toBe(401);
    expect((await sessionStatus(before.context, server.baseUrl)).status).toBe(200);

    // The right code: set, and every session from before ends.
    await page.getByLabel("New password").fill(newPassword);
    await page.getByLabel("Authentication code").fill(authenticatorCode(secret, server.clock));
    await page.getByRole("button", { name: "Set new password" }).click();
    await expectSignInNotice(page);
    expect((await sessionStatus(context, server.baseUrl)).status).toBe(401);
    expect((await sessionStatus(before.context, server.baseUrl)).status).toBe(401);

    // Sign in as usual: the new password, then a newer code from the app.
    server.clock.advanceSeconds(STEP_SECONDS);
    await page.getByLabel("Email").fill(person.email);
    await page.getByLabel("Password", { exact: true }).fill(newPassword);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByLabel("Authentication code").fill(authenticatorCode(secret, server.clock));
    await page.getByRole("button", { name: "Verify" }).click();
    await page.getByRole("heading", { name: `Welcome, ${person.name}` }).waitFor();
    expect((await sessionStatus(context, server.baseUrl)).status).toBe(200);
  });

  it("a recovery code on the same form instead of the app code (lost phone) sets the password and is used up", async () => {
    const member = await seedMember(server, { email: person.email, password: person.password, name: person.name });
    const { codes } = await enableAuthApp(server, member);
    const { page } = await newPage();
    await page.goto(await askForLink(page));
    await page.getByText("Lost your phone? Use a recovery code instead").click();
    await page.getByLabel("New password").fill(newPassword);
    await page.getByLabel("Recovery code").fill(codes[0]!);
    await expectAccessible(page, "the form with the recovery code open");
    await page.getByRole("button", { name: "Set new password" }).click();
    await expectSignInNotice(page);
    const used = await server.ctx.db
      .selectFrom("recovery_codes")
      .select("id")
      .where("user_id", "=", member.userId)
      .where("used_at", "is not", null)
      .execute();
    expect(used).toHaveLength(1);
  });
});
