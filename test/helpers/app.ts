import { randomBytes } from "node:crypto";
import type { FastifyInstance, LightMyRequestResponse } from "fastify";
import { TestClock } from "./clock.js";
import { loadConfig, type Config, type Limits } from "../../src/config.js";
import type { AppContext } from "../../src/context.js";
import type { Dialect } from "../../src/db/connect.js";
import { hashPassword } from "../../src/auth/passwords.js";
import { newId } from "../../src/auth/tokens.js";
import type { MailMessage, Mailer } from "../../src/mail/mailer.js";
import type { Database, Role, SignInMethod } from "../../src/db/schema.js";
import { openRuntime } from "../../src/runtime.js";
import type { MailSender, MailSenderOptions } from "../../src/mail/sender.js";
import { buildApp } from "../../src/server.js";
import { createTestDatabase, REDIS_TEST_URL } from "./databases.js";
import { freePort } from "./ports.js";
import { metricsUrl, serveMetricsBeside } from "../../src/http/metrics-listener.js";

/** A mailer that keeps what was sent, newest last. */
export class MemoryMailer implements Mailer {
  readonly sent: MailMessage[] = [];
  async send(message: MailMessage): Promise<void> {
    this.sent.push(message);
  }
  async close(): Promise<void> {}
  last(to?: string): MailMessage | undefined {
    return [...this.sent].reverse().find((m) => to === undefined || m.to === to);
  }
  /** The first URL in the newest message to `to`. */
  lastLink(to?: string): string {
    const message = this.last(to);
    const link = message && /https?:\/\/\S+/.exec(message.text)?.[0];
    if (!link) throw new Error(`no link in mail to ${to ?? "anyone"}`);
    return link;
  }
}

export interface TestApp {
  app: FastifyInstance;
  ctx: AppContext;
  config: Config;
  clock: TestClock;
  /** What the mail sender delivered (each request's mail is delivered before its answer: see `deliverMailBeforeAnswer`). */
  mail: MemoryMailer;
  mailSender: MailSender;
  /** Delivers the queued mail that is due now (after a domain call made directly, not through a request). */
  deliverMail(): Promise<void>;
  dialect: Dialect;
  /** The metrics listener's scrape URL, when started with `metrics: true`. */
  metricsUrl: string | undefined;
  close(): Promise<void>;
}

/**
 * Tests read `t.mail` right after a request, as a person reads their inbox after the page says "check your email".
 * In the server mail is sent just after the answer; here each answer waits until the mail due by then is delivered
 * (or, failing, rescheduled), so a test never races the sender. Work after the answer (`afterResponse`) wakes the
 * sender itself, and `afterResponse.settled()` includes that delivery.
 */
export function deliverMailBeforeAnswer(app: FastifyInstance, sender: MailSender): void {
  app.addHook("onSend", async (_request, _reply, payload) => {
    await sender.wake();
    return payload;
  });
}

export interface TestAppOptions {
  env?: Record<string, string>;
  redis?: boolean;
  /** A MemoryMailer of the test's own (e.g. a subclass whose send fails). */
  mailer?: MemoryMailer;
  /** Rewrites the PostgreSQL URL the app uses (e.g. to reach the database through a `TcpProxy` a test can cut). */
  databaseUrlVia?: (url: string) => string;
  /** Limits that have no environment variable, set for this app (e.g. a tiny overload threshold). */
  limits?: Partial<Limits>;
  /** The mail sender's options (e.g. a fixed jitter). */
  mailSender?: MailSenderOptions;
  /** False: answers do not wait for their mail (tests of the sender's own waking). */
  deliverMailBeforeAnswer?: boolean;
  /** Metrics on (`LATCHKEY_METRICS_ADDR` on a free loopback port), with the metrics listener started as `serve` does. */
  metrics?: boolean;
  /** Apply the migrations (default true); false leaves the database empty, as `serve --no-migrate` on a new one. */
  migrate?: boolean;
}

/** An event-loop lag no test reaches: load shedding off. */
export const SHEDDING_OFF_MS = 10 * 60 * 1000;

export const TEST_SECRET_KEY = randomBytes(32).toString("base64");

/** A real app on a fresh database of the dialect, with a settable clock and a mailer tests can read. */
export async function startTestApp(dialect: Dialect, options: TestAppOptions = {}): Promise<TestApp> {
  const database = await createTestDatabase(dialect);
  const config = loadConfig({
    LATCHKEY_DATA_DIR: database.dataDir,
    LATCHKEY_SECRET_KEY: TEST_SECRET_KEY,
    LOG_LEVEL: "silent",
    ...(database.databaseUrl
      ? { DATABASE_URL: options.databaseUrlVia ? options.databaseUrlVia(database.databaseUrl) : database.databaseUrl }
      : {}),
    ...(options.redis ? { REDIS_URL: REDIS_TEST_URL } : {}),
    ...(options.metrics ? { LATCHKEY_METRICS_ADDR: `127.0.0.1:${await freePort()}` } : {}),
    ...options.env,
  });
  // Load shedding is off in tests unless a test asks for it: a CI machine running suites side by side lags by design,
  // and a 503 there would fail tests of something else.
  Object.assign(config.limits, { overloadEventLoopDelayMs: SHEDDING_OFF_MS }, options.limits);
  const clock = new TestClock();
  const mail = options.mailer ?? new MemoryMailer();
  // The runtime `latchkey serve` opens (the SQLite file in the data dir, or DATABASE_URL; Redis if REDIS_URL), with
  // the test's clock and mailer, and counters of its own in Redis.
  const runtime = await openRuntime(config, {
    clock,
    mailer: mail,
    migrate: options.migrate ?? true,
    attemptKeyPrefix: `latchkey-test:${newId()}:`,
    ...(options.mailSender ? { mailSender: options.mailSender } : {}),
  });
  const app = await buildApp(runtime.ctx, { logger: false });
  if (options.deliverMailBeforeAnswer !== false) deliverMailBeforeAnswer(app, runtime.mailSender);
  const metrics = config.metricsAddr && runtime.metrics ? await serveMetricsBeside(app, runtime.metrics, config.metricsAddr) : undefined;
  await app.ready();
  return {
    app,
    ctx: runtime.ctx,
    config,
    clock,
    mail,
    mailSender: runtime.mailSender,
    deliverMail: () => runtime.mailSender.wake(),
    dialect,
    metricsUrl: metrics ? metricsUrl(metrics.address) : undefined,
    async close() {
      await app.close();
      await runtime.close();
      await database.drop();
    },
  };
}

/** Creates an account with one password member directly in the database (fast setup for flow tests). */
export async function seedMember(
  t: Pick<TestApp, "ctx">,
  input: { email?: string; password?: string; name?: string; role?: Role; accountId?: string; accountName?: string } = {},
): Promise<{ userId: string; accountId: string; email: string; password: string }> {
  const now = t.ctx.clock.now();
  const email = input.email ?? `user-${newId().slice(0, 8)}@example.com`;
  const password = input.password ?? "correct horse battery staple";
  let accountId = input.accountId;
  if (accountId === undefined) {
    accountId = newId();
    await t.ctx.db
      .insertInto("accounts")
      .values({ id: accountId, name: input.accountName ?? "Acme", two_factor_policy: "email_link", created_at: now })
      .execute();
  }
  const userId = newId();
  await t.ctx.db
    .insertInto("users")
    .values({
      id: userId,
      email,
      name: input.name ?? "Test Person",
      password_hash: await hashPassword(password),
      two_factor_method: "email_link",
      created_at: now,
      updated_at: now,
    })
    .execute();
  await addMembership(t, { userId, accountId, role: input.role ?? "member" });
  return { userId, accountId, email, password };
}

/** Makes the user a member of one more account (role `member`, password sign-in unless given), directly in the database. */
export async function addMembership(
  t: Pick<TestApp, "ctx">,
  input: { userId: string; accountId: string; role?: Role; signInMethod?: SignInMethod },
): Promise<void> {
  await t.ctx.db
    .insertInto("memberships")
    .values({
      id: newId(),
      account_id: input.accountId,
      user_id: input.userId,
      role: input.role ?? "member",
      sign_in_method: input.signInMethod ?? "password",
      created_at: t.ctx.clock.now(),
      last_sign_in_at: null,
    })
    .execute();
}

/** A browser-like cookie jar over `app.inject`; `headers` go with every request (e.g. a User-Agent). */
export class Browser {
  readonly cookies = new Map<string, string>();
  constructor(
    private readonly app: FastifyInstance,
    private readonly headers: Record<string, string> = {},
  ) {}

  cookieHeader(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join("; ");
  }

  private store(response: LightMyRequestResponse): void {
    for (const c of response.cookies as Array<{ name: string; value: string; maxAge?: number; expires?: Date }>) {
      const expired = c.maxAge === 0 || (c.expires !== undefined && c.expires.getTime() <= Date.now() && c.value === "");
      if (expired || c.value === "") this.cookies.delete(c.name);
      else this.cookies.set(c.name, c.value);
    }
  }

  async request(
    method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE",
    url: string,
    options: { form?: Record<string, string>; json?: unknown; headers?: Record<string, string> } = {},
  ): Promise<LightMyRequestResponse> {
    const headers: Record<string, string> = { ...this.headers, ...options.headers };
    if (this.cookies.size) headers["cookie"] = this.cookieHeader();
    let payload: string | undefined;
    if (options.form) {
      headers["content-type"] = "application/x-www-form-urlencoded";
      payload = new URLSearchParams(options.form).toString();
    } else if (options.json !== undefined) {
      headers["content-type"] = "application/json";
      payload = JSON.stringify(options.json);
    }
    const path = url.startsWith("http") ? new URL(url).pathname + new URL(url).search : url;
    const response = await this.app.inject({ method, url: path, headers, ...(payload !== undefined ? { payload } : {}) });
    this.store(response);
    return response;
  }

  get(url: string, headers?: Record<string, string>): Promise<LightMyRequestResponse> {
    return this.request("GET", url, headers ? { headers } : {});
  }

  /** GETs `page`, reads its CSRF token, then POSTs the form to `action` with it. */
  async submit(page: string, action: string, form: Record<string, string>): Promise<LightMyRequestResponse> {
    const csrf = csrfFrom((await this.get(page)).body);
    return this.request("POST", action, { form: { _csrf: csrf, ...form } });
  }

  /** Password step through the web form; the app emails a link for email-link users. */
  async signInWithPassword(email: string, password: string): Promise<LightMyRequestResponse> {
    return this.submit("/login", "/login", { email, password });
  }
}

export function csrfFrom(body: string): string {
  const match = /name="_csrf" value="([^"]+)"/.exec(body);
  if (!match?.[1]) throw new Error("no CSRF token on the page");
  return match[1];
}

/** Full email-link sign-in in one browser (sending `headers` with every request); returns the browser, signed in. */
export async function signedInBrowser(
  t: Pick<TestApp, "app" | "mail">,
  member: { email: string; password: string },
  headers: Record<string, string> = {},
): Promise<Browser> {
  const browser = new Browser(t.app, headers);
  const response = await browser.signInWithPassword(member.email, member.password);
  if (response.statusCode !== 303) throw new Error(`password step failed: ${response.statusCode}`);
  const linked = await browser.get(t.mail.lastLink(member.email));
  if (linked.statusCode !== 303) throw new Error(`email link failed: ${linked.statusCode} ${linked.body.slice(0, 200)}`);
  return browser;
}

/** Rows in each of `tables`, and the mail sent: compared before and after a refused request, all must stay the same. */
export async function rowCounts(t: Pick<TestApp, "ctx" | "mail">, tables: readonly (keyof Database)[]): Promise<Record<string, number>> {
  const counts: Record<string, number> = { mail: t.mail.sent.length };
  for (const table of tables) {
    const row = await t.ctx.db
      .selectFrom(table)
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .executeTakeFirstOrThrow();
    counts[table] = Number(row.n);
  }
  return counts;
}
