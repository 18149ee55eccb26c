import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import type { Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { routes } from "../src/paths.js";
import { csrfFrom, seedMember, startTestApp, type TestApp } from "./helpers/app.js";
import { freePort } from "./helpers/ports.js";
import {
  binaryAvailable,
  documentedConfig,
  httpsFetch,
  ProxyBrowser,
  selfSignedCertificate,
  startCaddy,
  startEchoApp,
  startNginx,
  substitute,
  type Answer,
  type AppEcho,
  type Placeholder,
  type RunningProxy,
} from "./helpers/proxies.js";

/**
 * The nginx and Caddy configurations of docs/deployment.md, run as printed against real nginx and Caddy, a real
 * Latchkey server and a small app that echoes what it receives. Only the placeholders below are changed.
 */

// In CI a missing binary fails the file here; elsewhere its suites are skipped with a note.
const available = { nginx: binaryAvailable("nginx", ["-v"]), caddy: binaryAvailable("caddy", ["version"]) };

/** The test's domain: `.test` is reserved (RFC 6761); requests go to 127.0.0.1 with these names as Host and SNI. */
const DOMAIN = "example.test";
const APP_HOST = `app.${DOMAIN}`;
const AUTH_HOST = `auth.${DOMAIN}`;

type Proxy = "nginx" | "caddy";
type Topology = "same-host" | "cross-subdomain";

interface Ports {
  latchkey: number;
  app: number;
  /** The proxy's https port (nginx's `listen`, Caddy's `https_port`). */
  proxy: number;
  /** Caddy's http port, for its redirects to https: never the privileged 80. */
  http: number;
}

/**
 * PLACEHOLDERS: the only changes made to a documented configuration — where Latchkey, the app and the proxy listen,
 * where the certificate is, and the host names (example.com → example.test). Each must occur in the document.
 */
function placeholders(proxy: Proxy, topology: Topology, ports: Ports, certificate?: { certFile: string; keyFile: string }): Placeholder[] {
  return [
    { documented: "127.0.0.1:3000", test: `127.0.0.1:${ports.latchkey}` },
    { documented: "127.0.0.1:8080", test: `127.0.0.1:${ports.app}` },
    ...(topology === "cross-subdomain" ? [{ documented: "https://auth.example.com", test: `https://${AUTH_HOST}:${ports.proxy}` }] : []),
    ...(proxy === "nginx" && certificate
      ? [
          { documented: "listen 443 ssl;", test: `listen 127.0.0.1:${ports.proxy} ssl;` },
          { documented: /\/etc\/ssl\/[\w.]+\.crt/, test: certificate.certFile },
          { documented: /\/etc\/ssl\/[\w.]+\.key/, test: certificate.keyFile },
        ]
      : []),
    { documented: "example.com", test: DOMAIN },
  ];
}

/** Every path of the route table, parameters filled in; not `/` (the app's on a shared host) nor the dev mail viewer. */
const LATCHKEY_PATHS = Object.values(routes)
  .filter((path) => path !== routes.home && !path.startsWith("/dev/"))
  .map((path) => path.replace(/:[A-Za-z]+/g, "x"));

/** The names the configurations give Latchkey: each path's first segment (`/api/v1` for the API). */
const LATCHKEY_NAMES = [...new Set(LATCHKEY_PATHS.map((path) => (path.startsWith("/api/v1/") ? "/api/v1" : `/${path.split("/")[1]}`)))];

/** Paths next to Latchkey's that belong to the app: no end anchor would hand them to Latchkey. */
const APP_PATHS = ["/", "/helpdesk", "/loginx", "/api", "/api/v2/things", "/supporters", ...LATCHKEY_NAMES.map((name) => `${name}x`)];

/** Answered by Latchkey (its CSP on every answer), not by the app (`X-Test-Upstream`) nor by the proxy itself. */
function fromLatchkey(answer: Answer): boolean {
  return answer.headers["x-test-upstream"] === undefined && /default-src 'none'/.test(String(answer.headers["content-security-policy"]));
}

function echoOf(answer: Answer): AppEcho {
  expect(answer.status).toBe(200);
  expect(answer.headers["x-test-upstream"]).toBe("app");
  return JSON.parse(answer.body) as AppEcho;
}

function describeProxy(proxy: Proxy, topology: Topology): void {
  const cross = topology === "cross-subdomain";
  describe.skipIf(!available[proxy])(`the documented ${proxy} configuration, ${topology}`, () => {
    let dir: string;
    let ports: Ports;
    let t: TestApp;
    let app: Server | undefined;
    let running: RunningProxy | undefined;
    /** LATCHKEY_PUBLIC_URL: the app's own host name, or Latchkey's host beside it. */
    let latchkey: string;
    let appOrigin: string;
    const sessionCookie = cross ? "__Secure-latchkey_session" : "__Host-latchkey_session";

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), `latchkey-${proxy}-`));
      ports = { latchkey: await freePort(), app: await freePort(), proxy: await freePort(), http: await freePort() };
      appOrigin = `https://${APP_HOST}:${ports.proxy}`;
      latchkey = cross ? `https://${AUTH_HOST}:${ports.proxy}` : appOrigin;
      t = await startTestApp("sqlite", {
        env: {
          LATCHKEY_PUBLIC_URL: latchkey,
          ...(cross ? { LATCHKEY_COOKIE_DOMAIN: DOMAIN, LATCHKEY_RETURN_ORIGINS: appOrigin } : {}),
        },
      });
      await t.app.listen({ port: ports.latchkey, host: "127.0.0.1" });
      app = await startEchoApp(ports.app);
      const hosts = cross ? [AUTH_HOST, APP_HOST] : [APP_HOST];
      if (proxy === "nginx") {
        const certificate = selfSignedCertificate(dir, hosts);
        const site = substitute(documentedConfig(`nginx-${topology}`), placeholders(proxy, topology, ports, certificate));
        running = await startNginx(dir, site, ports.proxy, hosts, certificate.pem);
      } else {
        const site = substitute(documentedConfig(`caddy-${topology}`), placeholders(proxy, topology, ports));
        running = await startCaddy(dir, site, { https: ports.proxy, http: ports.http }, hosts);
      }
    });

    afterAll(async () => {
      await running?.stop();
      await new Promise<void>((resolve) => (app ? app.close(() => resolve()) : resolve()));
      await t?.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    function browser(): ProxyBrowser {
      return new ProxyBrowser(ports.proxy, (running as RunningProxy).ca);
    }

    /** Password and the emailed link, both through the proxy, in a browser of its own. */
    async function signIn(): Promise<{ browser: ProxyBrowser; member: Awaited<ReturnType<typeof seedMember>> }> {
      const member = await seedMember(t);
      const person = browser();
      const page = await person.get(`${latchkey}/login`);
      expect(page.status).toBe(200);
      const step = await person.request("POST", `${latchkey}/login`, {
        form: { _csrf: csrfFrom(page.body), email: member.email, password: member.password },
      });
      expect(step.status).toBe(303);
      const link = t.mail.lastLink(member.email);
      expect(link.startsWith(`${latchkey}/login/email/`)).toBe(true);
      const linked = await person.get(link);
      expect(linked.status).toBe(303);
      expect(person.jar.get(sessionCookie)).toBeDefined();
      return { browser: person, member };
    }

    it("sends every path of Latchkey's route table to Latchkey: the support pages and the SSO return too", async () => {
      const visitor = browser();
      for (const path of LATCHKEY_PATHS) {
        const answer = await visitor.get(`${latchkey}${path}`);
        expect(fromLatchkey(answer), `${path} answered ${answer.status} ${answer.body.slice(0, 100)}`).toBe(true);
      }
      const support = await visitor.get(`${latchkey}/support`);
      expect(support.status).toBe(200);
      expect(support.body).toContain("Ask for a two-factor reset");
      const callback = await visitor.get(`${latchkey}/sso/callback?code=x&state=y`);
      expect(callback.status).toBe(400);
      expect(fromLatchkey(callback)).toBe(true);
      if (cross) expect(fromLatchkey(await visitor.get(`${latchkey}/`))).toBe(true);
    });

    it(`sends /helpdesk, /loginx and every other path next to Latchkey's names to the app${cross ? ", and every path on the app's host" : ""}`, async () => {
      const { browser: person } = await signIn();
      for (const path of [...APP_PATHS, ...(cross ? LATCHKEY_PATHS : [])]) {
        const answer = await person.get(`${appOrigin}${path}`);
        expect(answer.headers["x-test-upstream"], `${path} answered ${answer.status}`).toBe("app");
        expect(echoOf(answer).url).toBe(path);
      }
    });

    it("sends a browser that is not signed in to the sign-in page with return_to = the URL it asked for, escaped", async () => {
      const visitor = browser();
      for (const [method, uri] of [
        ["GET", "/reports/q3?q=a%26b&x=1+2&y=%2B"],
        ["GET", "/"],
        ["POST", "/orders?draft=1"],
      ] as const) {
        const answer = await visitor.request(method, `${appOrigin}${uri}`, method === "POST" ? { form: { item: "x" } } : {});
        expect(answer.status, `${method} ${uri}`).toBe(302);
        expect(answer.headers.location).toBe(`${latchkey}/login?return_to=${encodeURIComponent(`${appOrigin}${uri}`)}`);
        expect(new URL(answer.headers.location as string).searchParams.get("return_to")).toBe(`${appOrigin}${uri}`);
      }
    });

    it("brings a browser sent to sign in from the app back to the URL it asked for, signed in", async () => {
      const member = await seedMember(t);
      const person = browser();
      const asked = `${appOrigin}/reports/q3?q=a%26b&x=1+2`;
      const toLogin = await person.get(asked);
      expect(toLogin.status).toBe(302);
      const login = await person.get(toLogin.headers.location as string);
      expect(login.status).toBe(200);
      const returnTo = /name="return_to" value="([^"]+)"/.exec(login.body)?.[1]?.replace(/&amp;/g, "&");
      expect(returnTo).toBe(asked);
      const step = await person.request("POST", `${latchkey}/login`, {
        form: { _csrf: csrfFrom(login.body), email: member.email, password: member.password, return_to: returnTo as string },
      });
      expect(step.status).toBe(303);
      const linked = await person.get(t.mail.lastLink(member.email));
      expect(linked.status).toBe(303);
      const onward = await person.get(new URL(linked.headers.location as string, latchkey).href);
      // Back on the public origin: a redirect; on another origin (the app's host): a page that moves on at once.
      const target =
        onward.status === 303
          ? (onward.headers.location as string)
          : /http-equiv="refresh" content="0;url=([^"]+)"/.exec(onward.body)?.[1]?.replace(/&amp;/g, "&");
      expect(target).toBe(asked);
      const arrived = await person.get(target as string);
      expect(echoOf(arrived)).toMatchObject({ url: "/reports/q3?q=a%26b&x=1+2", email: member.email });
    });

    it("lets a browser signed in through the proxy reach the app as that person, replacing the X-Latchkey-* it sends", async () => {
      const { browser: person, member } = await signIn();
      const answer = await person.get(`${appOrigin}/reports?x=1`, {
        "x-latchkey-user-id": "forged",
        "x-latchkey-email": "forged@evil.example",
        "x-latchkey-account-id": "forged",
        "x-latchkey-role": "admin",
      });
      const echo = echoOf(answer);
      expect(echo).toMatchObject({ method: "GET", url: "/reports?x=1", userId: member.userId, email: member.email });
      expect(echo.accountId).toBe(member.accountId);
      expect(echo.role).toBe("member");
      if (cross) {
        // Only the session cookie is the domain's; the others stay on Latchkey's host.
        expect(echo.cookie?.split("; ").map((pair) => pair.split("=")[0])).toEqual([sessionCookie]);
      }
    });

    it("after sign-out through the proxy, the next app request goes to sign-in again, also with the old cookie", async () => {
      const { browser: person } = await signIn();
      expect(echoOf(await person.get(`${appOrigin}/`)).email).toBeDefined();
      const token = person.jar.get(sessionCookie) as string;
      const settings = await person.get(`${latchkey}/settings`);
      expect(settings.status).toBe(200);
      const out = await person.request("POST", `${latchkey}/logout`, { form: { _csrf: csrfFrom(settings.body) } });
      expect(out.status).toBe(303);
      expect(person.jar.get(sessionCookie)).toBeUndefined();
      const again = await person.get(`${appOrigin}/`);
      expect(again.status).toBe(302);
      expect(again.headers.location).toBe(`${latchkey}/login?return_to=${encodeURIComponent(`${appOrigin}/`)}`);
      const replay = await httpsFetch(ports.proxy, (running as RunningProxy).ca, "GET", `${appOrigin}/`, {
        cookie: `${sessionCookie}=${token}`,
      });
      expect(replay.status).toBe(302);
    });

    it("never sends /dev/… (the local mail viewer) to Latchkey", async () => {
      const answer = await browser().get(`${latchkey}/dev/mail`);
      expect(fromLatchkey(answer)).toBe(false);
      if (cross) expect(answer.status).toBe(404);
      else expect(answer.headers.location).toBe(`${latchkey}/login?return_to=${encodeURIComponent(`${appOrigin}/dev/mail`)}`);
    });
  });
}

describe("the list of Latchkey's paths in docs/deployment.md", () => {
  const doc = readFileSync(join(process.cwd(), "docs/deployment.md"), "utf8");

  it("names exactly the first segments of the route table", () => {
    const listed = /\n```\n(\/login [^\n]*)\n```\n/.exec(doc)?.[1];
    expect(listed?.split(/\s+/).sort()).toEqual([...LATCHKEY_NAMES].sort());
  });

  it("is the same in the untested Traefik rule as in the tested nginx location", () => {
    const nginx = /location ~ \^\/\(([^)]+)\)\(\/\|\$\)/.exec(doc)?.[1];
    const traefik = /PathRegexp\(`\^\/\(([^)]+)\)\(\/\|\$\)`\)/.exec(doc)?.[1];
    expect(
      nginx
        ?.split("|")
        // A regular expression: a literal dot is written \.
        .map((name) => `/${name.replace(/\\\./g, ".")}`)
        .sort(),
    ).toEqual([...LATCHKEY_NAMES].sort());
    expect(traefik).toBe(nginx);
  });
});

for (const proxy of ["nginx", "caddy"] as const) {
  for (const topology of ["same-host", "cross-subdomain"] as const) describeProxy(proxy, topology);
}
