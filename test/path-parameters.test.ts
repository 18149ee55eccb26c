import { afterAll, beforeAll, expect, it } from "vitest";
import type { LightMyRequestResponse } from "fastify";
import { routes } from "../src/paths.js";
import { newToken } from "../src/auth/tokens.js";
import { requestSupportReset } from "../src/team/support-recovery.js";
import { Browser, csrfFrom, seedMember, signedInBrowser, startTestApp, type TestApp } from "./helpers/app.js";
import { describeEachDialect } from "./helpers/dialects.js";

/**
 * The class behind review finding F1: no page may put request text into a URL. Every route that takes a path
 * parameter (read from the app itself, so a new one is covered without editing this file) is walked with hostile
 * values, signed in as an Account Admin and signed out. No answer may be a 5xx, and no page may draw a form aimed at
 * a route with parameters, or a link whose parameters are not ids or tokens.
 */

/** Raw path-segment text, as it would stand in a URL someone mails around. */
function hostileValues(memberId: string): string[] {
  return [
    `..%2F..%2Fsettings%2Fteam%2Fmembers%2F${memberId}%2Fremove`,
    "..%2F..%2F..%2Flogout",
    "%2F",
    "..",
    "%2e%2e",
    ".",
    "%00",
    "a%00b",
    "%0d%0aSet-Cookie:%20x=1",
    "%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E",
    "x".repeat(5000),
    "%C3%BC%E2%80%AE%E2%80%8B",
    "%E0%A4%A",
    "%",
    "99999999999999999999999999999999999999",
    "-1",
  ];
}

/** A route pattern as a regular expression over a decoded pathname. */
function patternRegex(pattern: string): RegExp {
  return new RegExp(`^${pattern.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace(/:[A-Za-z]+/g, "([^/]+)")}$`);
}

const paramRoutes = Object.values(routes).filter((p) => p.includes(":"));
const ID_OR_TOKEN = /^(?:[0-9a-f]{32}|[A-Za-z0-9_-]{43}|[A-Za-z0-9@._-]+\.eml)$/;

/** Every `action` and `href` of a page, resolved as a browser would against the page's URL. */
function targetsOf(response: LightMyRequestResponse, pageUrl: string): Array<{ kind: "action" | "href"; path: string }> {
  if (!String(response.headers["content-type"] ?? "").includes("text/html")) return [];
  const out: Array<{ kind: "action" | "href"; path: string }> = [];
  for (const match of response.body.matchAll(/\b(action|href)="([^"]*)"/g)) {
    const raw = match[2]!
      .replace(/&amp;/g, "&")
      .replace(/&#39;/g, "'")
      .replace(/&quot;/g, '"');
    if (raw.startsWith("#")) continue;
    const resolved = new URL(raw, new URL(pageUrl, "http://localhost:3000"));
    if (resolved.origin !== "http://localhost:3000") continue;
    out.push({ kind: match[1] as "action" | "href", path: resolved.pathname });
  }
  return out;
}

function assertSafePage(response: LightMyRequestResponse, pageUrl: string): void {
  expect(response.statusCode, `${pageUrl} → ${response.statusCode}`).toBeLessThan(500);
  for (const target of targetsOf(response, pageUrl)) {
    for (const pattern of paramRoutes) {
      const match = patternRegex(pattern).exec(target.path);
      if (!match) continue;
      // A hostile value never leads to a form aimed at a route with parameters…
      expect(target.kind, `${pageUrl} draws a form aimed at ${target.path}`).toBe("href");
      // …nor to a link whose parameters are anything but ids or tokens the server made.
      for (const value of match.slice(1)) expect(decodeURIComponent(value), `${pageUrl} links to ${target.path}`).toMatch(ID_OR_TOKEN);
    }
  }
}

describeEachDialect("path parameters on every page", (dialect) => {
  let t: TestApp;
  let admin: Browser;
  let anonymous: Browser;
  let memberId: string;
  let accountId: string;

  beforeAll(async () => {
    t = await startTestApp(dialect);
    const a = await seedMember(t, { role: "admin" });
    accountId = a.accountId;
    memberId = (await seedMember(t, { accountId })).userId;
    admin = await signedInBrowser(t, a);
    anonymous = new Browser(t.app);
    await anonymous.get("/login");
  });
  afterAll(async () => {
    await t?.close();
  });

  async function memberCount(): Promise<number> {
    return (await t.ctx.db.selectFrom("memberships").select("id").where("account_id", "=", accountId).execute()).length;
  }

  it("the walk covers every route with a parameter that the app registers", () => {
    const registered = t.app.latchkeyRoutes.map((r) => r.split(" ")[1]!).filter((p) => p.includes(":"));
    expect(registered.length).toBeGreaterThan(0);
    for (const path of registered) expect(paramRoutes, `${path} is not in src/paths.ts`).toContain(path);
  });

  it("no page answers a hostile path parameter with a 5xx, a form aimed elsewhere or an unchecked link", async () => {
    const registered = t.app.latchkeyRoutes.filter((r) => r.includes(":"));
    const before = await memberCount();
    for (const route of registered) {
      const [method, pattern] = route.split(" ") as [string, string];
      for (const value of hostileValues(memberId)) {
        const url = pattern.replace(/:[A-Za-z]+/g, value);
        for (const browser of [admin, anonymous]) {
          const page = await browser.get("/settings/team").catch(() => null);
          const csrf = page && /name="_csrf" value="([^"]+)"/.exec(page.body)?.[1];
          const response =
            method === "GET"
              ? await browser.get(url)
              : await browser.request(
                  method as "POST" | "PATCH" | "DELETE",
                  url,
                  method === "POST" && !pattern.startsWith("/api/")
                    ? { form: csrf ? { _csrf: csrf } : {} }
                    : { json: {}, headers: { origin: t.config.publicUrl.origin } },
                );
          assertSafePage(response, url);
        }
      }
    }
    expect(await memberCount()).toBe(before);
    // The admin is still signed in: no hostile value reached sign-out either.
    expect((await admin.get("/api/v1/session")).statusCode).toBe(200);
  });

  it("a support confirmation link crafted to aim at a member's removal shows no form and removes nobody", async () => {
    const crafted = `/support/confirm/..%2F..%2Fsettings%2Fteam%2Fmembers%2F${memberId}%2Fremove`;
    const page = await admin.get(crafted);
    // Whatever form the page draws, the admin presses its button, as the reviewer's admin did.
    for (const match of page.body.matchAll(/<form method="post" action="([^"]+)"/g)) {
      if (match[1] === "/logout") continue;
      const action = new URL(match[1]!.replace(/&amp;/g, "&"), `http://localhost:3000${crafted}`);
      await admin.request("POST", action.pathname, { form: { _csrf: csrfFrom(page.body) } });
    }
    expect((await t.ctx.db.selectFrom("memberships").select("id").where("user_id", "=", memberId).execute()).length).toBe(1);
    expect(page.statusCode).toBe(400);
    expect(page.body).toContain("This link does not work");
  });

  it("a support confirmation page is drawn only for a token that names a request, with a form aimed at itself", async () => {
    const unknown = await anonymous.get(`/support/confirm/${newToken()}`);
    expect(unknown.statusCode).toBe(400);
    expect(unknown.body).not.toContain('<form method="post" action="/support/confirm');

    const person = await seedMember(t, { accountId });
    t.mail.sent.length = 0;
    const requested = await requestSupportReset(t.ctx, { email: person.email, message: "", info: { ip: "127.0.0.1", userAgent: null } });
    if (!requested.ok) throw new Error(requested.message);
    await requested.value.afterAnswer();
    await t.deliverMail();
    const link = new URL(t.mail.lastLink(person.email));
    const page = await anonymous.get(link.pathname);
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain(`action="${link.pathname}"`);
    const confirmed = await anonymous.request("POST", link.pathname, { form: { _csrf: csrfFrom(page.body) } });
    expect(confirmed.statusCode).toBe(200);
    expect(confirmed.body).toContain("Request confirmed");
  });
});
