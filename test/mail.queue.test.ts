import { TableNode, type KyselyPlugin } from "kysely";
import { afterAll, beforeAll, beforeEach, expect, it, vi } from "vitest";
import { withTx } from "../src/context.js";
import { sendEmailLink } from "../src/auth/email-links.js";
import { startSignIn } from "../src/auth/sign-in.js";
import type { MailMessage, Mailer } from "../src/mail/mailer.js";
import { mailBox, openQueuedMessage, pruneMailQueue, queueMail, type MailEventKind } from "../src/mail/queue.js";
import { MailSender } from "../src/mail/sender.js";
import { openRuntime } from "../src/runtime.js";
import { Browser, MemoryMailer, seedMember, startTestApp, type TestApp } from "./helpers/app.js";
import { describeEachDialect } from "./helpers/dialects.js";

/** A mailer whose SMTP server can be switched off. */
class FlakyMailer extends MemoryMailer {
  down = false;
  attempts = 0;
  override async send(message: MailMessage): Promise<void> {
    this.attempts += 1;
    if (this.down) throw new Error("connect ECONNREFUSED 127.0.0.1:25");
    await super.send(message);
  }
}

/** A mailer that takes a little while per message (0–4 ms), so two senders' work interleaves. */
class SlowMailer extends MemoryMailer {
  override async send(message: MailMessage): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, Math.floor(Math.random() * 5)));
    await super.send(message);
  }
}

function message(to: string, n = 0): MailMessage {
  return { to, subject: `Message ${n}`, text: `Text ${n} https://example.com/x/${n}`, html: `<p>Text ${n}</p>` };
}

let counter = 0;
function address(): string {
  counter += 1;
  return `queue-${counter}-${Math.random().toString(36).slice(2, 8)}@example.com`;
}

describeEachDialect("mail queue", (dialect) => {
  let t: TestApp;
  const mailer = new FlakyMailer();
  const events: MailEventKind[] = [];
  beforeAll(async () => {
    t = await startTestApp(dialect, { mailer, mailSender: { random: () => 0.5, onEvent: (kind) => events.push(kind) } });
  });
  afterAll(async () => {
    await t?.close();
  });
  beforeEach(() => {
    mailer.down = false;
  });

  async function rowsTo(to: string): Promise<
    Array<{
      id: string;
      attempts: number;
      available_at: number;
      sent_at: number | null;
      failed_at: number | null;
      superseded_at: number | null;
      body_sealed: string | null;
      last_error: string | null;
      claimed_by: string | null;
    }>
  > {
    return t.ctx.db
      .selectFrom("mail_queue")
      .select(["id", "attempts", "available_at", "sent_at", "failed_at", "superseded_at", "body_sealed", "last_error", "claimed_by"])
      .where("to_address", "=", to)
      .orderBy("created_at")
      .execute();
  }

  it("a message queued in a transaction commits with it, and is not there when the transaction rolls back", async () => {
    const kept = address();
    const dropped = address();
    await t.ctx.db.transaction().execute(async (tx) => queueMail(withTx(t.ctx, tx), message(kept)));
    await expect(
      t.ctx.db.transaction().execute(async (tx) => {
        await queueMail(withTx(t.ctx, tx), message(dropped));
        throw new Error("the change failed");
      }),
    ).rejects.toThrow("the change failed");
    expect(await rowsTo(kept)).toHaveLength(1);
    expect(await rowsTo(dropped)).toHaveLength(0);
    await t.deliverMail();
    expect(mailer.sent.filter((m) => m.to === kept)).toHaveLength(1);
    expect(mailer.sent.filter((m) => m.to === dropped)).toHaveLength(0);
  });

  it("“Send a new link” whose transaction fails leaves no new link, no queued email and the count as it was", async () => {
    const member = await seedMember(t);
    const browser = new Browser(t.app);
    expect((await browser.signInWithPassword(member.email, member.password)).statusCode).toBe(303);
    const challenge = await t.ctx.db.selectFrom("challenges").selectAll().where("user_id", "=", member.userId).executeTakeFirstOrThrow();
    t.clock.advanceSeconds(t.config.limits.emailLinkResendCooldownSeconds + 1);
    // The audit insert, the last write of the transaction, fails: everything before it must roll back.
    const failing: KyselyPlugin = {
      transformQuery(args) {
        const node = args.node;
        if (node.kind === "InsertQueryNode" && node.into && TableNode.is(node.into) && node.into.table.identifier.name === "audit_events")
          throw new Error("database gone");
        return node;
      },
      async transformResult(args) {
        return args.result;
      },
    };
    const before = {
      links: (await t.ctx.db.selectFrom("email_links").select("id").where("challenge_id", "=", challenge.id).execute()).length,
      mail: (await rowsTo(member.email)).length,
    };
    await expect(sendEmailLink({ ...t.ctx, db: t.ctx.db.withPlugin(failing) }, challenge, { ip: null, userAgent: null })).rejects.toThrow(
      "database gone",
    );
    expect((await t.ctx.db.selectFrom("email_links").select("id").where("challenge_id", "=", challenge.id).execute()).length).toBe(
      before.links,
    );
    const rows = await rowsTo(member.email);
    expect(rows).toHaveLength(before.mail);
    expect(rows.every((r) => r.superseded_at === null)).toBe(true);
    const after = await t.ctx.db.selectFrom("challenges").select(["links_sent"]).where("id", "=", challenge.id).executeTakeFirstOrThrow();
    expect(after.links_sent).toBe(challenge.links_sent);
  });

  it("a password step whose transaction fails at its last write leaves no challenge, link, queued email or event, and the sign-in can be tried again", async () => {
    const member = await seedMember(t);
    const failing: KyselyPlugin = {
      transformQuery(args) {
        const node = args.node;
        // The "link sent" event is the last write of the step: the challenge, its link and the email come before it.
        if (node.kind === "InsertQueryNode" && node.into && TableNode.is(node.into) && node.into.table.identifier.name === "audit_events") {
          const sent = node.values && JSON.stringify(node.values).includes("sign_in.email_link_sent");
          if (sent) throw new Error("database gone");
        }
        return node;
      },
      async transformResult(args) {
        return args.result;
      },
    };
    const info = { ip: "203.0.113.7", userAgent: null };
    const linkCount = async (): Promise<number> => (await t.ctx.db.selectFrom("email_links").select("id").execute()).length;
    const linksBefore = await linkCount();
    await expect(
      startSignIn({ ...t.ctx, db: t.ctx.db.withPlugin(failing) }, { email: member.email, password: member.password, info }),
    ).rejects.toThrow("database gone");
    const challenges = await t.ctx.db.selectFrom("challenges").select("id").where("user_id", "=", member.userId).execute();
    expect(challenges).toHaveLength(0);
    expect(await linkCount()).toBe(linksBefore);
    expect(await rowsTo(member.email)).toHaveLength(0);
    const events = await t.ctx.db.selectFrom("audit_events").select("type").where("user_id", "=", member.userId).execute();
    expect(events).toEqual([]);

    // Nothing is half done: the same sign-in goes through on the next try, with one link in one email.
    const accepted = await startSignIn(t.ctx, { email: member.email, password: member.password, info });
    expect(accepted.ok).toBe(true);
    const [challenge, ...more] = await t.ctx.db.selectFrom("challenges").selectAll().where("user_id", "=", member.userId).execute();
    expect(more).toHaveLength(0);
    expect(challenge?.links_sent).toBe(1);
    const links = await t.ctx.db.selectFrom("email_links").select("id").where("challenge_id", "=", challenge!.id).execute();
    expect(links).toHaveLength(1);
    expect(await rowsTo(member.email)).toHaveLength(1);
    const types = (
      await t.ctx.db.selectFrom("audit_events").select("type").where("user_id", "=", member.userId).orderBy("id").execute()
    ).map((e) => e.type);
    expect(types).toEqual(["sign_in.password_accepted", "sign_in.email_link_sent"]);
  });

  it("the body is sealed in its row: no link, token or subject readable in the database; it opens only for its own row, and is cleared once sent", async () => {
    const member = await seedMember(t);
    const browser = new Browser(t.app);
    mailer.down = true;
    expect((await browser.signInWithPassword(member.email, member.password)).statusCode).toBe(303);
    const [row] = await t.ctx.db.selectFrom("mail_queue").selectAll().where("to_address", "=", member.email).execute();
    expect(row?.body_sealed).toMatch(/^v1\./);
    const stored = JSON.stringify(row);
    expect(stored).not.toContain("/login/email/");
    expect(stored).not.toContain("sign-in link");
    expect(stored).not.toContain("Finish signing in");
    const opened = openQueuedMessage(mailBox(t.config), { ...row!, body_sealed: row!.body_sealed! });
    expect(opened.subject).toBe("Your Latchkey sign-in link");
    const token = /\/login\/email\/([A-Za-z0-9_-]{43})/.exec(opened.text)?.[1];
    expect(token).toBeDefined();
    expect(stored).not.toContain(token);
    // Bound to its row: the same sealed body on another row's id does not open.
    expect(() => openQueuedMessage(mailBox(t.config), { ...row!, id: "another-row", body_sealed: row!.body_sealed! })).toThrow();

    mailer.down = false;
    t.clock.advanceSeconds(t.config.limits.mailRetryMaxSeconds);
    await t.deliverMail();
    const [sent] = await rowsTo(member.email);
    expect(sent?.sent_at).not.toBeNull();
    expect(sent?.body_sealed).toBeNull();
    expect(mailer.lastLink(member.email)).toContain(token);
  });

  it("a newer message with the same key supersedes the unsent older one, which is never delivered; a sent one stays sent", async () => {
    const to = address();
    mailer.down = true;
    await queueMail(t.ctx, message(to, 1), { key: `test:${to}` });
    await t.deliverMail();
    await queueMail(t.ctx, message(to, 2), { key: `test:${to}` });
    let rows = await rowsTo(to);
    expect(rows[0]).toMatchObject({ body_sealed: null, sent_at: null });
    expect(rows[0]!.superseded_at).not.toBeNull();
    expect(rows[1]!.superseded_at).toBeNull();
    // Another key is left alone.
    await queueMail(t.ctx, message(to, 3), { key: `other:${to}` });

    mailer.down = false;
    t.clock.advanceSeconds(t.config.limits.mailRetryMaxSeconds);
    await t.deliverMail();
    expect(
      mailer.sent
        .filter((m) => m.to === to)
        .map((m) => m.subject)
        .sort(),
    ).toEqual(["Message 2", "Message 3"]);

    await queueMail(t.ctx, message(to, 4), { key: `test:${to}` });
    rows = await rowsTo(to);
    expect(rows[1]!.sent_at).not.toBeNull();
    expect(rows[1]!.superseded_at).toBeNull();
    await t.deliverMail();
    expect(
      mailer.sent
        .filter((m) => m.to === to)
        .map((m) => m.subject)
        .sort(),
    ).toEqual(["Message 2", "Message 3", "Message 4"]);
  });

  it("a failed delivery waits base·2^(n−1) with jitter (half to all of it), capped at the maximum", async () => {
    const { limits } = t.config;
    const sender = (random: number): MailSender => new MailSender(t.ctx, mailer, { random: () => random });
    const base = limits.mailRetryBaseSeconds * 1000;
    const max = limits.mailRetryMaxSeconds * 1000;
    expect(sender(0).retryWaitMs(1)).toBe(base / 2);
    expect(sender(0.5).retryWaitMs(1)).toBe(base * 0.75);
    expect(sender(0.999999).retryWaitMs(1)).toBe(base);
    expect(sender(0.5).retryWaitMs(3)).toBe(4 * base * 0.75);
    expect(sender(0.999999).retryWaitMs(40)).toBe(max);
    expect(sender(0).retryWaitMs(1000)).toBe(max / 2);
  });

  it("retries at the backoff and not before, and gives up at the most attempts (failed, body cleared, never tried again)", async () => {
    const { limits } = t.config;
    const saved = { ...limits };
    Object.assign(limits, { mailMaxAttempts: 3, mailRetryBaseSeconds: 10, mailRetryMaxSeconds: 15 });
    try {
      const to = address();
      mailer.down = true;
      const start = mailer.attempts;
      await queueMail(t.ctx, message(to));
      await t.deliverMail();
      let [row] = await rowsTo(to);
      // random 0.5: three quarters of 10 s.
      expect(row).toMatchObject({ attempts: 1, available_at: t.clock.now() + 7500, claimed_by: null, failed_at: null });
      expect(row!.last_error).toBe("connect ECONNREFUSED 127.0.0.1:25");
      t.clock.advanceSeconds(7.499);
      await t.deliverMail();
      expect(mailer.attempts - start).toBe(1);
      t.clock.advanceSeconds(0.001);
      await t.deliverMail();
      expect(mailer.attempts - start).toBe(2);
      [row] = await rowsTo(to);
      // The second wait would be 20 s: capped at 15, three quarters of it.
      expect(row).toMatchObject({ attempts: 2, available_at: t.clock.now() + 11250 });
      t.clock.advanceSeconds(11.25);
      await t.deliverMail();
      expect(mailer.attempts - start).toBe(3);
      [row] = await rowsTo(to);
      expect(row).toMatchObject({ attempts: 3, body_sealed: null, claimed_by: null });
      expect(row!.failed_at).toBe(t.clock.now());
      // Past the maximum: nothing more.
      mailer.down = false;
      t.clock.advanceSeconds(3600);
      await t.deliverMail();
      expect(mailer.attempts - start).toBe(3);
      expect(mailer.sent.filter((m) => m.to === to)).toHaveLength(0);
    } finally {
      Object.assign(limits, saved);
    }
  });

  it("the first success after failures makes the messages waiting out a backoff due at once", async () => {
    const waiting = address();
    const fresh = address();
    mailer.down = true;
    await queueMail(t.ctx, message(waiting));
    await t.deliverMail();
    expect((await rowsTo(waiting))[0]!.available_at).toBeGreaterThan(t.clock.now());
    mailer.down = false;
    // No time passes: the new message goes out, and shows that mail works again.
    await queueMail(t.ctx, message(fresh));
    await t.deliverMail();
    expect(mailer.sent.filter((m) => m.to === fresh)).toHaveLength(1);
    expect(mailer.sent.filter((m) => m.to === waiting)).toHaveLength(1);
  });

  it("a claim whose sender died is retried once its lease is over (counted as an attempt), not before", async () => {
    const to = address();
    await queueMail(t.ctx, message(to));
    const lease = t.config.limits.mailClaimLeaseSeconds;
    // What an instance that crashed mid-send leaves behind.
    await t.ctx.db
      .updateTable("mail_queue")
      .set({ claimed_by: "crashed-instance", claim_expires_at: t.clock.now() + lease * 1000 })
      .where("to_address", "=", to)
      .execute();
    await t.deliverMail();
    t.clock.advanceSeconds(lease - 1);
    await t.deliverMail();
    expect(mailer.sent.filter((m) => m.to === to)).toHaveLength(0);
    t.clock.advanceSeconds(1);
    await t.deliverMail();
    expect(mailer.sent.filter((m) => m.to === to)).toHaveLength(1);
    const [row] = await rowsTo(to);
    expect(row).toMatchObject({ attempts: 1, claimed_by: null, body_sealed: null });
    expect(row!.sent_at).not.toBeNull();
  });

  it("a send that takes long keeps its claim: the sender renews it, so no other sender takes the message meanwhile", async () => {
    const { limits } = t.config;
    const saved = limits.mailClaimLeaseSeconds;
    // A lease of 300 ms, renewed every 100 ms (real time); the test clock stands for the other instance's view.
    limits.mailClaimLeaseSeconds = 0.3;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const slow = new MemoryMailer();
    const send = slow.send.bind(slow);
    slow.send = async (m: MailMessage): Promise<void> => {
      await gate;
      await send(m);
    };
    const other = new MemoryMailer();
    const to = address();
    try {
      await queueMail(t.ctx, message(to));
      const sending = new MailSender(t.ctx, slow, { instanceId: "slow" }).wake();
      await vi.waitFor(async () => expect((await rowsTo(to))[0]!.claimed_by).toBe("slow"));
      t.clock.advanceSeconds(0.2);
      await new Promise((resolve) => setTimeout(resolve, 250));
      // Past the first lease, within the renewed one.
      t.clock.advanceSeconds(0.2);
      await new MailSender(t.ctx, other, { instanceId: "other" }).wake();
      expect(other.sent).toHaveLength(0);
      release();
      await sending;
      expect(slow.sent.map((m) => m.to)).toEqual([to]);
      expect((await rowsTo(to))[0]).toMatchObject({ attempts: 0, claimed_by: null });
    } finally {
      release();
      limits.mailClaimLeaseSeconds = saved;
    }
  });

  it("a message whose senders died at the most attempts is given up without another send", async () => {
    const to = address();
    await queueMail(t.ctx, message(to));
    const max = t.config.limits.mailMaxAttempts;
    await t.ctx.db
      .updateTable("mail_queue")
      .set({ attempts: max - 1, claimed_by: "crashed-instance", claim_expires_at: t.clock.now() })
      .where("to_address", "=", to)
      .execute();
    await t.deliverMail();
    const [row] = await rowsTo(to);
    expect(row).toMatchObject({ attempts: max, body_sealed: null, sent_at: null });
    expect(row!.failed_at).not.toBeNull();
    expect(mailer.sent.filter((m) => m.to === to)).toHaveLength(0);
  });

  it("two senders (two runtimes on one database, in parallel) deliver each message exactly once", async () => {
    const { limits } = t.config;
    const saved = limits.mailBatchSize;
    limits.mailBatchSize = 4;
    const a = new SlowMailer();
    const b = new SlowMailer();
    // A wake the server scheduled for an earlier request (setImmediate) fires now, not in the middle of this test.
    await new Promise((resolve) => setImmediate(resolve));
    const runtimeB = await openRuntime(t.config, { clock: t.clock, mailer: b });
    try {
      const senderA = new MailSender(t.ctx, a, { instanceId: "instance-a" });
      const senderB = runtimeB.mailSender;
      const to = Array.from({ length: 60 }, () => address());
      for (const [i, email] of to.entries()) await queueMail(i % 2 ? t.ctx : runtimeB.ctx, message(email, i));
      await Promise.all([senderA.wake(), senderB.wake(), senderA.wake(), senderB.wake()]);
      // Whichever sender delivered it (this app's own too, had it been woken), each message went out once.
      const delivered = [...a.sent, ...b.sent, ...mailer.sent].map((m) => m.to).filter((m) => to.includes(m));
      expect(delivered.sort()).toEqual([...to].sort());
      expect(new Set(delivered).size).toBe(60);
      // Both took part.
      expect(a.sent.length).toBeGreaterThan(0);
      expect(b.sent.length).toBeGreaterThan(0);
      const rows = await t.ctx.db.selectFrom("mail_queue").select(["sent_at", "attempts"]).where("to_address", "in", to).execute();
      expect(rows.every((r) => r.sent_at !== null && r.attempts === 0)).toBe(true);
    } finally {
      limits.mailBatchSize = saved;
      await runtimeB.close();
    }
  });

  it("stop(): no new claims; the send in progress finishes and is recorded", async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const held: MailMessage[] = [];
    const slow: Mailer = {
      async send(m) {
        held.push(m);
        await gate;
      },
      async close() {},
    };
    const sender = new MailSender(t.ctx, slow, { instanceId: "stopping" });
    const first = address();
    const second = address();
    await queueMail(t.ctx, message(first));
    const run = sender.wake();
    await vi.waitFor(() => expect(held.map((m) => m.to)).toEqual([first]));
    let stopped = false;
    const stopping = sender.stop().then(() => (stopped = true));
    await queueMail(t.ctx, message(second));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(stopped).toBe(false);
    release();
    await stopping;
    await run;
    expect((await rowsTo(first))[0]!.sent_at).not.toBeNull();
    expect((await rowsTo(second))[0]).toMatchObject({ sent_at: null, claimed_by: null });
    expect(held).toHaveLength(1);
    await sender.wake();
    expect(held).toHaveLength(1);
    await t.deliverMail();
  });

  it("deliver(ids) tries the given messages once and says what is still queued (the CLI before it exits)", async () => {
    const ok = address();
    const down = address();
    t.ctx.queuedMail.ids = [];
    try {
      await queueMail(t.ctx, message(ok));
      const okIds = t.ctx.queuedMail.ids;
      expect(await t.mailSender.deliver(okIds)).toEqual({ sent: 1, pending: 0, lastError: null });
      t.ctx.queuedMail.ids = [];
      mailer.down = true;
      await queueMail(t.ctx, message(down));
      const report = await t.mailSender.deliver(t.ctx.queuedMail.ids);
      expect(report).toEqual({ sent: 0, pending: 1, lastError: "connect ECONNREFUSED 127.0.0.1:25" });
    } finally {
      t.ctx.queuedMail.ids = undefined;
    }
  });

  it("reports each message queued, sent, retried and given up (for metrics)", async () => {
    const { limits } = t.config;
    const saved = limits.mailMaxAttempts;
    limits.mailMaxAttempts = 2;
    try {
      // What earlier tests left waiting goes first.
      t.clock.advanceSeconds(limits.mailRetryMaxSeconds);
      await t.deliverMail();
      events.length = 0;
      await queueMail(t.ctx, message(address()));
      await t.deliverMail();
      expect(events).toEqual(["queued", "sent"]);
      events.length = 0;
      mailer.down = true;
      await queueMail(t.ctx, message(address()));
      await t.deliverMail();
      t.clock.advanceSeconds(limits.mailRetryMaxSeconds);
      await t.deliverMail();
      expect(events).toEqual(["queued", "retried", "failed"]);
    } finally {
      limits.mailMaxAttempts = saved;
    }
  });

  it("pruneMailQueue deletes finished rows older than the cut-off and keeps the rest", async () => {
    const old = { sent: address(), failed: address(), superseded: address(), pending: address() };
    const recent = address();
    for (const to of Object.values(old)) await queueMail(t.ctx, message(to));
    const now = t.clock.now();
    await t.ctx.db.updateTable("mail_queue").set({ sent_at: now, body_sealed: null }).where("to_address", "=", old.sent).execute();
    await t.ctx.db.updateTable("mail_queue").set({ failed_at: now, body_sealed: null }).where("to_address", "=", old.failed).execute();
    await t.ctx.db
      .updateTable("mail_queue")
      .set({ superseded_at: now, body_sealed: null })
      .where("to_address", "=", old.superseded)
      .execute();
    await t.ctx.db
      .updateTable("mail_queue")
      .set({ available_at: now + 3_600_000 })
      .where("to_address", "=", old.pending)
      .execute();
    t.clock.advanceSeconds(10);
    await queueMail(t.ctx, message(recent));
    await t.ctx.db.updateTable("mail_queue").set({ sent_at: t.clock.now() }).where("to_address", "=", recent).execute();
    const deleted = await pruneMailQueue(t.ctx.db, now + 1);
    expect(deleted).toBeGreaterThanOrEqual(3);
    expect(await rowsTo(old.sent)).toHaveLength(0);
    expect(await rowsTo(old.failed)).toHaveLength(0);
    expect(await rowsTo(old.superseded)).toHaveLength(0);
    expect(await rowsTo(old.pending)).toHaveLength(1);
    expect(await rowsTo(recent)).toHaveLength(1);
  });
});

describeEachDialect("mail sender woken by the server", (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    // Answers do not wait for their mail here, and no poll runs: only the server's own wake can deliver it.
    t = await startTestApp(dialect, { deliverMailBeforeAnswer: false });
  });
  afterAll(async () => {
    await t?.close();
  });

  it("the sign-in email is sent right after the answer to the password step", async () => {
    const member = await seedMember(t);
    const browser = new Browser(t.app);
    expect((await browser.signInWithPassword(member.email, member.password)).statusCode).toBe(303);
    await vi.waitFor(() => expect(t.mail.sent.filter((m) => m.to === member.email)).toHaveLength(1), { timeout: 5000 });
    expect((await browser.get(t.mail.lastLink(member.email))).statusCode).toBe(303);
  });
});
