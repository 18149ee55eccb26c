import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { noMetrics } from "../src/observability/metrics.js";
import { routes } from "../src/paths.js";
import { Browser, seedMember, signedInBrowser, startTestApp, type TestApp } from "./helpers/app.js";
import { enableAuthApp, passwordStep, STEP_SECONDS, submitCode, totpCode, wrongCode } from "./helpers/auth-app.js";
import { describeEachDialect } from "./helpers/dialects.js";
import { freePort, freePorts } from "./helpers/ports.js";
import { jsonLines } from "./helpers/serve-process.js";
import { parsePrometheusText, type Exposition } from "./helpers/prometheus-text.js";
import type * as client from "openid-client";
import { startTestIdp, type TestIdp } from "./helpers/oidc-provider.js";
import { authorizationUrl, authorizeInBrowser, discover, registerClient, startListeningApp, type ListeningApp } from "./helpers/oidc-rp.js";
import { connectSso } from "../src/team/sso.js";
import { ssoRedirectUri } from "../src/auth/sso-sign-in.js";

/**
 * `/metrics` (issue 11): Prometheus text on a listener of its own (`LATCHKEY_METRICS_ADDR`), scraped over real HTTP
 * and parsed strictly (test/helpers/prometheus-text.ts) after real sign-ins.
 */

async function scrape(url: string | undefined): Promise<Exposition> {
  if (url === undefined) throw new Error("metrics are off in this app");
  const response = await fetch(url);
  expect(response.status).toBe(200);
  expect(response.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
  return parsePrometheusText(await response.text());
}

/** How much each of `series` moved while `act` ran. */
async function deltas(t: TestApp, series: Array<[string, Record<string, string>]>, act: () => Promise<void>): Promise<number[]> {
  const before = await scrape(t.metricsUrl);
  await act();
  const after = await scrape(t.metricsUrl);
  return series.map(([name, labels]) => after.value(name, labels) - before.value(name, labels));
}

const signIns = (method: string, result: string): [string, Record<string, string>] => ["latchkey_sign_ins_total", { method, result }];
const durationCount = (route: string, method: string, status: string): [string, Record<string, string>] => [
  "latchkey_http_request_duration_seconds_count",
  { route, method, status },
];

describeEachDialect("metrics", (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    // Two wrong codes lock code entry, so a lock is quick to reach.
    t = await startTestApp(dialect, { metrics: true, limits: { codeFailuresPerUser: 2 } });
  });
  afterAll(async () => {
    await t?.close();
  });

  it("are served on the separate listener in the Prometheus text format, every family named latchkey_…", async () => {
    const metrics = await scrape(t.metricsUrl);
    const expected: Record<string, string> = {
      latchkey_http_request_duration_seconds: "histogram",
      latchkey_sign_ins_total: "counter",
      latchkey_second_factor_failures_total: "counter",
      latchkey_second_factor_locks_total: "counter",
      latchkey_throttle_refusals_total: "counter",
      latchkey_mail_messages_total: "counter",
      latchkey_sessions_active: "gauge",
      latchkey_nodejs_eventloop_lag_seconds: "gauge",
      latchkey_process_resident_memory_bytes: "gauge",
    };
    for (const [name, type] of Object.entries(expected)) expect([name, metrics.types.get(name)]).toEqual([name, type]);
    const pool = ["latchkey_db_pool_connections", "latchkey_db_pool_idle_connections", "latchkey_db_pool_waiting_queries"];
    for (const name of pool) expect(metrics.types.get(name)).toBe(dialect === "postgres" ? "gauge" : undefined);
    if (dialect === "postgres") expect(metrics.value("latchkey_db_pool_connections")).toBeGreaterThanOrEqual(1);
    for (const name of metrics.types.keys()) expect(name.startsWith("latchkey_")).toBe(true);
    for (const name of metrics.types.keys()) expect(metrics.help.get(name)?.length).toBeGreaterThan(0);
    // Every mail event is there from the start, at 0: the mail sender reports into ctx.metrics.mailEvent.
    for (const event of ["queued", "sent", "failed", "retried"]) {
      expect(metrics.find("latchkey_mail_messages_total", { event })).toEqual([
        { name: "latchkey_mail_messages_total", labels: { event }, value: 0 },
      ]);
    }
  });

  it("the mail counter moves through ctx.metrics.mailEvent, the callback the mail sender is given", async () => {
    const onEvent = t.ctx.metrics.mailEvent;
    const [queued, sent, retried] = await deltas(
      t,
      [
        ["latchkey_mail_messages_total", { event: "queued" }],
        ["latchkey_mail_messages_total", { event: "sent" }],
        ["latchkey_mail_messages_total", { event: "retried" }],
      ],
      async () => {
        onEvent("queued");
        onEvent("queued");
        onEvent("sent");
      },
    );
    expect([queued, sent, retried]).toEqual([2, 1, 0]);
  });

  it("a sign-in link counts as queued, then sent, by the server's own mail sender", async () => {
    const member = await seedMember(t);
    const [queued, sent] = await deltas(
      t,
      [
        ["latchkey_mail_messages_total", { event: "queued" }],
        ["latchkey_mail_messages_total", { event: "sent" }],
      ],
      async () => {
        expect((await new Browser(t.app).signInWithPassword(member.email, member.password)).statusCode).toBe(303);
      },
    );
    expect([queued, sent]).toEqual([1, 1]);
  });

  it("the listener serves /metrics alone (GET and HEAD)", async () => {
    const base = new URL(t.metricsUrl!);
    expect((await fetch(new URL("/", base))).status).toBe(404);
    expect((await fetch(new URL("/healthz", base))).status).toBe(404);
    expect((await fetch(new URL("/metrics/x", base))).status).toBe(404);
    const post = await fetch(base, { method: "POST" });
    expect(post.status).toBe(405);
    expect(post.headers.get("allow")).toBe("GET, HEAD");
    const head = await fetch(base, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe("");
  });

  it("the main app does not serve /metrics", async () => {
    const response = await t.app.inject({ method: "GET", url: "/metrics" });
    expect(response.statusCode).toBe(404);
    expect(t.app.latchkeyRoutes.some((route) => route.endsWith(" /metrics"))).toBe(false);
  });

  it("count a real email-link sign-in (password, then link), a wrong password, a used link, and the session", async () => {
    const member = await seedMember(t);
    let link = "";
    const moved = await deltas(
      t,
      [
        signIns("password", "success"),
        signIns("email_link", "success"),
        signIns("password", "invalid_credentials"),
        signIns("email_link", "link_used"),
        ["latchkey_sessions_active", {}],
      ],
      async () => {
        const wrong = await new Browser(t.app).signInWithPassword(member.email, "not the password");
        expect(wrong.statusCode).toBe(401);
        await signedInBrowser(t, member);
        link = t.mail.lastLink(member.email);
        expect((await new Browser(t.app).get(link)).statusCode).toBe(410);
      },
    );
    expect(moved).toEqual([1, 1, 1, 1, 1]);
  });

  it("count auth-app sign-ins, wrong codes and the lock of code entry, and the throttle's refusal by route", async () => {
    const member = await seedMember(t);
    const { secret } = await enableAuthApp(t, member);
    t.clock.advanceSeconds(STEP_SECONDS);
    const moved = await deltas(
      t,
      [
        signIns("auth_app", "success"),
        signIns("auth_app", "invalid_code"),
        signIns("auth_app", "too_many_attempts"),
        ["latchkey_second_factor_failures_total", { method: "auth_app", reason: "invalid_code" }],
        ["latchkey_second_factor_locks_total", {}],
        ["latchkey_throttle_refusals_total", { code: "too_many_attempts", route: "/api/v1/login/code" }],
      ],
      async () => {
        const good = await passwordStep(t, member);
        expect((await submitCode(good, totpCode(t, secret))).statusCode).toBe(200);
        const bad = await passwordStep(t, member);
        expect((await submitCode(bad, wrongCode(t, secret))).statusCode).toBe(401);
        // The second wrong code in a row reaches codeFailuresPerUser (2 here): code entry locks, 429.
        expect((await submitCode(bad, wrongCode(t, secret))).statusCode).toBe(429);
      },
    );
    expect(moved).toEqual([1, 1, 1, 2, 1, 1]);
  });

  it("count a rate_limited refusal by its route pattern", async () => {
    const member = await seedMember(t);
    const [limited] = await deltas(
      t,
      [["latchkey_throttle_refusals_total", { code: "rate_limited", route: "/api/v1/login/email-link" }]],
      async () => {
        const browser = new Browser(t.app);
        expect(
          (await browser.request("POST", "/api/v1/login", { json: { email: member.email, password: member.password } })).statusCode,
        ).toBe(200);
        expect((await browser.request("POST", "/api/v1/login/email-link", { json: {} })).statusCode).toBe(429);
      },
    );
    expect(limited).toBe(1);
  });

  it("time requests by route pattern, method and status — never by the URL, whose tokens stay out of every label", async () => {
    const member = await seedMember(t);
    const token = "n0tAToken-" + "x".repeat(33);
    const moved = await deltas(
      t,
      [
        durationCount("/api/v1/verify", "GET", "401"),
        durationCount("/api/v1/verify", "GET", "200"),
        durationCount("/login/email/:token", "GET", "303"),
        durationCount("/login/email/:token", "GET", "400"),
        durationCount("unmatched", "GET", "404"),
        durationCount("/login", "GET", "200"),
        durationCount("/login", "HEAD", "200"),
        durationCount("/login", "DELETE", "405"),
        durationCount("/.well-known/openid-configuration", "GET", "200"),
      ],
      async () => {
        for (let i = 0; i < 3; i++) expect((await t.app.inject({ method: "GET", url: "/api/v1/verify" })).statusCode).toBe(401);
        const browser = await signedInBrowser(t, member);
        expect((await browser.get("/api/v1/verify")).statusCode).toBe(200);
        expect((await new Browser(t.app).get(`/login/email/${token}`)).statusCode).toBe(400);
        expect((await t.app.inject({ method: "GET", url: `/no/such/${token}` })).statusCode).toBe(404);
        expect((await t.app.inject({ method: "GET", url: "/login" })).statusCode).toBe(200);
        expect((await t.app.inject({ method: "HEAD", url: "/login" })).statusCode).toBe(200);
        expect((await t.app.inject({ method: "DELETE", url: "/login" })).statusCode).toBe(405);
        // Served by oidc-provider, not a Fastify route: still labelled by its pattern in the route table.
        expect((await t.app.inject({ method: "GET", url: "/.well-known/openid-configuration" })).statusCode).toBe(200);
      },
    );
    // GET /login twice: once by the sign-in (the form's page), once asked here.
    expect(moved).toEqual([3, 1, 1, 1, 1, 2, 1, 1, 1]);

    const metrics = await scrape(t.metricsUrl);
    const patterns = new Set([...t.app.latchkeyRoutes.map((route) => route.split(" ")[1]), ...Object.values(routes), "unmatched"]);
    const histogram = metrics.samples.filter((s) => s.name.startsWith("latchkey_http_request_duration_seconds"));
    for (const sample of histogram) {
      expect(patterns.has(sample.labels["route"]!), sample.labels["route"]).toBe(true);
      expect(JSON.stringify(sample.labels)).not.toContain(token);
    }
    // Each series: cumulative buckets, +Inf = count, a sum of real durations.
    const buckets = metrics.find("latchkey_http_request_duration_seconds_bucket", {
      route: "/api/v1/verify",
      method: "GET",
      status: "401",
    });
    const counts = buckets.map((b) => b.value);
    expect(counts).toEqual([...counts].sort((a, b) => a - b));
    expect(buckets.at(-1)).toMatchObject({ labels: { le: "+Inf" } });
    expect(buckets.at(-1)!.value).toBe(metrics.value(...durationCount("/api/v1/verify", "GET", "401")));
    expect(
      metrics.value("latchkey_http_request_duration_seconds_sum", { route: "/api/v1/verify", method: "GET", status: "401" }),
    ).toBeGreaterThan(0);
  });
});

describeEachDialect("metrics of single sign-on and of applications signing in with Latchkey", (dialect) => {
  const domain = "sso-metrics.example";
  let t: ListeningApp;
  let idp: TestIdp;
  let config: client.Configuration;
  beforeAll(async () => {
    t = await startListeningApp(dialect, { metrics: true });
    idp = await startTestIdp({ redirectUri: ssoRedirectUri(t.ctx) });
    const admin = await seedMember(t, { role: "admin", email: `admin@${domain}`, accountName: "SSO Co" });
    const connected = await connectSso(t.ctx, {
      accountId: admin.accountId,
      issuer: idp.issuer,
      clientId: idp.clientId,
      clientSecret: idp.clientSecret,
      domains: [domain],
    });
    expect(connected.ok).toBe(true);
    config = await discover(t.origin, await registerClient(t));
  });
  afterAll(async () => {
    await idp?.close();
    await t?.close();
  });

  it("count an SSO sign-in, a used SSO answer, and an application's authorization granted or refused", async () => {
    const moved = await deltas(
      t,
      [signIns("sso", "success"), signIns("sso", "sso_state_used"), signIns("oidc", "success"), signIns("oidc", "login_required")],
      async () => {
        const browser = new Browser(t.app);
        const started = await browser.request("POST", "/api/v1/login/sso", { json: { domain } });
        expect(started.statusCode).toBe(200);
        idp.nextUser = { sub: "idp-metrics", email: `p.metrics@${domain}`, email_verified: true, name: "P Metrics" };
        const callback = await idp.signIn(started.json<{ authorizationUrl: string }>().authorizationUrl);
        expect((await browser.get(callback)).statusCode).toBe(303);
        expect((await browser.get(callback)).statusCode).toBe(410);

        const granted = await authorizeInBrowser(browser, t.origin, await authorizationUrl(config));
        expect(granted.searchParams.get("code")).toBeTruthy();
        const refused = await authorizeInBrowser(new Browser(t.app), t.origin, await authorizationUrl(config, { prompt: "none" }));
        expect(refused.searchParams.get("error")).toBe("login_required");
      },
    );
    expect(moved).toEqual([1, 1, 1, 1]);
  });
});

describe("metrics off (LATCHKEY_METRICS_ADDR unset, the default)", () => {
  it("record nothing and start no listener", async () => {
    const t = await startTestApp("sqlite");
    try {
      expect(t.config.metricsAddr).toBeUndefined();
      expect(t.metricsUrl).toBeUndefined();
      expect(t.ctx.metrics).toBe(noMetrics);
      expect((await t.app.inject({ method: "GET", url: "/metrics" })).statusCode).toBe(404);
    } finally {
      await t.close();
    }
  });
});

describe("latchkey serve with LATCHKEY_METRICS_ADDR", () => {
  const CLI = ["--import", "tsx", join(process.cwd(), "src/cli.ts")];
  let child: ChildProcess | undefined;
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "latchkey-metrics-"));
  });
  afterEach(async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((resolve) => child?.once("exit", resolve));
      child.kill("SIGTERM");
      await exited;
    }
    child = undefined;
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  function serve(env: Record<string, string>): { output: () => string; exited: Promise<number | null> } {
    let output = "";
    child = spawn(process.execPath, [...CLI, "serve"], {
      env: { PATH: process.env["PATH"] ?? "", HOME: process.env["HOME"] ?? "", LATCHKEY_DATA_DIR: dir, LOG_LEVEL: "silent", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child?.once("exit", resolve));
    return { output: () => output, exited };
  }

  async function waitFor(output: () => string, pattern: RegExp, ms: number): Promise<RegExpExecArray> {
    const deadline = Date.now() + ms;
    for (;;) {
      const match = pattern.exec(output());
      if (match) return match;
      if (Date.now() > deadline) throw new Error(`no ${pattern} within ${ms} ms: ${output()}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  it("serves /metrics on that address only (the main port answers 404), and exits 0 on SIGTERM", async () => {
    const [port, metricsPort] = (await freePorts(2)) as [number, number];
    const run = serve({
      PORT: String(port),
      LATCHKEY_PUBLIC_URL: `http://127.0.0.1:${port}`,
      LATCHKEY_METRICS_ADDR: `127.0.0.1:${metricsPort}`,
      // Its notices are JSON log lines at info (stdout is not a terminal).
      LOG_LEVEL: "info",
    });
    // The metrics line comes after "Latchkey is running", and may reach the pipe in a later chunk: wait for it whole.
    await waitFor(run.output, /"msg":"metrics for Prometheus"[^\n]*\n/, 40_000);
    const output = run.output();
    expect(jsonLines(output.slice(0, output.lastIndexOf("\n") + 1)).find((l) => l.msg === "metrics for Prometheus")).toMatchObject({
      metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`,
    });

    const metrics = await scrape(`http://127.0.0.1:${metricsPort}/metrics`);
    expect(metrics.types.get("latchkey_sign_ins_total")).toBe("counter");
    const main = await fetch(`http://127.0.0.1:${port}/metrics`, { redirect: "manual" });
    expect(main.status).toBe(404);
    // A scrape of the main port's probe is counted under its route pattern.
    expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).toBe(200);
    expect((await scrape(`http://127.0.0.1:${metricsPort}/metrics`)).value(...durationCount("/readyz", "GET", "200"))).toBe(1);

    child!.kill("SIGTERM");
    expect(await run.exited).toBe(0);
  }, 60_000);

  it("stops at start with one line naming LATCHKEY_METRICS_ADDR when its port is taken", async () => {
    const taken: Server = createServer();
    const metricsPort = await freePort();
    await new Promise<void>((resolve) => taken.listen(metricsPort, "127.0.0.1", resolve));
    try {
      const run = serve({ PORT: String(await freePort()), LATCHKEY_METRICS_ADDR: `127.0.0.1:${metricsPort}` });
      expect(await run.exited).toBe(1);
      expect(run.output().trim()).toMatch(
        new RegExp(
          `^latchkey: cannot listen for metrics on http://127\\.0\\.0\\.1:${metricsPort}/metrics: .*EADDRINUSE.* \\(set LATCHKEY_METRICS_ADDR\\)$`,
        ),
      );
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  }, 60_000);
});
