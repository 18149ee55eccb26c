import type { LightMyRequestResponse } from "fastify";
import { afterAll, beforeAll, expect, it, vi } from "vitest";
import { Browser, csrfFrom, startTestApp, type TestApp } from "./helpers/app.js";
import { describeEachDialect } from "./helpers/dialects.js";

const PRODUCT = "Acme Sign-in";

/** Error pages showed "Latchkey" whatever LATCHKEY_PRODUCT_NAME said (review issue 7). */
describeEachDialect("error pages under LATCHKEY_PRODUCT_NAME", (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(dialect, { env: { LATCHKEY_PRODUCT_NAME: PRODUCT } });
  });
  afterAll(async () => {
    await t?.close();
  });

  function expectBranded(response: LightMyRequestResponse, status: number): void {
    expect(response.statusCode).toBe(status);
    expect(response.headers["content-type"]).toContain("text/html");
    expect(response.body).toContain(`<title>`);
    expect(response.body).toContain(`· ${PRODUCT}</title>`);
    expect(response.body).toContain(`<a class="brand" href="/">${PRODUCT}</a>`);
    expect(response.body).not.toContain("Latchkey");
  }

  it("the 404 page", async () => {
    expectBranded(await new Browser(t.app).get("/no-such-page"), 404);
  });

  it("the page for a method a path does not take (405)", async () => {
    expectBranded(await t.app.inject({ method: "OPTIONS", url: "/login" }), 405);
  });

  it("the CSRF failure page: no token, and a form from another origin", async () => {
    const browser = new Browser(t.app);
    await browser.get("/login");
    expectBranded(await browser.request("POST", "/login", { form: { email: "a@example.com", password: "x" } }), 403);
    const crossSite = await browser.request("POST", "/login", {
      form: { email: "a@example.com", password: "x" },
      headers: { origin: "https://evil.example" },
    });
    expectBranded(crossSite, 403);
    expect(crossSite.body).toContain(`${PRODUCT} only accepts requests from`);
  });

  it("the page for a malformed form (400) and a body too large (413)", async () => {
    const browser = new Browser(t.app);
    const csrf = csrfFrom((await browser.get("/login")).body);
    expectBranded(await browser.request("POST", "/login", { form: { _csrf: csrf, email: "a@example.com" } }), 400);
    expectBranded(
      await browser.request("POST", "/login", { form: { _csrf: csrf, email: "a".repeat(t.config.limits.bodyLimitBytes), password: "x" } }),
      413,
    );
  });

  it("the 500 page", async () => {
    const browser = new Browser(t.app);
    const csrf = csrfFrom((await browser.get("/login")).body);
    const failing = vi.spyOn(t.ctx.attempts, "hit").mockRejectedValueOnce(new Error("attempt store down"));
    try {
      expectBranded(
        await browser.request("POST", "/login", { form: { _csrf: csrf, email: "a@example.com", password: "a password" } }),
        500,
      );
    } finally {
      failing.mockRestore();
    }
  });
});
