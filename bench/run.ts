/**
 * Latchkey beside the ceiling of its stack and beside better-auth, in one run on one machine: `npm run bench`.
 *
 * Servers, each a child process on 127.0.0.1:
 * - **bare**: a plain Fastify 5 app answering a session-shaped JSON, and a password route that only checks one argon2id
 *   hash (bench/bare-server.ts): the stack's ceilings.
 * - **Latchkey** from `dist/` (built first, as `npm start` runs it) on SQLite, and on PostgreSQL in a temporary database
 *   (BENCH_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/postgres; skipped with a note if unreachable).
 *   A session is made as a person makes one: `latchkey account create` → accept the invitation → POST /api/v1/login →
 *   the emailed link → open it with the challenge cookie. Mail goes by SMTP to a server of the bench's own on loopback
 *   (test/helpers/smtp-sink.ts, as the soak's; one per Latchkey), as in production; BENCH_MAIL=outbox measures the
 *   `.eml` outbox instead.
 * - **better-auth** (../shared/peers/better-auth), `npm install`ed once into a cache dir and reused while its files
 *   are unchanged.
 * - with `--seed`: Latchkey again on a database seeded with 100,000 users, 10,000 accounts, 200,000 sessions and
 *   1,000,000 audit events (bench/seed.ts), beside the empty one, plus the first audit page and the Team Members page
 *   of the busy 1,000-member bench account.
 *
 * Cells: session check (`GET /api/v1/session`, better-auth's `get-session`, the bare route) and forward auth
 * (`GET /api/v1/verify`) at BENCH_CONNECTIONS (50); the password step (`POST /api/v1/login` with the right password,
 * better-auth's `sign-in/email`, the bare password route) and the raw hashes at BENCH_LOGIN_CONNECTIONS (8) in flight.
 * Mail included: a Latchkey password cell ends when the email of its last answered sign-in has been delivered, and
 * its rate is answered sign-ins over that whole time (a sender that fell behind would otherwise leave part of the
 * cell's work for after it). Every round measures
 * every cell once, the order of the servers flipping each round, so drift on a shared machine hits all sides; the
 * table gives the median of the rounds (req/s, p50, p99, and the server's main-thread CPU time per request, read from
 * /proc: the single-threaded part of a request, which bounds what one process can serve), RSS of each Latchkey (idle after start, after the bench),
 * and each goal of issue 10 as a ratio with MET / NOT MET.
 *
 * Latchkey's throttles are not raised: during the password runs every connection binds to its own loopback source
 * address (127.x.y.z) and reconnects from a fresh one every RECONNECT_EVERY requests, below the per-IP limit; the
 * per-email limit counts only wrong passwords and the bench sends right ones, at most 8 in flight (the counter is
 * taken before the hash, so more than 10 in flight for one email would be paused). Any non-2xx answer makes the run
 * invalid (exit 1).
 *
 * Options: --only session,verify,login (groups of cells), --seed (the scale run), --dialects sqlite,postgres.
 * Settings: BENCH_MAIL (smtp | outbox), BENCH_DURATION (s, default 5), BENCH_CONNECTIONS (50), BENCH_LOGIN_CONNECTIONS (8), BENCH_ROUNDS (3),
 * BENCH_PEER_DIR, BENCH_POSTGRES_URL, BENCH_PROFILE_DIR (each Latchkey writes a V8 CPU profile there when it stops,
 * `node --cpu-prof`; the figures of such a run are not comparable), BENCH_PERF=1 (each Latchkey runs with
 * `--perf-basic-prof`, so `perf record -a -g` during a cell names its JavaScript frames: on-CPU samples, where the
 * V8 profile's wall-clock samples charge a system call for the time the process waited to run again). Every wait and loop is bounded; every child is killed, every temp dir and
 * database removed at the end, also on Ctrl-C.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createHash, scrypt as scryptCallback, randomBytes } from "node:crypto";
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from "node:fs";
import net from "node:net";
import { cpus, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { hash as argon2Hash, verify as argon2Verify } from "@node-rs/argon2";
import autocannon, { type Result } from "autocannon";
import { simpleParser } from "mailparser";
import pg from "pg";
import { ARGON2_OPTIONS } from "../src/auth/passwords.js";
import { defaultLimits } from "../src/config.js";
import { SCALE, seedPostgres, seedSqlite } from "./seed.js";
import { median } from "./median.js";
import { SmtpSink } from "../test/helpers/smtp-sink.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const DURATION = boundedInt("BENCH_DURATION", 5, 1, 60);
const CONNECTIONS = boundedInt("BENCH_CONNECTIONS", 50, 1, 256);
const LOGIN_CONNECTIONS = boundedInt("BENCH_LOGIN_CONNECTIONS", 8, 1, 64);
const ROUNDS = boundedInt("BENCH_ROUNDS", 3, 1, 10);
const WARMUP_SECONDS = 1;
/** Where Latchkey's mail goes (BENCH_MAIL): `smtp` (default), a local SMTP server, as in production; or `outbox`. */
const MAIL = mailSetting();
/** How long a password cell waits after its load for the last sign-in email to be delivered before the run fails. */
const MAIL_DRAIN_MAX_MS = 60_000;
const POSTGRES_URL = process.env["BENCH_POSTGRES_URL"] ?? "postgres://postgres@127.0.0.1:5432/postgres";
const PROFILE_DIR = process.env["BENCH_PROFILE_DIR"];
/** Requests per connection before it reconnects from a new source address: well under the per-IP limit. */
const RECONNECT_EVERY = Math.min(50, Math.floor(defaultLimits.passwordAttemptsPerIp / 2));
const EMAIL = "bench@example.com";
const PASSWORD = `bench passphrase ${randomBytes(6).toString("hex")}`;
/** better-auth's scrypt (@better-auth/utils/password, node build). */
const SCRYPT = { N: 16384, r: 16, p: 1, dkLen: 64, maxmem: 128 * 16384 * 16 * 2 } as const;
/** Timed requests per page in the seeded run (sequential, after a warm-up). */
const PAGE_SAMPLES = 30;
/** Linux's USER_HZ, the unit of the CPU times in /proc/<pid>/stat: 100 on every architecture Node runs on. */
const CLOCK_TICKS_PER_SECOND = 100;

const options = parseArgs({
  options: {
    only: { type: "string" },
    seed: { type: "boolean", default: false },
    dialects: { type: "string", default: "sqlite,postgres" },
  },
}).values;
type Group = "session" | "verify" | "login";
const GROUPS: Group[] = ["session", "verify", "login"];
const only = new Set((options.only ?? GROUPS.join(",")).split(",").map((g) => g.trim()));
for (const group of only) if (!GROUPS.includes(group as Group)) throw new Error(`--only: unknown group "${group}" (${GROUPS.join(", ")})`);
const dialects = new Set(options.dialects.split(",").map((d) => d.trim()));
for (const dialect of dialects) if (dialect !== "sqlite" && dialect !== "postgres") throw new Error(`--dialects: unknown "${dialect}"`);

function mailSetting(): "smtp" | "outbox" {
  const raw = process.env["BENCH_MAIL"] ?? "smtp";
  if (raw !== "smtp" && raw !== "outbox") throw new Error(`BENCH_MAIL must be smtp or outbox, not ${JSON.stringify(raw)}`);
  return raw;
}

function boundedInt(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max)
    throw new Error(`${name}: expected a whole number from ${min} to ${max}, got "${raw}"`);
  return value;
}

function log(line: string): void {
  process.stderr.write(`[bench] ${line}\n`);
}

// ---------------------------------------------------------------------------------------------------------------
// Children and temp dirs: all tracked, all cleaned up.

const children = new Set<ChildProcess>();
const tempDirs: string[] = [];

function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

/** Starts a child in its own process group, so it and anything it starts (npm → node-gyp …) can be killed together. */
function start(
  command: string,
  args: string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv },
): ChildProcess & { output: () => string } {
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.add(child);
  let output = "";
  const keep = (chunk: Buffer): void => {
    // Keep only the tail: Latchkey logs a line per outbox message, thousands in a password run.
    output = (output + chunk.toString("utf8")).slice(-20_000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  child.once("exit", () => children.delete(child));
  return Object.assign(child, { output: () => output });
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // Already gone.
  }
}

async function stopAll(): Promise<void> {
  const running = [...children];
  for (const child of running) killGroup(child, "SIGTERM");
  const deadline = Date.now() + 5000;
  while (children.size > 0 && Date.now() < deadline) await sleep(100);
  for (const child of [...children]) killGroup(child, "SIGKILL");
}

function removeTempDirs(): void {
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

process.once("exit", () => {
  for (const child of [...children]) killGroup(child, "SIGKILL");
  removeTempDirs();
});
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    log(`${signal}: stopping`);
    void stopAll().finally(() => process.exit(130));
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, ms));
}

/** Runs a command to completion (bounded by `timeoutMs`) and returns its stdout. */
async function run(command: string, args: string[], options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs: number }): Promise<string> {
  const child = start(command, args, options);
  let stdout = "";
  child.stdout?.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")));
  const timer = setTimeout(() => killGroup(child, "SIGKILL"), options.timeoutMs);
  const code = await new Promise<number | null>((done) => child.once("exit", (c) => done(c)));
  clearTimeout(timer);
  if (code !== 0) throw new Error(`${command} ${args.join(" ")} failed (exit ${code}):\n${child.output().slice(-4000)}`);
  return stdout;
}

async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs: number,
  child?: ChildProcess & { output: () => string },
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child && child.exitCode !== null)
      throw new Error(`${what}: the process exited (${child.exitCode}):\n${child.output().slice(-4000)}`);
    if (await check().catch(() => false)) return;
    await sleep(200);
  }
  throw new Error(`${what}: not ready after ${timeoutMs / 1000} s${child ? `:\n${child.output().slice(-4000)}` : ""}`);
}

function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = net.createServer();
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => done(port));
    });
  });
}

/** `name=value` pairs from a response's Set-Cookie headers. */
function cookiesOf(response: Response): Map<string, string> {
  const jar = new Map<string, string>();
  for (const header of response.headers.getSetCookie()) {
    const pair = header.split(";")[0] ?? "";
    const at = pair.indexOf("=");
    if (at > 0) jar.set(pair.slice(0, at), pair.slice(at + 1));
  }
  return jar;
}

// ---------------------------------------------------------------------------------------------------------------
// Source-address rotation for the password runs (see the header comment).

let rotateSourceAddress = false;
let nextAddress = 0x7f010001; // 127.1.0.1
function freshLoopbackAddress(): string {
  for (let i = 0; i < 1000; i += 1) {
    nextAddress += 1;
    const last = nextAddress & 0xff;
    if (last !== 0 && last !== 255) break;
  }
  return [24, 16, 8, 0].map((shift) => (nextAddress >>> shift) & 0xff).join(".");
}
const originalConnect = net.connect;
// autocannon opens its sockets with net.connect(port, host); during password runs each socket gets its own address.
(net as unknown as { connect: (...args: unknown[]) => net.Socket }).connect = (...args: unknown[]): net.Socket => {
  if (rotateSourceAddress && typeof args[0] === "number" && typeof args[1] === "string") {
    return originalConnect({ port: args[0], host: args[1], localAddress: freshLoopbackAddress() });
  }
  return (originalConnect as (...a: unknown[]) => net.Socket)(...args);
};

// ---------------------------------------------------------------------------------------------------------------
// The servers.

interface Target {
  path: string;
  headers: Record<string, string>;
}

interface Server {
  name: string;
  base: string;
  pid: number | undefined;
  session?: Target;
  verify?: Target;
  login?: Target & { body: string };
  /** Messages this server has delivered so far (Latchkey: to the SMTP sink, or files in its outbox). */
  mailDelivered?: () => number;
}

/** Resident set size of a process in MB (Linux), or NaN. */
function rssMb(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const line = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return line ? Number(line[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

async function startBare(): Promise<Server> {
  const port = await freePort();
  const server = start(process.execPath, ["--import", "tsx", join(ROOT, "bench", "bare-server.ts"), String(port), PASSWORD], { cwd: ROOT });
  await waitFor("bare", async () => server.output().includes(`bare on ${port}`), 60_000, server);
  const base = `http://127.0.0.1:${port}`;
  return {
    name: "bare Fastify",
    base,
    pid: server.pid,
    session: { path: "/api/v1/session", headers: {} },
    login: {
      path: "/api/v1/login",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: EMAIL, password: PASSWORD }),
    },
  };
}

/** `dist/` as `npm start` builds it: the server is measured as it runs in production (no tsx loader in it). */
async function build(): Promise<void> {
  log("latchkey: npm run build");
  await run("npm", ["run", "build", "--silent"], { cwd: ROOT, timeoutMs: 5 * 60_000 });
}

const tempDatabases: string[] = [];

/** A new empty PostgreSQL database for one Latchkey, dropped at the end; null when PostgreSQL is not reachable. */
async function tempPostgresDatabase(): Promise<string | null> {
  const admin = new pg.Client({ connectionString: POSTGRES_URL });
  try {
    await admin.connect();
  } catch (error) {
    log(`postgres: not reachable at ${POSTGRES_URL} (${(error as Error).message}): PostgreSQL cells skipped`);
    return null;
  }
  const name = `latchkey_bench_${randomBytes(6).toString("hex")}`;
  try {
    await admin.query(`create database ${name}`);
  } finally {
    await admin.end();
  }
  tempDatabases.push(name);
  const url = new URL(POSTGRES_URL);
  url.pathname = `/${name}`;
  return url.href;
}

async function dropTempDatabases(): Promise<void> {
  if (tempDatabases.length === 0) return;
  const admin = new pg.Client({ connectionString: POSTGRES_URL });
  await admin.connect();
  try {
    for (const name of tempDatabases.splice(0)) await admin.query(`drop database if exists ${name} with (force)`);
  } finally {
    await admin.end();
  }
}

interface LatchkeyOptions {
  label: string;
  databaseUrl?: string;
  /** Where mail goes: an SMTP server of its own (the bench's, on loopback), or the outbox folder. */
  mail: "smtp" | "outbox";
  /** Seeds the database between `account create` (which migrates) and `serve`; returns the seconds it took. */
  seed?: (target: { sqliteFile: string; databaseUrl?: string; accountId: string; userId: string }) => Promise<void>;
}

interface Latchkey extends Server {
  rssIdleMb: number;
  dataDir: string;
}

async function startLatchkey(options: LatchkeyOptions): Promise<Latchkey> {
  const dataDir = join(tempDir("latchkey-bench-"), "data");
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PORT: String(port),
    HOST: "127.0.0.1",
    LATCHKEY_PUBLIC_URL: base,
    LATCHKEY_DATA_DIR: dataDir,
    // The default level: what an operator runs.
    LOG_LEVEL: "info",
  };
  // The embedded default unless PostgreSQL is asked for, whatever the caller's environment says; mail to the sink.
  for (const name of ["DATABASE_URL", "REDIS_URL", "SMTP_URL", "LATCHKEY_SECRET_KEY"]) delete env[name];
  const smtp = options.mail === "smtp" ? new SmtpSink() : undefined;
  if (smtp !== undefined) {
    await smtp.start();
    smtpSinks.push(smtp);
    env["SMTP_URL"] = `smtp://127.0.0.1:${smtp.port}`;
  }
  if (options.databaseUrl !== undefined) {
    env["DATABASE_URL"] = options.databaseUrl;
    env["LATCHKEY_SECRET_KEY"] = randomBytes(32).toString("base64");
  }
  const cli = [join(ROOT, "dist", "cli.js")];
  const name = `Latchkey ${options.label}`;
  const serve = [
    ...(process.env["BENCH_PERF"] ? ["--perf-basic-prof"] : []),
    ...(PROFILE_DIR ? ["--cpu-prof", `--cpu-prof-dir=${resolve(PROFILE_DIR)}`] : []),
    ...cli,
    "serve",
  ];

  log(`${name}: account create`);
  const created = await run(process.execPath, [...cli, "account", "create", "--name", "Bench", "--admin-email", EMAIL], {
    cwd: ROOT,
    env,
    timeoutMs: 60_000,
  });
  const invitationUrl = created.trim().split("\n").pop() ?? "";
  if (!invitationUrl.includes("/invite/")) throw new Error(`account create printed no invitation URL:\n${created}`);

  log(`${name}: serve on ${base}`);
  let server = start(process.execPath, serve, { cwd: ROOT, env });
  await waitFor(name, async () => (await fetch(`${base}/healthz`)).ok, 60_000, server);
  // Idle after start: settled for a moment, nothing asked but the health check.
  await sleep(2000);
  let rssIdleMb = rssMb(server.pid);

  // Accept the invitation: the form's CSRF token and cookie, then name and password.
  const invitePage = await fetch(invitationUrl);
  const csrf = /name="_csrf" value="([^"]+)"/.exec(await invitePage.text())?.[1];
  const formCookies = cookiesOf(invitePage);
  if (!invitePage.ok || csrf === undefined) throw new Error(`invitation page: ${invitePage.status}, no CSRF token`);
  const accepted = await fetch(invitationUrl, {
    method: "POST",
    redirect: "manual",
    headers: { "content-type": "application/x-www-form-urlencoded", cookie: [...formCookies].map(([k, v]) => `${k}=${v}`).join("; ") },
    body: new URLSearchParams({ _csrf: csrf, name: "Bench", password: PASSWORD }).toString(),
  });
  if (accepted.status !== 303) throw new Error(`accepting the invitation: ${accepted.status} ${await accepted.text()}`);

  if (options.seed) {
    // Seeded with the server stopped (SQLite's writer lock stays simple), then served again on the same port.
    killGroup(server, "SIGTERM");
    await waitFor(`${name} stop`, async () => server.exitCode !== null || server.signalCode !== null, 30_000);
    const me = await readBenchIds(dataDir, options.databaseUrl);
    await options.seed({
      sqliteFile: join(dataDir, "latchkey.db"),
      ...(options.databaseUrl ? { databaseUrl: options.databaseUrl } : {}),
      ...me,
    });
    server = start(process.execPath, serve, { cwd: ROOT, env });
    await waitFor(name, async () => (await fetch(`${base}/healthz`)).ok, 60_000, server);
    await sleep(2000);
    rssIdleMb = rssMb(server.pid);
  }

  // Sign in: password → challenge cookie → the emailed link, opened with that cookie.
  const loginBody = JSON.stringify({ email: EMAIL, password: PASSWORD });
  const login = await fetch(`${base}/api/v1/login`, { method: "POST", headers: { "content-type": "application/json" }, body: loginBody });
  if (login.status !== 200) throw new Error(`POST /api/v1/login: ${login.status} ${await login.text()}`);
  const challenge = [...cookiesOf(login)].find(([cookie]) => cookie.endsWith("latchkey_challenge"));
  if (!challenge) throw new Error("POST /api/v1/login set no challenge cookie");
  const outbox = join(dataDir, "outbox");
  // The sender delivers after the answer: a bounded wait either way.
  const link = smtp !== undefined ? await smtp.nextLink(EMAIL, 0, 10_000) : await linkFromOutbox(outbox);
  if (link === undefined) throw new Error(`no sign-in link reached the SMTP sink (${smtp?.received.length ?? 0} messages)`);
  const redeemed = await fetch(`${base}${new URL(link).pathname}`, {
    redirect: "manual",
    headers: { cookie: `${challenge[0]}=${challenge[1]}` },
  });
  const session = [...cookiesOf(redeemed)].find(([cookie]) => cookie.endsWith("latchkey_session"));
  if (redeemed.status !== 303 || !session) throw new Error(`opening the sign-in link: ${redeemed.status}, no session cookie`);
  const sessionHeaders = { cookie: `${session[0]}=${session[1]}` };
  for (const path of ["/api/v1/session", "/api/v1/verify"]) {
    const me = await fetch(`${base}${path}`, { headers: sessionHeaders });
    if (me.status !== 200) throw new Error(`GET ${path} with the new session: ${me.status}`);
  }
  log(`${name}: signed in`);

  return {
    name,
    base,
    pid: server.pid,
    dataDir,
    rssIdleMb,
    session: { path: "/api/v1/session", headers: sessionHeaders },
    verify: { path: "/api/v1/verify", headers: sessionHeaders },
    login: { path: "/api/v1/login", headers: { "content-type": "application/json" }, body: loginBody },
    mailDelivered: smtp !== undefined ? () => smtp.received.length : () => readdirSync(outbox).length,
  };
}

/** The bench account's and user's ids, read from the database the server just wrote. */
async function readBenchIds(dataDir: string, databaseUrl: string | undefined): Promise<{ accountId: string; userId: string }> {
  const query =
    "select m.account_id as account_id, m.user_id as user_id from memberships m join users u on u.id = m.user_id where u.email = $1";
  if (databaseUrl !== undefined) {
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    try {
      const row = (await client.query<{ account_id: string; user_id: string }>(query, [EMAIL])).rows[0];
      if (!row) throw new Error("the bench user has no membership");
      return { accountId: row.account_id, userId: row.user_id };
    } finally {
      await client.end();
    }
  }
  const { default: SQLite } = await import("better-sqlite3");
  const database = new SQLite(join(dataDir, "latchkey.db"), { readonly: true });
  try {
    const row = database.prepare(query.replace("$1", "?")).get(EMAIL) as { account_id: string; user_id: string } | undefined;
    if (!row) throw new Error("the bench user has no membership");
    return { accountId: row.account_id, userId: row.user_id };
  } finally {
    database.close();
  }
}

/** The sign-in link in the newest outbox message (bounded wait: the API answers after the file is written). */
async function linkFromOutbox(outbox: string): Promise<string> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const files = readdirSync(outbox)
      .filter((f) => f.endsWith(".eml"))
      .map((f) => join(outbox, f))
      .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
    for (const file of files) {
      const mail = await simpleParser(readFileSync(file));
      const link = /https?:\/\/\S+\/login\/email\/[A-Za-z0-9_-]{43}/.exec(mail.text ?? "")?.[0];
      if (link) return link;
    }
    await sleep(200);
  }
  throw new Error(`no sign-in link in ${outbox}`);
}

function peerSource(): string {
  const candidates = [
    process.env["BENCH_PEER_DIR"],
    join(ROOT, "..", "shared", "peers", "better-auth"),
    join(ROOT, "..", "..", "shared", "peers", "better-auth"),
  ].filter((c): c is string => c !== undefined);
  const found = candidates.find((c) => existsSync(join(c, "package.json")));
  if (!found) throw new Error(`better-auth peer not found (set BENCH_PEER_DIR); looked in ${candidates.join(", ")}`);
  return resolve(found);
}

/**
 * The peer, installed once into a cache dir named after its files' hash and reused while they are unchanged (its
 * `npm install` takes minutes: better-sqlite3 may build from source).
 */
async function installPeer(): Promise<string> {
  const source = peerSource();
  const digest = createHash("sha256");
  for (const file of readdirSync(source).sort()) digest.update(file).update(readFileSync(join(source, file)));
  const cacheRoot = join(tmpdir(), "latchkey-bench-cache");
  const dir = join(cacheRoot, `better-auth-${digest.digest("hex").slice(0, 16)}`);
  if (existsSync(join(dir, "node_modules", "better-auth"))) {
    log(`peer: installed in ${dir} (cached)`);
    return dir;
  }
  mkdirSync(cacheRoot, { recursive: true });
  const work = `${dir}.${process.pid}`;
  rmSync(work, { recursive: true, force: true });
  cpSync(source, work, { recursive: true });
  // The shared copy is read-only; npm must write package-lock.json and node_modules here.
  const makeWritable = (path: string): void => {
    const stat = statSync(path);
    chmodSync(path, stat.mode | 0o200);
    if (stat.isDirectory()) for (const entry of readdirSync(path)) makeWritable(join(path, entry));
  };
  makeWritable(work);
  log(`peer: npm install in ${work} (a few minutes, once)`);
  await run("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error"], { cwd: work, timeoutMs: 15 * 60_000 });
  rmSync(dir, { recursive: true, force: true });
  renameSync(work, dir);
  return dir;
}

async function startPeer(dir: string): Promise<Server> {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  log(`peer: serve on ${base}`);
  const dbDir = tempDir("latchkey-bench-peer-db-");
  const server = start(process.execPath, ["server.mjs", String(port), join(dbDir, "peer.db")], { cwd: dir });
  await waitFor("peer", async () => server.output().includes(`peer on ${port}`), 60_000, server);
  const cookie = (await run(process.execPath, ["sign-up.mjs", String(port), EMAIL, PASSWORD], { cwd: dir, timeoutMs: 60_000 })).trim();
  if (!cookie.startsWith("better-auth.session_token=")) throw new Error(`peer sign-up printed no cookie: ${cookie}`);
  // get-session answers 200 `null` without a session: check the body once, since autocannon only sees the status.
  const me = await fetch(`${base}/api/auth/get-session`, { headers: { cookie } });
  const body = (await me.json()) as { user?: { email?: string } } | null;
  if (me.status !== 200 || body?.user?.email !== EMAIL) throw new Error(`peer get-session: ${me.status} ${JSON.stringify(body)}`);
  log("peer: signed in");
  return {
    name: "better-auth",
    base,
    pid: server.pid,
    session: { path: "/api/auth/get-session", headers: { cookie } },
    login: {
      path: "/api/auth/sign-in/email",
      headers: { "content-type": "application/json", origin: base },
      body: JSON.stringify({ email: EMAIL, password: PASSWORD }),
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Measuring.

type Operation = "session" | "verify" | "login";

interface Sample {
  rps: number;
  p50: number;
  p99: number;
  bad: number;
  /** CPU time of the server's main thread per request (ms): where the single-threaded work of a request goes. */
  mainCpuMs: number;
  /** Seconds after the load ended until every sign-in's email was delivered (0 where no mail is sent). */
  mailLagSeconds: number;
}

/** CPU time (user + system) of a process's main thread, in ms (Linux: /proc/<pid>/task/<pid>/stat), or NaN. */
function mainThreadCpuMs(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    // The fields after the command (which may hold spaces) in parentheses; utime and stime are the 14th and 15th.
    const fields = readFileSync(`/proc/${pid}/task/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return NaN;
  }
}

async function measure(server: Server, operation: Operation, seconds: number): Promise<Sample> {
  const target = server[operation];
  if (!target) throw new Error(`${server.name} has no ${operation}`);
  const login = operation === "login";
  rotateSourceAddress = login;
  const cpuBefore = mainThreadCpuMs(server.pid);
  const mailBefore = server.mailDelivered?.() ?? 0;
  let result: Result;
  try {
    result = await autocannon({
      url: `${server.base}${target.path}`,
      method: login ? "POST" : "GET",
      headers: target.headers,
      ...("body" in target ? { body: target.body } : {}),
      connections: login ? LOGIN_CONNECTIONS : CONNECTIONS,
      duration: seconds,
      timeout: 30,
      ...(login ? { reconnectRate: RECONNECT_EVERY } : {}),
    });
  } finally {
    rotateSourceAddress = false;
  }
  // Mail included: each right password sends one email, and the cell is over when the last of them is delivered. A
  // sender that fell behind would otherwise do part of the cell's work after it, unmeasured: its lag counts in the rate.
  let mailLagSeconds = 0;
  if (login && server.mailDelivered !== undefined) {
    const expected = mailBefore + result["2xx"];
    const loadEnded = performance.now();
    while (server.mailDelivered() < expected && performance.now() - loadEnded < MAIL_DRAIN_MAX_MS) await sleep(20);
    const delivered = server.mailDelivered();
    if (delivered < expected)
      throw new Error(`${server.name}: ${expected - delivered} sign-in emails not delivered ${MAIL_DRAIN_MAX_MS / 1000} s after the load`);
    mailLagSeconds = (performance.now() - loadEnded) / 1000;
  }
  // Every server's password cell alike: answered sign-ins over the time until the last one's email was delivered.
  const rps = login ? result["2xx"] / (result.duration + mailLagSeconds) : result.requests.average;
  const mainCpuMs = (mainThreadCpuMs(server.pid) - cpuBefore) / result.requests.total;
  const bad = result.non2xx + result.errors + result.timeouts;
  if (bad > 0) log(`WARNING ${server.name} ${operation}: ${bad} bad answers ${JSON.stringify(result.statusCodeStats)}`);
  return { rps, p50: result.latency.p50, p99: result.latency.p99, bad, mainCpuMs, mailLagSeconds };
}

/** Raw hash throughput at the password step's concurrency: LOGIN_CONNECTIONS operations in flight on libuv's pool. */
async function hashOpsPerSecond(kind: "argon2id" | "scrypt", seconds: number): Promise<number> {
  const password = PASSWORD;
  const salt = randomBytes(16).toString("hex");
  const argon2Stored = await argon2Hash(password, ARGON2_OPTIONS);
  const once =
    kind === "argon2id"
      ? async (): Promise<void> => void (await argon2Verify(argon2Stored, password))
      : (): Promise<void> =>
          new Promise((done, fail) =>
            scryptCallback(
              password.normalize("NFKC"),
              salt,
              SCRYPT.dkLen,
              { N: SCRYPT.N, r: SCRYPT.r, p: SCRYPT.p, maxmem: SCRYPT.maxmem },
              (error) => (error ? fail(error) : done()),
            ),
          );
  await once(); // warm-up
  const end = performance.now() + seconds * 1000;
  const maxOps = 100_000; // a bound, whatever the machine
  let ops = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: LOGIN_CONNECTIONS }, async () => {
      while (performance.now() < end && ops < maxOps) {
        await once();
        ops += 1;
      }
    }),
  );
  return ops / ((performance.now() - started) / 1000);
}

/** Sequential timings of one page (ms), after a warm-up: p50 and p99 of PAGE_SAMPLES requests. */
async function pageTimes(
  base: string,
  path: string,
  headers: Record<string, string>,
): Promise<{ p50: number; p99: number; failed?: string }> {
  const once = async (): Promise<number> => {
    const started = performance.now();
    const response = await fetch(`${base}${path}`, { headers, redirect: "manual" });
    const body = await response.text();
    if (response.status !== 200) throw new Error(`GET ${path}: ${response.status} ${body.slice(0, 120)}`);
    return performance.now() - started;
  };
  const times: number[] = [];
  try {
    for (let i = 0; i < 3; i += 1) times.push(await once());
    for (let i = 0; i < PAGE_SAMPLES; i += 1) times.push(await once());
  } catch (error) {
    // A page so slow that the server starts shedding (503) is a result, not a crash of the bench: its times so far.
    log(
      `WARNING ${path}: ${(error as Error).message.split("\n")[0] ?? ""} after ${times.length} answers (${times.map((t) => fmt(t, 0)).join(", ")} ms)`,
    );
    return {
      p50: quantile(
        [...times].sort((a, b) => a - b),
        0.5,
      ),
      p99: Infinity,
      failed: (error as Error).message.slice(0, 40),
    };
  }
  times.splice(0, 3);
  times.sort((a, b) => a - b);
  return { p50: quantile(times, 0.5), p99: quantile(times, 0.99) };
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

function fmt(value: number, digits = 1): string {
  return Number.isFinite(value) ? value.toFixed(digits) : "–";
}

// ---------------------------------------------------------------------------------------------------------------
// The run.

interface Cell {
  server: Server;
  operation: Operation;
}

async function main(): Promise<void> {
  const started = Date.now();
  log(
    `node ${process.version}, ${cpus().length} CPUs, ${CONNECTIONS} connections (password step ${LOGIN_CONNECTIONS}), ${DURATION} s per cell, ${ROUNDS} rounds; groups ${[...only].join(",")}; dialects ${[...dialects].join(",")}${options.seed ? "; seeded run" : ""}`,
  );
  const peerInstalled = installPeer();
  peerInstalled.catch(() => undefined); // awaited below; avoid an unhandled rejection meanwhile
  await build();

  const bare = await startBare();
  const latchkeys: Latchkey[] = [];
  if (dialects.has("sqlite")) latchkeys.push(await startLatchkey({ label: "SQLite", mail: MAIL }));
  const postgresUrl = dialects.has("postgres") ? await tempPostgresDatabase() : null;
  if (postgresUrl !== null) latchkeys.push(await startLatchkey({ label: "PostgreSQL", databaseUrl: postgresUrl, mail: MAIL }));
  const seeded: Latchkey[] = [];
  const seedSeconds: Record<string, number> = {};
  if (options.seed) {
    for (const latchkey of [...latchkeys]) {
      const postgres = latchkey.name.endsWith("PostgreSQL");
      const databaseUrl = postgres ? await tempPostgresDatabase() : null;
      const label = `${postgres ? "PostgreSQL" : "SQLite"} seeded`;
      seeded.push(
        await startLatchkey({
          label,
          mail: MAIL,
          ...(databaseUrl ? { databaseUrl } : {}),
          seed: async (target) => {
            log(
              `Latchkey ${label}: seeding ${SCALE.users} users, ${SCALE.accounts} accounts, ${SCALE.sessions} sessions, ${SCALE.auditEvents} audit events`,
            );
            const t0 = performance.now();
            const rows = target.databaseUrl ? await seedPostgres(target.databaseUrl, target) : await seedSqlite(target.sqliteFile, target);
            seedSeconds[label] = (performance.now() - t0) / 1000;
            log(`Latchkey ${label}: ${rows} rows in ${fmt(seedSeconds[label] ?? NaN)} s`);
          },
        }),
      );
    }
  }
  const peer = await startPeer(await peerInstalled);
  const everyLatchkey = [...latchkeys, ...seeded];

  // The cells of each group; the order of the servers within a group flips every round.
  const groups: Cell[][] = [];
  if (only.has("session")) groups.push([bare, ...everyLatchkey, peer].map((server) => ({ server, operation: "session" as const })));
  if (only.has("verify")) groups.push(everyLatchkey.map((server) => ({ server, operation: "verify" as const })));
  const loginServers = [bare, ...latchkeys.filter((l) => l.name.endsWith("SQLite")), peer];
  if (only.has("login")) groups.push(loginServers.map((server) => ({ server, operation: "login" as const })));

  log("warm-up");
  for (const group of groups) for (const cell of group) await measure(cell.server, cell.operation, WARMUP_SECONDS);

  const samples = new Map<string, Sample[]>();
  const key = (cell: Cell): string => `${cell.server.name}:${cell.operation}`;
  const hashes = { argon2id: [] as number[], scrypt: [] as number[] };
  const rssUnderLoad = new Map<string, number>();
  for (let round = 0; round < ROUNDS; round += 1) {
    const flip = round % 2 === 1;
    for (const group of groups) {
      for (const cell of flip ? [...group].reverse() : group) {
        log(`round ${round + 1}/${ROUNDS}: ${cell.server.name} ${cell.operation}`);
        samples.set(key(cell), [...(samples.get(key(cell)) ?? []), await measure(cell.server, cell.operation, DURATION)]);
        // Right after the load, before the idle heap shrinks: the figure a deployment sees under traffic.
        if (everyLatchkey.some((l) => l.name === cell.server.name)) {
          rssUnderLoad.set(cell.server.name, Math.max(rssUnderLoad.get(cell.server.name) ?? 0, rssMb(cell.server.pid)));
        }
      }
    }
    if (only.has("login")) {
      for (const kind of flip ? (["scrypt", "argon2id"] as const) : (["argon2id", "scrypt"] as const)) {
        log(`round ${round + 1}/${ROUNDS}: raw ${kind}`);
        hashes[kind].push(await hashOpsPerSecond(kind, DURATION));
      }
    }
  }
  const rssAfter = new Map(everyLatchkey.map((l) => [l.name, rssMb(l.pid)]));

  // The seeded run's pages: the busy 1,000-member bench account's first audit page and Team Members page (its first
  // page: 100 of the 1,000 members, by name).
  const pages: Array<{ server: string; page: string; p50: number; p99: number; failed?: string }> = [];
  for (const latchkey of seeded) {
    for (const [page, path] of [
      ["first audit page", "/settings/audit"],
      ["Team Members page (first of 1,000 members)", "/settings/team"],
    ] as const) {
      const times = await pageTimes(latchkey.base, path, latchkey.session?.headers ?? {});
      pages.push({ server: latchkey.name, page, ...times });
    }
  }
  await stopAll();

  // ---- the table ----
  const summary = (server: Server, operation: Operation): Sample & { rounds: number[] } => {
    const list = samples.get(`${server.name}:${operation}`) ?? [];
    return {
      rps: median(list.map((s) => s.rps)),
      p50: median(list.map((s) => s.p50)),
      p99: median(list.map((s) => s.p99)),
      bad: list.reduce((a, s) => a + s.bad, 0),
      mainCpuMs: median(list.map((s) => s.mainCpuMs)),
      mailLagSeconds: Math.max(0, ...list.map((s) => s.mailLagSeconds)),
      rounds: list.map((s) => s.rps),
    };
  };
  const lines: string[] = [];
  const row = (cells: Array<string | number>): void => void lines.push(`| ${cells.join(" | ")} |`);
  const labels: Record<Operation, string> = { session: "session check", verify: "forward auth (verify)", login: "password step" };
  row(["operation", "server", "req/s", "p50 ms", "p99 ms", "main-thread CPU ms/req", "req/s per round"]);
  row(["---", "---", "---:", "---:", "---:", "---:", "---"]);
  for (const group of groups) {
    for (const cell of group) {
      const s = summary(cell.server, cell.operation);
      row([
        labels[cell.operation],
        cell.server.name,
        fmt(s.rps),
        fmt(s.p50),
        fmt(s.p99),
        fmt(s.mainCpuMs, 3),
        s.rounds.map((r) => fmt(r, 0)).join(", "),
      ]);
    }
  }
  const argon2 = median(hashes.argon2id);
  const scrypt = median(hashes.scrypt);
  if (only.has("login")) {
    row([
      "raw hash",
      `argon2id m=19456 t=2 p=1, ${LOGIN_CONNECTIONS} in flight`,
      fmt(argon2),
      "",
      "",
      "",
      hashes.argon2id.map((r) => fmt(r, 0)).join(", "),
    ]);
    row([
      "raw hash",
      `scrypt N=16384 r=16 p=1, ${LOGIN_CONNECTIONS} in flight`,
      fmt(scrypt),
      "",
      "",
      "",
      hashes.scrypt.map((r) => fmt(r, 0)).join(", "),
    ]);
  }
  for (const p of pages)
    row([p.page, p.server, "", fmt(p.p50), fmt(p.p99), "", p.failed ? `FAILED: ${p.failed}` : `${PAGE_SAMPLES} sequential requests`]);

  const memory: string[] = [
    "| Latchkey | RSS idle after start (MB) | RSS after the bench (MB) | RSS right after a cell, highest (MB) |",
    "| --- | ---: | ---: | ---: |",
  ];
  for (const l of everyLatchkey)
    memory.push(`| ${l.name} | ${fmt(l.rssIdleMb)} | ${fmt(rssAfter.get(l.name) ?? NaN)} | ${fmt(rssUnderLoad.get(l.name) ?? NaN)} |`);

  // ---- the goals of issue 10 ----
  const goals: Array<{ goal: string; value: string; met: boolean | null }> = [];
  const notes: string[] = [];
  const mailLines: string[] = [];
  const goal = (text: string, value: number, target: number, better: "higher" | "lower", unit = ""): void => {
    const met = Number.isNaN(value) ? null : better === "higher" ? value >= target : value < target;
    // A value that rounds to its target (0.147 against 0.15) is shown with one more digit, so NOT MET never reads as equal.
    goals.push({ goal: text, value: `${fmt(value, fmt(value, 2) === fmt(target, 2) ? 3 : 2)}${unit}`, met });
  };
  const bareRps = summary(bare, "session").rps;
  const peerSession = summary(peer, "session").rps;
  for (const l of latchkeys) {
    const postgres = l.name.endsWith("PostgreSQL");
    for (const operation of ["session", "verify"] as const) {
      if (!only.has(operation) || !only.has("session")) continue;
      const s = summary(l, operation);
      goal(`${l.name} ${labels[operation]} ÷ bare route ≥ ${postgres ? "0.15" : "0.30"}`, s.rps / bareRps, postgres ? 0.15 : 0.3, "higher");
      if (!postgres) goal(`${l.name} ${labels[operation]} ÷ better-auth get-session ≥ 20`, s.rps / peerSession, 20, "higher");
      goal(`${l.name} ${labels[operation]} p99 < 10 ms at ${CONNECTIONS} connections`, s.p99, 10, "lower", " ms");
    }
  }
  if (only.has("login")) {
    for (const l of latchkeys.filter((x) => x.name.endsWith("SQLite"))) {
      const step = summary(l, "login").rps;
      goal(`${l.name} password step ÷ raw argon2id ≥ 0.90 (mail included)`, step / argon2, 0.9, "higher");
      goal(`${l.name} password step ÷ better-auth sign-in ≥ 4`, step / summary(peer, "login").rps, 4, "higher");
    }
    for (const l of latchkeys.filter((x) => (samples.get(`${x.name}:login`) ?? []).length > 0)) {
      const where = MAIL === "smtp" ? "by SMTP to a local server" : "to the outbox folder";
      mailLines.push(
        `${l.name}: every sign-in's email delivered ${where}, the last at most ${fmt(summary(l, "login").mailLagSeconds, 2)} s after the load ended (that time counts in its rate).`,
      );
    }
    // Not a goal of the issue: where the stack itself stands, so the password step's gap is Latchkey's own work.
    if (only.has("login"))
      notes.push(`bare Fastify password route (argon2id only) ÷ raw argon2id: ${fmt(summary(bare, "login").rps / argon2, 2)}`);
  }
  for (const l of latchkeys) {
    goal(`${l.name} RSS idle after start < 100 MB`, l.rssIdleMb, 100, "lower", " MB");
    goal(`${l.name} RSS after the bench < 150 MB`, rssAfter.get(l.name) ?? NaN, 150, "lower", " MB");
  }
  for (const s of seeded) {
    const empty = latchkeys.find((l) => s.name.startsWith(l.name));
    if (empty && only.has("session"))
      goal(`${s.name} session check ÷ empty database ≥ 0.90`, summary(s, "session").rps / summary(empty, "session").rps, 0.9, "higher");
    const label = s.name.replace(/^Latchkey /, "");
    goal(`${s.name}: seeding time < 120 s`, seedSeconds[label] ?? NaN, 120, "lower", " s");
    for (const p of pages.filter((x) => x.server === s.name)) goal(`${s.name} ${p.page} p99 < 50 ms`, p.p99, 50, "lower", " ms");
  }
  const goalLines = ["| goal (issue 10) | measured | |", "| --- | ---: | --- |"];
  for (const g of goals) goalLines.push(`| ${g.goal} | ${g.value} | ${g.met === null ? "n/a" : g.met ? "MET" : "NOT MET"} |`);
  if (notes.length > 0) goalLines.push("", ...notes.map((n) => `For comparison: ${n}.`));
  if (mailLines.length > 0) goalLines.push("", ...mailLines);

  const bad = [...samples.values()].flat().reduce((a, s) => a + s.bad, 0);
  const out = [
    "",
    `Latchkey beside bare Fastify and better-auth — ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC, node ${process.version}, ${cpus().length} CPUs (load average before: ${loadBefore}), ${CONNECTIONS} connections (password step ${LOGIN_CONNECTIONS}), ${DURATION} s × ${ROUNDS} rounds per cell, medians of rounds, alternating order; whole run ${fmt((Date.now() - started) / 1000, 0)} s`,
    "",
    ...lines,
    "",
    ...memory,
    "",
    ...goalLines,
    "",
    bad > 0
      ? `INVALID: ${bad} non-2xx answers, errors or timeouts during measured runs (see warnings above).`
      : "All measured requests answered 2xx.",
    "",
  ];
  process.stdout.write(out.join("\n"));
  if (bad > 0) process.exitCode = 1;
}

/** Each Latchkey's SMTP server, closed at the end. */
const smtpSinks: SmtpSink[] = [];

const loadBefore = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");

try {
  await main();
} catch (error) {
  log(`failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  process.exitCode = 1;
} finally {
  await stopAll();
  await Promise.all(smtpSinks.splice(0).map((sink) => sink.stop()));
  await dropTempDatabases().catch((error: unknown) => log(`dropping the temp databases failed: ${String(error)}`));
  removeTempDirs();
}
