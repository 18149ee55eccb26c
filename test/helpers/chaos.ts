import { sql, type Kysely } from "kysely";
import type { Database } from "../../src/db/schema.js";
import type { HttpAnswer, HttpClient } from "./http-client.js";
import { SmtpSink } from "./smtp-sink.js";
import { TEST_SECRET_KEY } from "./app.js";
import { Instance } from "./instance.js";
import { freePort } from "./ports.js";
import { loadConfig } from "../../src/config.js";
import { openRuntime, type Runtime } from "../../src/runtime.js";

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** What a load run saw: answers, resets, 5xx, slow answers, and how often each single-use thing was redeemed. */
export class LoadTally {
  answered = 0;
  dropped = 0;
  readonly serverErrors: string[] = [];
  /** Answers by status. */
  readonly statuses = new Map<number, number>();
  /** The slowest answer, in ms. */
  slowestMs = 0;
  readonly redemptions = new Map<string, number>();

  /** One request; a reset or timeout counts as dropped (the instance died under it) and gives undefined. */
  async call(
    client: HttpClient,
    base: string,
    method: "GET" | "POST" | "DELETE",
    path: string,
    body: { json?: unknown; form?: Record<string, string> } = {},
    allowed5xx: readonly number[] = [],
  ): Promise<HttpAnswer | undefined> {
    const started = Date.now();
    try {
      const answer = await client.request(base, method, path, body);
      this.answered += 1;
      this.slowestMs = Math.max(this.slowestMs, Date.now() - started);
      this.statuses.set(answer.status, (this.statuses.get(answer.status) ?? 0) + 1);
      if (answer.status >= 500 && !allowed5xx.includes(answer.status))
        this.serverErrors.push(`${base} ${method} ${path.slice(0, 30)} → ${answer.status} ${answer.body.slice(0, 200)}`);
      return answer;
    } catch {
      this.dropped += 1;
      return undefined;
    }
  }

  /**
   * Records one attempt at a single-use thing. A sign-in is won when it sets a session; an invitation when it sends
   * the person on to sign in with their new password.
   */
  redeemed(key: string, answer: HttpAnswer | undefined): void {
    const signedIn = String(answer?.headers["set-cookie"] ?? "").includes("latchkey_session=");
    const joined = answer?.status === 303 && String(answer.headers["location"] ?? "").includes("notice=");
    const won = answer !== undefined && answer.status < 400 && (key.startsWith("invitation ") ? joined : signedIn);
    this.redemptions.set(key, (this.redemptions.get(key) ?? 0) + (won ? 1 : 0));
  }

  /** Single-use things redeemed more than once (must be none). */
  doubles(): Array<[string, number]> {
    return [...this.redemptions].filter(([, n]) => n > 1);
  }

  wins(prefix = ""): number {
    return [...this.redemptions].filter(([key, n]) => key.startsWith(prefix) && n === 1).length;
  }
}

/** Waits (bounded) for a sign-in link to `email` newer than the `before`-th; its path, or undefined. */
export async function nextLinkPath(smtp: SmtpSink, email: string, before: number, withinMs = 20_000): Promise<string | undefined> {
  const link = await smtp.nextLink(email, before, withinMs);
  return link === undefined ? undefined : new URL(link).pathname;
}

/** Rows that point at nothing, or single-use things used twice, after a fault run: every count must be 0. */
export async function brokenRows(db: Kysely<Database>): Promise<Array<{ what: string; n: number }>> {
  const rows = await sql<{ what: string; n: number }>`
    select 'sessions without user' as what, count(*)::int as n from sessions s where not exists (select 1 from users u where u.id = s.user_id)
    union all select 'memberships without user', count(*)::int from memberships m where not exists (select 1 from users u where u.id = m.user_id)
    union all select 'memberships without account', count(*)::int from memberships m where not exists (select 1 from accounts x where x.id = m.account_id)
    union all select 'challenges without user', count(*)::int from challenges c where not exists (select 1 from users u where u.id = c.user_id)
    union all select 'email links without challenge', count(*)::int from email_links l where not exists (select 1 from challenges c where c.id = l.challenge_id)
    union all select 'recovery codes without user', count(*)::int from recovery_codes r where not exists (select 1 from users u where u.id = r.user_id)
    union all select 'links used twice for one challenge', count(*)::int from (select challenge_id from email_links where used_at is not null group by challenge_id having count(*) > 1) d
    union all select 'accepted invitations without membership', count(*)::int from invitations i where i.accepted_at is not null and not exists (
      select 1 from memberships m join users u on u.id = m.user_id where m.account_id = i.account_id and u.email = i.email)
    union all select 'memberships of invitees without accepted invitation', count(*)::int from memberships m join users u on u.id = m.user_id
      where u.email like 'invitee-%' and not exists (select 1 from invitations i where i.account_id = m.account_id and i.email = u.email and i.accepted_at is not null)
  `.execute(db);
  return rows.rows.filter((row) => Number(row.n) > 0);
}

/** One real `latchkey serve` with an SMTP sink of its own, and the runtime the test seeds and inspects the database with. */
export interface ServedInstance {
  smtp: SmtpSink;
  instance: Instance;
  runtime: Runtime;
  close(): Promise<void>;
}

/**
 * Starts an SMTP sink, migrates the database named by `env` (DATABASE_URL, or SQLite in LATCHKEY_DATA_DIR) through
 * the runtime `serve` opens, and starts `latchkey serve` on a free port with the test secret key and the sink as SMTP.
 */
export async function serveWithSmtp(env: Record<string, string>): Promise<ServedInstance> {
  const smtp = new SmtpSink();
  await smtp.start();
  const port = await freePort();
  const full = {
    LATCHKEY_SECRET_KEY: TEST_SECRET_KEY,
    SMTP_URL: `smtp://127.0.0.1:${smtp.port}`,
    LATCHKEY_PUBLIC_URL: `http://127.0.0.1:${port}`,
    ...env,
  };
  const runtime = await openRuntime(loadConfig(full), { migrate: true });
  const instance = new Instance(port, full);
  await instance.start(60_000);
  return {
    smtp,
    instance,
    runtime,
    async close() {
      await instance.stop();
      await runtime.close();
      await smtp.stop();
    },
  };
}
