import type { LightMyRequestResponse } from "fastify";
import { afterAll, beforeAll, expect, it } from "vitest";
import { newToken } from "../src/auth/tokens.js";
import { Browser, startTestApp, type TestApp } from "./helpers/app.js";
import { describeEachDialect } from "./helpers/dialects.js";

const PRODUCT = "Acme Sign-in";

/** A method a path does not take answers 405 with the methods it does take; an unknown path stays 404 (issue 8). */
describeEachDialect("methods a path does not take", (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(dialect, { env: { LATCHKEY_PRODUCT_NAME: PRODUCT } });
  });
  afterAll(async () => {
    await t?.close();
  });

  function expectJson405(response: LightMyRequestResponse, allow: string): void {
    expect(response.statusCode, response.body).toBe(405);
    expect(response.headers["allow"]).toBe(allow);
    expect(response.headers["content-type"]).toContain("application/json");
    expect(response.json().error).toBe("method_not_allowed");
  }

  function expectPage405(response: LightMyRequestResponse, allow: string): void {
    expect(response.statusCode, response.body).toBe(405);
    expect(response.headers["allow"]).toBe(allow);
    expect(response.headers["content-type"]).toContain("text/html");
    expect(response.body).toContain(`· ${PRODUCT}</title>`);
    expect(response.body).not.toContain("Latchkey");
  }

  it("an API path answers a method it does not take with 405 method_not_allowed and an Allow header, in JSON", async () => {
    expectJson405(await t.app.inject({ method: "PUT", url: "/api/v1/session" }), "GET, HEAD");
    expectJson405(
      await t.app.inject({ method: "PUT", url: "/api/v1/session", headers: { "content-type": "application/json" }, payload: "{}" }),
      "GET, HEAD",
    );
    expectJson405(await t.app.inject({ method: "GET", url: "/api/v1/logout" }), "POST");
    expectJson405(await t.app.inject({ method: "POST", url: "/api/v1/team/members/someone" }), "PATCH, DELETE");
  });

  it("a page path answers a method it does not take with a 405 page naming the product and an Allow header", async () => {
    const browser = new Browser(t.app);
    expectPage405(await browser.request("DELETE", "/login"), "GET, HEAD, POST");
    expectPage405(await browser.request("PUT", `/invite/${newToken()}`, { form: { name: "x" } }), "GET, HEAD, POST");
    expectPage405(await browser.get("/logout"), "POST");
  });

  it("HEAD and OPTIONS on a path that does not take them answer 405 too", async () => {
    expectPage405(await t.app.inject({ method: "OPTIONS", url: "/login" }), "GET, HEAD, POST");
    const head = await t.app.inject({ method: "HEAD", url: "/logout" });
    expect(head.statusCode).toBe(405);
    expect(head.headers["allow"]).toBe("POST");
    expect((await t.app.inject({ method: "HEAD", url: "/login" })).statusCode).toBe(200);
  });

  it("a path no route takes still answers 404 not_found, whatever the method", async () => {
    const api = await t.app.inject({ method: "PUT", url: "/api/v1/nothing-here" });
    expect(api.statusCode).toBe(404);
    expect(api.json().error).toBe("not_found");
    expect(api.headers["allow"]).toBeUndefined();
    for (const method of ["GET", "DELETE", "OPTIONS"] as const) {
      const page = await t.app.inject({ method, url: "/no-such-page" });
      expect(page.statusCode, method).toBe(404);
      expect(page.headers["allow"], method).toBeUndefined();
    }
    // Addresses the router refuses for any method (an over-long part, a malformed %-escape) are no path at all: not a
    // 405 listing every method.
    const overLong = await t.app.inject({ method: "OPTIONS", url: `/invite/${"a".repeat(250)}` });
    expect(overLong.statusCode).toBe(404);
    expect(overLong.headers["allow"]).toBeUndefined();
    const malformed = await t.app.inject({ method: "OPTIONS", url: "/invite/%zz" });
    expect(malformed.statusCode).toBe(400);
    expect(malformed.headers["allow"]).toBeUndefined();
  });
});
