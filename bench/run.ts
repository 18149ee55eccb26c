/**
 * Latchkey beside better-auth, in one run on one machine: `npm run bench`.
 *
 * 1. Latchkey runs as a child (`node --import tsx src/cli.ts serve`) on SQLite in a temp data dir, mail to the outbox.
 *    A signed-in session is made the way a person makes one: `latchkey account create` → accept the invitation →
 *    POST /api/v1/login → read the link from <data>/outbox → open it with the challenge cookie.
 * 2. The peer (../shared/peers/better-auth) is copied to a temp dir, `npm install`ed there and started the same way;
 *    its `sign-up.mjs` gives a signed-in cookie.
 * 3. In each round autocannon measures each operation on both servers (the session check, the password step), and
 *    the raw cost of each password hash (argon2id for Latchkey, scrypt for better-auth) is measured at the same
 *    concurrency; the order flips every round (L,P then P,L …) so drift on a shared machine hits both alike.
 * 4. A table of req/s and p50/p99 latency, the ratio Latchkey/peer, and each password step ÷ its own hash.
 *
 * Latchkey's password throttle allows 100 attempts per client IP per 15 minutes (src/config.ts). The bench keeps
 * Latchkey's real limits and stays under them: during the password runs every connection binds to its own loopback
 * source address (127.x.y.z; all of 127/8 is loopback on Linux) and reconnects from a fresh one every
 * RECONNECT_EVERY requests, so no address ever makes more than RECONNECT_EVERY attempts. The per-email limit counts
 * only wrong passwords, and the bench sends only right ones. Any non-2xx answer makes the run invalid (exit 1).
 *
 * Everything listens on 127.0.0.1; every wait and loop is bounded; every child is killed and every temp dir removed
 * at the end, also on Ctrl-C. Settings: BENCH_DURATION (s, default 5), BENCH_CONNECTIONS (4), BENCH_ROUNDS (3),
 * BENCH_PEER_DIR (default ../shared/peers/better-auth).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { scrypt as scryptCallback, randomBytes } from "node:crypto";
import { chmodSync, cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import net from "node:net";
import { cpus, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { hash as argon2Hash, verify as argon2Verify } from "@node-rs/argon2";
import autocannon, { type Result } from "autocannon";
import { simpleParser } from "mailparser";
import { defaultLimits } from "../src/config.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const PEER_SOURCE = resolve(process.env["BENCH_PEER_DIR"] ?? join(ROOT, "..", "shared", "peers", "better-auth"));
const DURATION = boundedInt("BENCH_DURATION", 5, 1, 60);
const CONNECTIONS = boundedInt("BENCH_CONNECTIONS", 4, 1, 64);
const ROUNDS = boundedInt("BENCH_ROUNDS", 3, 1, 10);
const WARMUP_SECONDS = 1;
const HASH_SECONDS = 3;
/** Requests per connection before it reconnects from a new source address: well under the per-IP limit. */
const RECONNECT_EVERY = Math.min(50, Math.floor(defaultLimits.passwordAttemptsPerIp / 2));
const EMAIL = "bench@example.com";
const PASSWORD = `bench passphrase ${randomBytes(6).toString("hex")}`;
/** The argon2id parameters of src/auth/passwords.ts (PRODUCT.md: m=19456 KiB, t=2, p=1). */
const ARGON2 = { algorithm: 2, memoryCost: 19456, timeCost: 2, parallelism: 1 } as const;
/** better-auth's scrypt (@better-auth/utils/password, node build). */
const SCRYPT = { N: 16384, r: 16, p: 1, dkLen: 64, maxmem: 128 * 16384 * 16 * 2 } as const;

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
// The two servers.

interface Server {
  name: string;
  base: string;
  session: { path: string; headers: Record<string, string> };
  login: { path: string; headers: Record<string, string>; body: string };
}

async function startLatchkey(): Promise<Server> {
  const dataDir = join(tempDir("latchkey-bench-"), "data");
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PORT: String(port),
    HOST: "127.0.0.1",
    LATCHKEY_PUBLIC_URL: base,
    LATCHKEY_DATA_DIR: dataDir,
    LOG_LEVEL: "silent",
  };
  // The embedded default, whatever the caller's environment says: SQLite in the data dir, mail to the outbox.
  for (const name of ["DATABASE_URL", "REDIS_URL", "SMTP_URL", "LATCHKEY_SECRET_KEY"]) delete env[name];
  const cli = ["--import", "tsx", join(ROOT, "src", "cli.ts")];

  log("latchkey: account create");
  const created = await run(process.execPath, [...cli, "account", "create", "--name", "Bench", "--admin-email", EMAIL], {
    cwd: ROOT,
    env,
    timeoutMs: 60_000,
  });
  const invitationUrl = created.trim().split("\n").pop() ?? "";
  if (!invitationUrl.includes("/invite/")) throw new Error(`account create printed no invitation URL:\n${created}`);

  log(`latchkey: serve on ${base}`);
  const server = start(process.execPath, [...cli, "serve"], { cwd: ROOT, env });
  await waitFor("latchkey", async () => (await fetch(`${base}/healthz`)).ok, 60_000, server);

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

  // Sign in: password → challenge cookie → the emailed link, opened with that cookie.
  const loginBody = JSON.stringify({ email: EMAIL, password: PASSWORD });
  const login = await fetch(`${base}/api/v1/login`, { method: "POST", headers: { "content-type": "application/json" }, body: loginBody });
  if (login.status !== 200) throw new Error(`POST /api/v1/login: ${login.status} ${await login.text()}`);
  const challenge = [...cookiesOf(login)].find(([name]) => name.endsWith("latchkey_challenge"));
  if (!challenge) throw new Error("POST /api/v1/login set no challenge cookie");
  const link = await linkFromOutbox(join(dataDir, "outbox"));
  const redeemed = await fetch(`${base}${new URL(link).pathname}`, {
    redirect: "manual",
    headers: { cookie: `${challenge[0]}=${challenge[1]}` },
  });
  const session = [...cookiesOf(redeemed)].find(([name]) => name.endsWith("latchkey_session"));
  if (redeemed.status !== 303 || !session) throw new Error(`opening the sign-in link: ${redeemed.status}, no session cookie`);
  const sessionHeaders = { cookie: `${session[0]}=${session[1]}` };
  const me = await fetch(`${base}/api/v1/session`, { headers: sessionHeaders });
  if (me.status !== 200) throw new Error(`GET /api/v1/session with the new session: ${me.status}`);
  log("latchkey: signed in");

  return {
    name: "Latchkey",
    base,
    session: { path: "/api/v1/session", headers: sessionHeaders },
    login: { path: "/api/v1/login", headers: { "content-type": "application/json" }, body: loginBody },
  };
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

/** Copies the peer, installs it; returns a function that starts it once the install is done. */
function installPeer(): Promise<string> {
  const dir = join(tempDir("latchkey-bench-peer-"), "peer");
  cpSync(PEER_SOURCE, dir, { recursive: true });
  // The shared copy is read-only; npm must write package-lock.json and node_modules here.
  const makeWritable = (path: string): void => {
    const stat = statSync(path);
    chmodSync(path, stat.mode | 0o200);
    if (stat.isDirectory()) for (const entry of readdirSync(path)) makeWritable(join(path, entry));
  };
  makeWritable(dir);
  log(`peer: npm install in ${dir} (a few minutes: better-sqlite3 may build from source)`);
  return run("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error"], { cwd: dir, timeoutMs: 15 * 60_000 }).then(() => dir);
}

async function startPeer(dir: string): Promise<Server> {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  log(`peer: serve on ${base}`);
  const server = start(process.execPath, ["server.mjs", String(port), join(dir, "peer.db")], { cwd: dir });
  await waitFor("peer", async () => server.output().includes(`peer on ${port}`), 60_000, server);
  const cookie = (await run(process.execPath, ["sign-up.mjs", String(port), EMAIL, PASSWORD], { cwd: dir, timeoutMs: 60_000 })).trim();
  if (!cookie.startsWith("better-auth.session_token=")) throw new Error(`peer sign-up printed no cookie: ${cookie}`);
  // get-session answers 200 `null` without a session: check the body once, since autocannon only sees the status.
  const me = await fetch(`${base}/api/auth/get-session`, { headers: { cookie } });
  const body = (await me.json()) as { user?: { email?: string } } | null;
  if (me.status !== 200 || body?.user?.email !== EMAIL) throw new Error(`peer get-session: ${me.status} ${JSON.stringify(body)}`);
  log("peer: signed in");
  const origin = { origin: base };
  return {
    name: "better-auth",
    base,
    session: { path: "/api/auth/get-session", headers: { cookie } },
    login: {
      path: "/api/auth/sign-in/email",
      headers: { "content-type": "application/json", ...origin },
      body: JSON.stringify({ email: EMAIL, password: PASSWORD }),
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Measuring.

type Operation = "session" | "login";

interface Sample {
  rps: number;
  p50: number;
  p99: number;
  bad: number;
}

async function measure(server: Server, operation: Operation, seconds: number): Promise<Sample> {
  const target =
    operation === "session"
      ? { method: "GET" as const, path: server.session.path, headers: server.session.headers }
      : { method: "POST" as const, ...server.login };
  rotateSourceAddress = operation === "login";
  let result: Result;
  try {
    result = await autocannon({
      url: `${server.base}${target.path}`,
      method: target.method,
      headers: target.headers,
      ...("body" in target ? { body: target.body } : {}),
      connections: CONNECTIONS,
      duration: seconds,
      timeout: 30,
      ...(operation === "login" ? { reconnectRate: RECONNECT_EVERY } : {}),
    });
  } finally {
    rotateSourceAddress = false;
  }
  const bad = result.non2xx + result.errors + result.timeouts;
  if (bad > 0) log(`WARNING ${server.name} ${operation}: ${bad} bad answers ${JSON.stringify(result.statusCodeStats)}`);
  return { rps: result.requests.average, p50: result.latency.p50, p99: result.latency.p99, bad };
}

/** Raw hash throughput at the benchmark's concurrency: `CONNECTIONS` operations in flight on libuv's pool. */
async function hashOpsPerSecond(kind: "argon2id" | "scrypt", seconds: number): Promise<number> {
  const password = PASSWORD;
  const salt = randomBytes(16).toString("hex");
  const argon2Stored = await argon2Hash(password, ARGON2);
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
    Array.from({ length: CONNECTIONS }, async () => {
      while (performance.now() < end && ops < maxOps) {
        await once();
        ops += 1;
      }
    }),
  );
  return ops / ((performance.now() - started) / 1000);
}

function mean(values: number[]): number {
  return values.reduce((a, b) => a + b, 0) / Math.max(1, values.length);
}

function fmt(value: number, digits = 1): string {
  return value.toFixed(digits);
}

async function main(): Promise<void> {
  log(`node ${process.version}, ${cpus().length} CPUs, ${CONNECTIONS} connections, ${DURATION} s per run, ${ROUNDS} rounds`);
  const peerInstalled = installPeer();
  peerInstalled.catch(() => undefined); // awaited below; avoid an unhandled rejection while Latchkey starts
  const latchkey = await startLatchkey();
  const peer = await startPeer(await peerInstalled);
  const servers = [latchkey, peer];
  const operations: Operation[] = ["session", "login"];

  log("warm-up");
  for (const operation of operations) for (const server of servers) await measure(server, operation, WARMUP_SECONDS);

  // Each round measures every cell once, the HTTP runs and the raw hashes alike, flipping the order every round,
  // so that drift on a shared machine falls on both sides of every ratio.
  const samples = new Map<string, Sample[]>();
  const hashes = { argon2id: [] as number[], scrypt: [] as number[] };
  for (let round = 0; round < ROUNDS; round += 1) {
    const flip = round % 2 === 1;
    for (const operation of operations) {
      for (const server of flip ? [...servers].reverse() : servers) {
        log(`round ${round + 1}/${ROUNDS}: ${server.name} ${operation}`);
        const key = `${server.name}:${operation}`;
        samples.set(key, [...(samples.get(key) ?? []), await measure(server, operation, DURATION)]);
      }
    }
    for (const kind of flip ? (["scrypt", "argon2id"] as const) : (["argon2id", "scrypt"] as const)) {
      log(`round ${round + 1}/${ROUNDS}: raw ${kind}`);
      hashes[kind].push(await hashOpsPerSecond(kind, HASH_SECONDS));
    }
  }
  await stopAll();

  const summary = (server: Server, operation: Operation): Sample => {
    const list = samples.get(`${server.name}:${operation}`) ?? [];
    return {
      rps: mean(list.map((s) => s.rps)),
      p50: mean(list.map((s) => s.p50)),
      p99: mean(list.map((s) => s.p99)),
      bad: list.reduce((a, s) => a + s.bad, 0),
    };
  };
  const rows: string[] = [];
  const line = (cells: string[]): void => void rows.push(`| ${cells.join(" | ")} |`);
  line(["operation", "server", "req/s", "p50 ms", "p99 ms"]);
  line(["---", "---", "---:", "---:", "---:"]);
  const labels: Record<Operation, string> = { session: "session check", login: "password step" };
  const ratios: Record<string, number> = {};
  const spreads: string[] = [];
  for (const operation of operations) {
    const l = summary(latchkey, operation);
    const p = summary(peer, operation);
    line([labels[operation], "Latchkey", fmt(l.rps), fmt(l.p50), fmt(l.p99)]);
    line([labels[operation], "better-auth", fmt(p.rps), fmt(p.p50), fmt(p.p99)]);
    line([labels[operation], "**ratio Latchkey/peer**", fmt(l.rps / p.rps, 2), fmt(l.p50 / p.p50, 2), fmt(l.p99 / p.p99, 2)]);
    const perRound = (samples.get(`${latchkey.name}:${operation}`) ?? []).map(
      (s, i) => s.rps / (samples.get(`${peer.name}:${operation}`)?.[i]?.rps ?? NaN),
    );
    spreads.push(`${labels[operation]} req/s ratio per round: ${perRound.map((r) => fmt(r, 2)).join(", ")}`);
    ratios[`${operation}.rps`] = l.rps / p.rps;
    ratios[`${operation}.p50`] = l.p50 / p.p50;
    ratios[`${operation}.p99`] = l.p99 / p.p99;
  }
  const argon2 = mean(hashes.argon2id);
  const scrypt = mean(hashes.scrypt);
  const loginL = summary(latchkey, "login").rps;
  const loginP = summary(peer, "login").rps;
  const hashRows = [
    "| raw hash | ops/s | password step req/s ÷ hash ops/s |",
    "| --- | ---: | ---: |",
    `| argon2id m=19456 t=2 p=1 (Latchkey) | ${fmt(argon2)} | ${fmt(loginL / argon2, 2)} |`,
    `| scrypt N=16384 r=16 p=1 (better-auth) | ${fmt(scrypt)} | ${fmt(loginP / scrypt, 2)} |`,
    `| **ratio argon2id/scrypt** | ${fmt(argon2 / scrypt, 2)} | |`,
  ];
  spreads.push(`argon2id/scrypt ops/s ratio per round: ${hashes.argon2id.map((a, i) => fmt(a / (hashes.scrypt[i] ?? NaN), 2)).join(", ")}`);
  const bad = [...samples.values()].flat().reduce((a, s) => a + s.bad, 0);

  const out = [
    "",
    `Latchkey vs better-auth — ${new Date().toISOString().slice(0, 10)}, node ${process.version}, ${cpus().length} CPUs, ${CONNECTIONS} connections, ${DURATION} s × ${ROUNDS} rounds per cell (mean of rounds)`,
    "",
    ...rows,
    "",
    ...hashRows,
    "",
    ...spreads,
    "",
    `ratios: ${JSON.stringify(Object.fromEntries(Object.entries({ ...ratios, "hash.argon2id/scrypt": argon2 / scrypt, "login.latchkey/argon2id": loginL / argon2, "login.peer/scrypt": loginP / scrypt }).map(([k, v]) => [k, Number(v.toFixed(2))])))}`,
    bad > 0
      ? `INVALID: ${bad} non-2xx answers, errors or timeouts during measured runs (see warnings above).`
      : "All measured requests answered 2xx.",
    "",
  ];
  process.stdout.write(out.join("\n"));
  if (bad > 0) process.exitCode = 1;
}

try {
  await main();
} catch (error) {
  log(`failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  process.exitCode = 1;
} finally {
  await stopAll();
  removeTempDirs();
}
