/**
 * The soak of issue 11: one real Latchkey process under a steady mixed load for a long time — sign-ins by email link,
 * forward-auth session checks, team actions (invite, list, revoke) — at a fixed rate well below what `npm run bench`
 * measures. It passes when no answer was a 5xx, the server logged no error, and its RSS at the end is within ±15% of
 * its RSS at minute 2 (for runs shorter than 10 minutes: at a fifth of the run). Each of the two is the median of the
 * samples of a minute (minute 2 → 3, and the last; a tenth of the run for shorter runs), not one sample: RSS swings by
 * ~20 MB between major collections, and a single sample at 120 s fell just after the first one in two runs (126.5 and
 * 142.4 MB, against 146–167 MB for the whole rest of the run), which measured the collection, not a trend.
 *
 *   npm run soak                       # 10 minutes on SQLite, prints the report
 *   npm run soak -- --minutes 10 --dialect postgres --write docs/soak.md
 *
 * A short run of the same harness is part of `npm test` (test/chaos/soak.chaos.test.ts): there only the 5xx and
 * log checks apply, RSS needs the long run.
 */
import { mkdtempSync, rmSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import pg from "pg";
import { loadConfig } from "../src/config.js";
import { openRuntime } from "../src/runtime.js";
import { seedMember, TEST_SECRET_KEY } from "../test/helpers/app.js";
import { HttpClient } from "../test/helpers/http-client.js";
import { Instance } from "../test/helpers/instance.js";
import { freePort } from "../test/helpers/ports.js";
import { SmtpSink } from "../test/helpers/smtp-sink.js";
import { median } from "./median.js";

export interface SoakOptions {
  seconds: number;
  dialect: "sqlite" | "postgres";
  /** Forward-auth checks per second (the bench's verify cell does thousands). */
  checksPerSecond: number;
  /** Full email-link sign-ins per second. */
  signInsPerSecond: number;
  /** Team actions (invite + list + revoke) per second. */
  teamActionsPerSecond: number;
  progress?: (line: string) => void;
}

export interface SoakResult {
  seconds: number;
  dialect: string;
  requests: number;
  signIns: number;
  serverErrors: string[];
  /** Requests that got no answer at all (socket error or 15 s timeout). */
  unanswered: number;
  logErrors: string[];
  rssSamples: Array<{ atSeconds: number; rssMb: number }>;
  /** The seconds the reference window starts at, and the windows' length. */
  rssWindow: { fromSeconds: number; seconds: number };
  /** Median RSS of the reference window (minute 2 → 3) and of the last window. */
  rssReferenceMb: number;
  rssEndMb: number;
  rssChange: number;
  passed: boolean;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function rssMbOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return Math.round((kb / 1024) * 10) / 10;
}

/** Runs `task` `perSecond` times a second, spread evenly, until `until`; at most `maxInFlight` at once (then skips). */
async function paced(perSecond: number, until: number, maxInFlight: number, task: () => Promise<void>): Promise<void> {
  if (perSecond <= 0) return;
  const gapMs = 1000 / perSecond;
  const running = new Set<Promise<void>>();
  let next = Date.now();
  while (Date.now() < until) {
    if (running.size < maxInFlight) {
      const run = task().finally(() => running.delete(run));
      running.add(run);
    }
    next += gapMs;
    await sleep(Math.max(0, next - Date.now()));
  }
  await Promise.all(running);
}

export async function runSoak(options: SoakOptions): Promise<SoakResult> {
  const progress = options.progress ?? ((): void => {});
  const dataDir = mkdtempSync(join(tmpdir(), "latchkey-soak-"));
  const smtp = new SmtpSink();
  await smtp.start();
  let databaseUrl: string | undefined;
  let dropDatabase = async (): Promise<void> => {};
  if (options.dialect === "postgres") {
    const adminUrl = process.env["SOAK_POSTGRES_URL"] ?? "postgres://postgres@127.0.0.1:5432/test";
    const name = `latchkey_soak_${Date.now()}`;
    const admin = new pg.Client({ connectionString: adminUrl });
    await admin.connect();
    await admin.query(`create database ${name}`);
    await admin.end();
    const url = new URL(adminUrl);
    url.pathname = `/${name}`;
    databaseUrl = url.href;
    dropDatabase = async () => {
      const client = new pg.Client({ connectionString: adminUrl });
      await client.connect();
      await client.query(`drop database if exists ${name} with (force)`);
      await client.end();
    };
  }
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const env: Record<string, string> = {
    LATCHKEY_DATA_DIR: dataDir,
    LATCHKEY_SECRET_KEY: TEST_SECRET_KEY,
    LATCHKEY_PUBLIC_URL: origin,
    SMTP_URL: `smtp://127.0.0.1:${smtp.port}`,
    LOG_LEVEL: "info",
    ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
  };
  // Seed through the same runtime `serve` opens: migrate, then people to sign in and an admin for team actions.
  const runtime = await openRuntime(loadConfig(env), { migrate: true });
  const members = await Promise.all(Array.from({ length: 20 }, () => seedMember(runtime)));
  const admin = await seedMember(runtime, { role: "admin" });
  await runtime.close();

  const instance = new Instance(port, env);
  let result: SoakResult | undefined;
  try {
    await instance.start(60_000);
    let requests = 0;
    let unanswered = 0;
    let signIns = 0;
    const serverErrors: string[] = [];
    let address = 0;
    const client = (): HttpClient => new HttpClient(`127.1.${Math.floor(address / 250) % 250}.${(address++ % 250) + 2}`, origin);
    const call = async (
      c: HttpClient,
      method: "GET" | "POST" | "DELETE",
      path: string,
      body?: { json?: unknown; form?: Record<string, string> },
    ): ReturnType<HttpClient["request"]> => {
      requests += 1;
      try {
        const answer = await c.request(origin, method, path, body ?? {});
        if (answer.status >= 500) serverErrors.push(`${method} ${path} → ${answer.status} ${answer.body.slice(0, 200)}`);
        return answer;
      } catch (error) {
        unanswered += 1;
        throw error;
      }
    };
    const signIn = async (member: { email: string; password: string }): Promise<HttpClient | undefined> => {
      const c = client();
      const before = smtp.links(member.email).length;
      const step = await call(c, "POST", "/api/v1/login", { json: { email: member.email, password: member.password } });
      if (step.status !== 200) return undefined;
      const link = await smtp.nextLink(member.email, before, 15_000);
      if (link === undefined) return undefined;
      const opened = await call(c, "GET", new URL(link).pathname);
      if (opened.status !== 303) return undefined;
      signIns += 1;
      return c;
    };
    // A pool of signed-in browsers for the session checks, renewed by the sign-in traffic.
    const signedIn: HttpClient[] = [];
    for (const member of members.slice(0, 5)) {
      const c = await signIn(member);
      if (c) signedIn.push(c);
    }
    const adminClient = await signIn(admin);
    if (!adminClient || signedIn.length === 0) throw new Error("could not sign in before the soak");

    const started = Date.now();
    const until = started + options.seconds * 1000;
    const referenceAt = Math.min(120, options.seconds / 5);
    const rssSamples: Array<{ atSeconds: number; rssMb: number }> = [];
    const sampler = (async () => {
      while (Date.now() < until) {
        const atSeconds = Math.round((Date.now() - started) / 1000);
        rssSamples.push({ atSeconds, rssMb: rssMbOf(instance.pid!) });
        progress(
          `${atSeconds}s: RSS ${rssSamples.at(-1)!.rssMb} MB, ${requests} requests, ${signIns} sign-ins, ${serverErrors.length} 5xx`,
        );
        await sleep(Math.min(10_000, (options.seconds * 1000) / 12));
      }
    })();
    let memberIndex = 0;
    let invite = 0;
    await Promise.all([
      sampler,
      paced(options.checksPerSecond, until, 50, async () => {
        const c = signedIn[Math.floor(Math.random() * signedIn.length)]!;
        await call(c, "GET", "/api/v1/verify").catch(() => undefined);
      }),
      paced(options.signInsPerSecond, until, 8, async () => {
        const member = members[memberIndex++ % members.length]!;
        const c = await signIn(member).catch(() => undefined);
        if (c) signedIn[Math.floor(Math.random() * signedIn.length)] = c;
      }),
      paced(options.teamActionsPerSecond, until, 4, async () => {
        const email = `soak-invitee-${invite++}@example.com`;
        const made = await call(adminClient, "POST", "/api/v1/team/invitations", { json: { email, role: "member" } }).catch(
          () => undefined,
        );
        await call(adminClient, "GET", "/api/v1/team/members").catch(() => undefined);
        const id = made?.status === 201 ? (JSON.parse(made.body) as { id: string }).id : undefined;
        if (id) await call(adminClient, "DELETE", `/api/v1/team/invitations/${id}`).catch(() => undefined);
      }),
    ]);
    const rssEndMb = rssMbOf(instance.pid!);
    rssSamples.push({ atSeconds: Math.round((Date.now() - started) / 1000), rssMb: rssEndMb });
    const windowSeconds = Math.min(60, options.seconds / 10);
    const endAt = rssSamples.at(-1)!.atSeconds;
    const inWindow = (from: number): number[] =>
      rssSamples.filter((sample) => sample.atSeconds >= from && sample.atSeconds <= from + windowSeconds).map((sample) => sample.rssMb);
    const referenceSamples = inWindow(referenceAt);
    const rssReferenceMb = referenceSamples.length > 0 ? median(referenceSamples) : rssSamples[0]!.rssMb;
    const rssEndWindowMb = median(inWindow(endAt - windowSeconds));
    // pino writes one JSON object a line; level 50 is "error", 60 "fatal". Plain lines naming an error count too.
    const logErrors = instance.output
      .split("\n")
      .filter((line) => /"level":(5|6)\d/.test(line) || /^latchkey: /.test(line))
      .slice(0, 20);
    const rssChange = rssEndWindowMb / rssReferenceMb - 1;
    result = {
      seconds: options.seconds,
      dialect: options.dialect,
      requests,
      signIns,
      serverErrors: serverErrors.slice(0, 20),
      unanswered,
      logErrors,
      rssSamples,
      rssWindow: { fromSeconds: referenceAt, seconds: windowSeconds },
      rssReferenceMb,
      rssEndMb: rssEndWindowMb,
      rssChange,
      passed:
        serverErrors.length === 0 && unanswered === 0 && logErrors.length === 0 && (options.seconds < 600 || Math.abs(rssChange) <= 0.15),
    };
  } finally {
    await instance.stop();
    await smtp.stop();
    await dropDatabase();
    rmSync(dataDir, { recursive: true, force: true });
  }
  return result;
}

export function soakReport(result: SoakResult, when = new Date()): string {
  const percent = (value: number): string => `${value >= 0 ? "+" : ""}${(value * 100).toFixed(1)}%`;
  return [
    `# Soak — last result`,
    ``,
    `Run: \`npm run soak -- --minutes ${result.seconds / 60} --dialect ${result.dialect}\` on ${when.toISOString().slice(0, 10)}.`,
    ``,
    `| measure | value |`,
    `| --- | --- |`,
    `| duration | ${result.seconds} s on ${result.dialect} |`,
    `| requests | ${result.requests} (${Math.round(result.requests / result.seconds)}/s), of which full email-link sign-ins: ${result.signIns} |`,
    `| 5xx answers | ${result.serverErrors.length} |`,
    `| unanswered requests | ${result.unanswered} |`,
    `| errors in the server log | ${result.logErrors.length} |`,
    `| RSS, median of ${result.rssWindow.fromSeconds}–${result.rssWindow.fromSeconds + result.rssWindow.seconds} s → of the last ${result.rssWindow.seconds} s | ${result.rssReferenceMb} MB → ${result.rssEndMb} MB (${percent(result.rssChange)}; goal ±15%) |`,
    `| RSS samples (s: MB) | ${result.rssSamples.map((s) => `${s.atSeconds}: ${s.rssMb}`).join(", ")} |`,
    `| result | ${result.passed ? "PASSED" : "FAILED"} |`,
    ``,
    ...(result.serverErrors.length ? ["5xx answers:", "", ...result.serverErrors.map((e) => `- ${e}`), ""] : []),
    ...(result.logErrors.length ? ["Log errors:", "", ...result.logErrors.map((e) => `- \`${e.slice(0, 300)}\``), ""] : []),
  ].join("\n");
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: {
      minutes: { type: "string", default: "10" },
      dialect: { type: "string", default: "sqlite" },
      write: { type: "string" },
    },
  });
  const minutes = Number(values.minutes);
  if (!(minutes > 0 && minutes <= 120)) throw new Error("--minutes must be between 0 and 120");
  if (values.dialect !== "sqlite" && values.dialect !== "postgres") throw new Error("--dialect must be sqlite or postgres");
  const result = await runSoak({
    seconds: Math.round(minutes * 60),
    dialect: values.dialect,
    checksPerSecond: 200,
    signInsPerSecond: 2,
    teamActionsPerSecond: 0.5,
    progress: (line) => process.stderr.write(`${line}\n`),
  });
  const report = soakReport(result);
  process.stdout.write(`${report}\n`);
  if (values.write) writeFileSync(values.write, `${report}\n`);
  process.exitCode = result.passed ? 0 : 1;
}
