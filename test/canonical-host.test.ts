import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "./helpers/app.js";
import { describeEachDialect } from "./helpers/dialects.js";

describe("opening the default server by IP address", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp("sqlite");
  });
  afterAll(async () => {
    await t?.close();
  });

  it("sends page requests at 127.0.0.1 to the localhost public URL, keeping the path", async () => {
    const response = await t.app.inject({ method: "GET", url: "/login?notice=signed_out", headers: { host: "127.0.0.1:3000" } });
    expect(response.statusCode).toBe(308);
    expect(response.headers.location).toBe("http://localhost:3000/login?notice=signed_out");
  });

  it("leaves requests to the public host, and non-GET requests, alone", async () => {
    expect((await t.app.inject({ method: "GET", url: "/login", headers: { host: "localhost:3000" } })).statusCode).toBe(200);
    const post = await t.app.inject({
      method: "POST",
      url: "/api/v1/login",
      headers: { host: "127.0.0.1:3000" },
      payload: { email: "a@example.com", password: "wrong password" },
    });
    expect(post.statusCode).toBe(401);
  });
});

describeEachDialect("opening the default server by IP address with a crafted path", (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(dialect);
  });
  afterAll(async () => {
    await t?.close();
  });

  it("the 127.0.0.1 → localhost redirect keeps the request on the public host (no open redirect)", async () => {
    for (const url of ["//evil.example/login", "/\\evil.example/login", "///evil.example/?next=x"]) {
      const response = await t.app.inject({ method: "GET", url, headers: { host: "127.0.0.1:3000" } });
      expect(response.statusCode, url).toBe(308);
      expect(new URL(response.headers.location as string).origin, url).toBe(t.config.publicUrl.origin);
    }
    const kept = await t.app.inject({ method: "GET", url: "/login?notice=signed_out", headers: { host: "127.0.0.1:3000" } });
    expect(kept.headers.location).toBe(`${t.config.publicUrl.origin}/login?notice=signed_out`);
  });
});
