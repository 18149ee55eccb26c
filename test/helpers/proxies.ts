import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import { request as httpsRequest } from "node:https";
import { join } from "node:path";

/**
 * Real nginx and Caddy for the documented proxy configurations (`test/proxies.test.ts`). Each runs as a child
 * process of the test on loopback ports with its own temp directory, never as the system service; every wait is
 * bounded and `stop()` kills it.
 */

/** How long a proxy may take to answer its first TLS handshake. */
const START_TIMEOUT_MS = 20_000;
/** How long one request through a proxy may take. */
const REQUEST_TIMEOUT_MS = 10_000;
/** How long a stopped proxy may take to exit before it is killed. */
const STOP_TIMEOUT_MS = 5_000;

/**
 * Whether `command` can run. In CI (CI=true) a missing one is a failure, never a silent skip, like PostgreSQL in
 * `databases.ts`; elsewhere its suites are skipped with a note (`apt-get install nginx caddy`).
 */
export function binaryAvailable(command: string, versionArgs: string[]): boolean {
  const probe = spawnSync(command, versionArgs, { stdio: "ignore", timeout: 10_000 });
  if (probe.status === 0) return true;
  if (process.env["CI"])
    throw new Error(`${command} is required in CI (apt-get install ${command}) but did not run: ${String(probe.error ?? probe.status)}`);
  console.warn(`${command} not found: skipping the tests of its documented configurations (apt-get install ${command}).`);
  return false;
}

/** The fenced block right after `<!-- tested: marker -->` in docs/deployment.md, exactly as printed there. */
export function documentedConfig(marker: string): string {
  const doc = readFileSync(join(process.cwd(), "docs/deployment.md"), "utf8");
  const match = new RegExp(`<!-- tested: ${marker} -->\\n\`\`\`[a-z]*\\n([\\s\\S]*?)\\n\`\`\`\\n`).exec(doc);
  if (!match?.[1]) throw new Error(`docs/deployment.md has no fenced block after <!-- tested: ${marker} -->`);
  return match[1];
}

/** A documented value and what the test puts in its place. */
export interface Placeholder {
  documented: string | RegExp;
  test: string;
}

/** Replaces every placeholder, each of which must occur: a changed document cannot slip past the test unnoticed. */
export function substitute(text: string, placeholders: readonly Placeholder[]): string {
  let result = text;
  for (const { documented, test } of placeholders) {
    const pattern = typeof documented === "string" ? new RegExp(documented.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"), "g") : documented;
    if (!new RegExp(pattern.source, pattern.flags.replace("g", "")).test(result)) {
      throw new Error(`the documented configuration no longer contains ${String(documented)}`);
    }
    result = result.replace(new RegExp(pattern.source, pattern.flags.includes("g") ? pattern.flags : `${pattern.flags}g`), () => test);
  }
  return result;
}

/** A self-signed certificate (its own CA) for the given DNS names, made with openssl in `dir`. */
export function selfSignedCertificate(dir: string, names: string[]): { certFile: string; keyFile: string; pem: string } {
  const certFile = join(dir, "cert.pem");
  const keyFile = join(dir, "key.pem");
  const made = spawnSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-days",
      "1",
      "-subj",
      `/CN=${names[0]}`,
      "-addext",
      `subjectAltName=${names.map((n) => `DNS:${n}`).join(",")}`,
      "-keyout",
      keyFile,
      "-out",
      certFile,
    ],
    { encoding: "utf8", timeout: 30_000 },
  );
  if (made.status !== 0) throw new Error(`openssl failed: ${made.stderr}`);
  return { certFile, keyFile, pem: readFileSync(certFile, "utf8") };
}

/** A proxy process; `ca` is the certificate that its TLS certificates chain to. */
export interface RunningProxy {
  ca: string;
  stop(): Promise<void>;
}

function stopProcess(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill("SIGTERM");
  });
}

const children = new Set<ChildProcess>();
// Should the test process die without its afterAll, no proxy outlives it.
process.once("exit", () => {
  for (const child of children) child.kill("SIGKILL");
});

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Starts `command` and waits until `ready()` holds, the process exits (an error with its output) or time is up. */
async function startProcess(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  ready: () => Promise<boolean>,
  logFile: string | undefined,
): Promise<ChildProcess> {
  const child = spawn(command, args, { env, stdio: ["ignore", "pipe", "pipe"] });
  children.add(child);
  child.once("exit", () => children.delete(child));
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const failure = (why: string): Error => {
    const log = logFile !== undefined && existsSync(logFile) ? readFileSync(logFile, "utf8") : "";
    return new Error(`${command} ${why}:\n${output}\n${log}`.slice(0, 8000));
  };
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw failure(`exited with ${child.exitCode}`);
    if (await ready()) return child;
    await sleep(100);
  }
  await stopProcess(child);
  throw failure(`did not become ready within ${START_TIMEOUT_MS} ms`);
}

/** Whether an https request to each host on the port completes with a certificate that chains to `ca`. */
async function answers(port: number, hosts: string[], ca: () => string | undefined): Promise<boolean> {
  const authority = ca();
  if (authority === undefined) return false;
  try {
    for (const host of hosts) await httpsFetch(port, authority, "GET", `https://${host}:${port}/healthz`, {});
    return true;
  } catch {
    return false;
  }
}

/**
 * nginx with the site configuration inside its `http` block, as `/etc/nginx/conf.d/*.conf` would be: one process
 * (`master_process off`, so no worker switches user), its prefix, temp paths, pid and logs in `dir`.
 */
export async function startNginx(dir: string, site: string, port: number, hosts: string[], ca: string): Promise<RunningProxy> {
  const siteFile = join(dir, "latchkey.conf");
  writeFileSync(siteFile, site);
  const main = join(dir, "nginx.conf");
  const errorLog = join(dir, "error.log");
  writeFileSync(
    main,
    [
      `error_log ${errorLog} warn;`,
      "events { worker_connections 64; }",
      "http {",
      "    access_log off;",
      ...["client_body", "proxy", "fastcgi", "uwsgi", "scgi"].map((kind) => `    ${kind}_temp_path ${join(dir, kind)};`),
      `    include ${siteFile};`,
      "}",
      "",
    ].join("\n"),
  );
  const args = ["-p", `${dir}/`, "-c", main, "-e", errorLog, "-g", `daemon off; master_process off; pid ${join(dir, "nginx.pid")};`];
  const checked = spawnSync("nginx", ["-t", ...args], { encoding: "utf8", timeout: 10_000 });
  if (checked.status !== 0) throw new Error(`nginx -t refused the configuration:\n${checked.stderr}\n${site}`);
  const child = await startProcess("nginx", args, process.env, () => answers(port, hosts, () => ca), errorLog);
  return { ca, stop: () => stopProcess(child) };
}

/**
 * Caddy with the site blocks after a global options block the test adds (not part of the documented configuration):
 * no admin endpoint, loopback only, the test's ports, certificates from Caddy's local authority, stored in `dir`,
 * and no attempt to install that authority into the system's trust store.
 */
export async function startCaddy(
  dir: string,
  site: string,
  ports: { https: number; http: number },
  hosts: string[],
): Promise<RunningProxy> {
  const storage = join(dir, "data");
  const file = join(dir, "Caddyfile");
  const log = join(dir, "caddy.log");
  writeFileSync(
    file,
    [
      "{",
      "\tadmin off",
      `\thttp_port ${ports.http}`,
      `\thttps_port ${ports.https}`,
      "\tdefault_bind 127.0.0.1",
      "\tlocal_certs",
      "\tskip_install_trust",
      `\tstorage file_system ${storage}`,
      `\tlog {\n\t\toutput file ${log}\n\t}`,
      "}",
      "",
      site,
      "",
    ].join("\n"),
  );
  const rootCertificate = join(storage, "pki/authorities/local/root.crt");
  const ca = (): string | undefined => (existsSync(rootCertificate) ? readFileSync(rootCertificate, "utf8") : undefined);
  const env = { ...process.env, HOME: dir, XDG_DATA_HOME: dir, XDG_CONFIG_HOME: dir };
  const child = await startProcess(
    "caddy",
    ["run", "--config", file, "--adapter", "caddyfile"],
    env,
    () => answers(ports.https, hosts, ca),
    log,
  );
  return { ca: ca() as string, stop: () => stopProcess(child) };
}

export interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** One https request to `url`, sent to 127.0.0.1 on `port` with the URL's host as SNI and Host (no DNS needed). */
export function httpsFetch(
  port: number,
  ca: string,
  method: string,
  url: string,
  headers: Record<string, string>,
  body?: string,
): Promise<Answer> {
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const request = httpsRequest(
      {
        host: "127.0.0.1",
        port,
        servername: target.hostname,
        ca,
        method,
        path: target.pathname + target.search,
        headers: { host: target.host, ...headers, ...(body !== undefined ? { "content-length": String(Buffer.byteLength(body)) } : {}) },
        agent: false,
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      },
      (response) => {
        let text = "";
        response.setEncoding("utf8");
        response.on("data", (chunk: string) => (text += chunk));
        response.on("end", () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: text }));
        response.on("error", reject);
      },
    );
    request.on("error", reject);
    request.end(body);
  });
}

interface StoredCookie {
  name: string;
  value: string;
  /** Lower-case; with `hostOnly` the exact host that set it. */
  domain: string;
  hostOnly: boolean;
  path: string;
  secure: boolean;
}

/**
 * A cookie jar that keeps the rules that matter here the way browsers do (RFC 6265bis): host-only cookies go back
 * only to their host, a `Domain` cookie to the domain and every host under it, a `Domain` that does not cover the
 * setting host is refused, `__Secure-` needs `Secure`, `__Host-` needs `Secure`, `Path=/` and no `Domain`, and
 * `Max-Age=0` or a past `Expires` deletes.
 */
export class CookieJar {
  private cookies: StoredCookie[] = [];

  store(url: URL, setCookie: string[] | undefined): void {
    for (const line of setCookie ?? []) {
      const [pair = "", ...attributeParts] = line.split(";");
      const equals = pair.indexOf("=");
      if (equals <= 0) continue;
      const name = pair.slice(0, equals).trim();
      const value = pair.slice(equals + 1).trim();
      const attributes = new Map<string, string>();
      for (const part of attributeParts) {
        const at = part.indexOf("=");
        const key = (at === -1 ? part : part.slice(0, at)).trim().toLowerCase();
        attributes.set(key, at === -1 ? "" : part.slice(at + 1).trim());
      }
      const host = url.hostname.toLowerCase();
      const domainAttribute = attributes.get("domain")?.replace(/^\./, "").toLowerCase();
      if (domainAttribute !== undefined && host !== domainAttribute && !host.endsWith(`.${domainAttribute}`)) continue;
      const secure = attributes.has("secure");
      const path = attributes.get("path") ?? "/";
      if (name.startsWith("__Secure-") && !secure) continue;
      if (name.startsWith("__Host-") && (!secure || domainAttribute !== undefined || path !== "/")) continue;
      const cookie: StoredCookie = {
        name,
        value,
        domain: domainAttribute ?? host,
        hostOnly: domainAttribute === undefined,
        path,
        secure,
      };
      this.cookies = this.cookies.filter((c) => !(c.name === name && c.domain === cookie.domain && c.path === path));
      const maxAge = attributes.get("max-age");
      const expires = attributes.get("expires");
      const expired = (maxAge !== undefined && Number(maxAge) <= 0) || (expires !== undefined && Date.parse(expires) <= Date.now());
      if (!expired) this.cookies.push(cookie);
    }
  }

  /** The Cookie header for a request to `url`, longest paths first. */
  header(url: URL): string {
    const host = url.hostname.toLowerCase();
    return this.cookies
      .filter((c) => (c.hostOnly ? c.domain === host : host === c.domain || host.endsWith(`.${c.domain}`)))
      .filter((c) => url.pathname === c.path || url.pathname.startsWith(c.path.endsWith("/") ? c.path : `${c.path}/`))
      .filter((c) => !c.secure || url.protocol === "https:")
      .sort((a, b) => b.path.length - a.path.length)
      .map((c) => `${c.name}=${c.value}`)
      .join("; ");
  }

  names(): string[] {
    return this.cookies.map((c) => c.name);
  }

  get(name: string): string | undefined {
    return this.cookies.find((c) => c.name === name)?.value;
  }
}

/** A browser through the proxy: its cookie jar, and the Origin header a browser sends with a form. */
export class ProxyBrowser {
  readonly jar = new CookieJar();
  constructor(
    private readonly port: number,
    private readonly ca: string,
  ) {}

  async request(
    method: "GET" | "POST",
    url: string,
    options: { form?: Record<string, string>; headers?: Record<string, string> } = {},
  ): Promise<Answer> {
    const target = new URL(url);
    const headers: Record<string, string> = { ...options.headers };
    const cookie = this.jar.header(target);
    if (cookie) headers["cookie"] = cookie;
    let body: string | undefined;
    if (options.form) {
      headers["content-type"] = "application/x-www-form-urlencoded";
      headers["origin"] = target.origin;
      body = new URLSearchParams(options.form).toString();
    }
    const answer = await httpsFetch(this.port, this.ca, method, url, headers, body);
    const setCookie = answer.headers["set-cookie"];
    this.jar.store(target, setCookie);
    return answer;
  }

  get(url: string, headers?: Record<string, string>): Promise<Answer> {
    return this.request("GET", url, headers ? { headers } : {});
  }
}

/** What the app behind the proxy saw of a request. */
export interface AppEcho {
  method: string;
  url: string;
  userId?: string;
  email?: string;
  accountId?: string;
  role?: string;
  cookie?: string;
}

/** The protected app: answers every request with what it received, marked `X-Test-Upstream: app`. */
export async function startEchoApp(port: number): Promise<Server> {
  const server = createServer((request, response) => {
    const echo: AppEcho = {
      method: request.method ?? "",
      url: request.url ?? "",
      ...(typeof request.headers["x-latchkey-user-id"] === "string" ? { userId: request.headers["x-latchkey-user-id"] } : {}),
      ...(typeof request.headers["x-latchkey-email"] === "string" ? { email: request.headers["x-latchkey-email"] } : {}),
      ...(typeof request.headers["x-latchkey-account-id"] === "string" ? { accountId: request.headers["x-latchkey-account-id"] } : {}),
      ...(typeof request.headers["x-latchkey-role"] === "string" ? { role: request.headers["x-latchkey-role"] } : {}),
      ...(request.headers.cookie !== undefined ? { cookie: request.headers.cookie } : {}),
    };
    response.writeHead(200, { "content-type": "application/json", "x-test-upstream": "app" });
    response.end(JSON.stringify(echo));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", resolve);
  });
  return server;
}
