import { afterAll, afterEach, beforeAll, expect, it } from "vitest";
import { describeEachDialect, describeOnPostgres } from "./helpers/dialects.js";
import { Browser, seedMember, signedInBrowser, startTestApp, type TestApp } from "./helpers/app.js";
import { TcpProxy } from "./helpers/tcp-proxy.js";
import { startOwnRedis, type OwnRedis } from "./helpers/redis-server.js";

/** Polls `probe` until it returns true; returns the milliseconds it took, or throws past `withinMs`. */
async function msUntil(probe: () => Promise<boolean>, withinMs: number): Promise<number> {
  const started = Date.now();
  while (Date.now() - started < withinMs) {
    if (await probe()) return Date.now() - started;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`not back within ${withinMs} ms`);
}

describeEachDialect("when Redis (the attempt counters) stops and comes back", (dialect) => {
  let t: TestApp;
  let redis: OwnRedis;
  beforeAll(async () => {
    redis = await startOwnRedis();
    t = await startTestApp(dialect, { env: { REDIS_URL: redis.url } });
  });
  afterAll(async () => {
    await t?.close();
    await redis?.stop();
  });

  it("password attempts fail closed with 503 throttle_unavailable, signed-in sessions keep working, and sign-in is back within 5 s of Redis", async () => {
    const member = await seedMember(t);
    const signedIn = await signedInBrowser(t, member);
    const login = (password: string): Promise<{ statusCode: number; json: () => { error?: string }; headers: Record<string, unknown> }> =>
      new Browser(t.app).request("POST", "/api/v1/login", { json: { email: member.email, password } });

    await redis.stop();
    // The right password too: an attempt that cannot be counted is not made at all.
    for (const password of [member.password, "wrong password 1"]) {
      const refused = await login(password);
      expect(refused.statusCode).toBe(503);
      expect(refused.json().error).toBe("throttle_unavailable");
      expect(refused.headers["retry-after"]).toBe("5");
    }
    const page = await new Browser(t.app).signInWithPassword(member.email, member.password);
    expect(page.statusCode).toBe(503);
    expect(page.body).toContain("Sign-in is briefly unavailable");
    expect(t.mail.sent.filter((m) => m.to === member.email)).toHaveLength(1);
    // Session checks never touch the counters.
    expect((await signedIn.get("/api/v1/session")).statusCode).toBe(200);
    expect((await signedIn.get("/api/v1/verify")).statusCode).toBe(200);

    await redis.start();
    const backInMs = await msUntil(async () => (await login(member.password)).statusCode === 200, 10_000);
    expect(backInMs).toBeLessThan(5_000);
  });
});

describeOnPostgres("when PostgreSQL goes away mid-load and comes back", () => {
  let t: TestApp;
  let proxy: TcpProxy;
  beforeAll(async () => {
    proxy = await TcpProxy.start({ host: "127.0.0.1", port: 5432 });
    t = await startTestApp("postgres", {
      databaseUrlVia: (url) => {
        const via = new URL(url);
        via.port = String(proxy.port);
        return via.href;
      },
    });
  });
  afterEach(async () => {
    await proxy.restore();
  });
  afterAll(async () => {
    await t?.close();
    await proxy?.close();
  });

  it("requests answer 503 database_unavailable within 10 s each while it is away, the process lives on, and all is normal within 5 s of its return", async () => {
    const member = await seedMember(t);
    const signedIn = await signedInBrowser(t, member);

    await proxy.cut();
    const during = await Promise.all(
      Array.from({ length: 6 }, async (_, i) => {
        const started = Date.now();
        const response =
          i % 2 === 0
            ? await signedIn.get("/api/v1/session")
            : await new Browser(t.app).request("POST", "/api/v1/login", { json: { email: member.email, password: member.password } });
        return {
          status: response.statusCode,
          error: (response.json() as { error?: string }).error,
          ms: Date.now() - started,
          retryAfter: response.headers["retry-after"],
        };
      }),
    );
    for (const answer of during) {
      expect(answer).toMatchObject({ status: 503, error: "database_unavailable", retryAfter: "5" });
      expect(answer.ms).toBeLessThan(10_000);
    }
    const page = await signedIn.get("/");
    expect(page.statusCode).toBe(503);
    expect(page.body).toContain("cannot reach its database");

    await proxy.restore();
    const backInMs = await msUntil(async () => (await signedIn.get("/api/v1/session")).statusCode === 200, 10_000);
    expect(backInMs).toBeLessThan(5_000);
    const login = await new Browser(t.app).request("POST", "/api/v1/login", { json: { email: member.email, password: member.password } });
    expect(login.statusCode).toBe(200);
  });
});
