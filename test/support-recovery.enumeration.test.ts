import { TableNode, type KyselyPlugin, type OperationNode } from "kysely";
import { afterAll, beforeAll, expect, it, vi } from "vitest";
import type { MailMessage } from "../src/mail/mailer.js";
import { Browser, csrfFrom, seedMember, startTestApp, type TestApp } from "./helpers/app.js";
import { describeEachDialect } from "./helpers/dialects.js";

const DAY_SECONDS = 24 * 60 * 60;

/**
 * Security review F3: `POST /support` must not tell by its timing whether an address has a login. Only the checks
 * every request gets (input, throttles) run before the answer; the look-up and, for a registered address, the row,
 * the audit events and the email come after it.
 */
describeEachDialect("support request timing", (dialect) => {
  let t: TestApp;
  let browser: Browser;
  let csrf: string;
  let ipCounter = 0;

  beforeAll(async () => {
    t = await startTestApp(dialect);
    browser = new Browser(t.app);
    csrf = csrfFrom((await browser.get("/support")).body);
  });
  afterAll(async () => {
    await t?.close();
  });

  /** One POST /support from a fresh IP address (the per-IP throttle is not what is measured). */
  async function ask(email: string): Promise<{ statusCode: number; ms: number }> {
    ipCounter += 1;
    const started = process.hrtime.bigint();
    const response = await t.app.inject({
      method: "POST",
      url: "/support",
      remoteAddress: `10.${(ipCounter >> 8) & 255}.${ipCounter & 255}.7`,
      headers: { "content-type": "application/x-www-form-urlencoded", cookie: browser.cookieHeader() },
      payload: new URLSearchParams({ _csrf: csrf, email, message: "Lost my phone" }).toString(),
    });
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    return { statusCode: response.statusCode, ms };
  }

  const median = (values: number[]): number => {
    const sorted = [...values].sort((a, b) => a - b);
    const mid = Math.floor(sorted.length / 2);
    return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  };

  /** Runs `fn` with every query the app issues recorded as "select users", "insert support_requests", ... */
  async function recordingQueries<T>(log: string[], fn: () => Promise<T>): Promise<T> {
    const recorder: KyselyPlugin = {
      transformQuery(args) {
        const node = args.node;
        const name = (n: OperationNode | undefined): string => (n && TableNode.is(n) ? n.table.identifier.name : (n?.kind ?? "?"));
        const table =
          node.kind === "InsertQueryNode"
            ? name(node.into)
            : node.kind === "UpdateQueryNode"
              ? name(node.table)
              : node.kind === "DeleteQueryNode" || node.kind === "SelectQueryNode"
                ? node.from?.froms.map(name).join(",")
                : undefined;
        log.push(`${node.kind.replace("QueryNode", "").toLowerCase()} ${table ?? "?"}`);
        return node;
      },
      async transformResult(args) {
        return args.result;
      },
    };
    const plain = t.ctx.db;
    t.ctx.db = plain.withPlugin(recorder);
    try {
      return await fn();
    } finally {
      t.ctx.db = plain;
    }
  }

  it("does the same database work before answering a registered and an unknown address", async () => {
    const member = await seedMember(t);
    const registered: string[] = [];
    const unknown: string[] = [];
    await recordingQueries(registered, async () => expect((await ask(member.email)).statusCode).toBe(200));
    await t.app.afterResponse.settled();
    await recordingQueries(unknown, async () => expect((await ask("nobody-at-all@example.com")).statusCode).toBe(200));
    await t.app.afterResponse.settled();
    expect(registered).toEqual(unknown);
    expect(registered.join()).not.toMatch(/users|support_requests|audit_events/);
  });

  it("answers before anything is written for a registered address, which still gets its row, audit event and email", async () => {
    const member = await seedMember(t);
    const events: string[] = [];
    const sentBefore = t.mail.sent.length;
    await recordingQueries(events, async () => {
      expect((await ask(member.email)).statusCode).toBe(200);
      events.push("answered");
      await t.app.afterResponse.settled();
    });
    const answeredAt = events.indexOf("answered");
    expect(events.indexOf("insert support_requests")).toBeGreaterThan(answeredAt);
    expect(events.indexOf("insert audit_events")).toBeGreaterThan(answeredAt);
    expect(events.slice(0, answeredAt).join()).not.toContain("users");
    expect(t.mail.sent.length).toBe(sentBefore + 1);
    const row = await t.ctx.db
      .selectFrom("support_requests")
      .select(["status", "message", "ip"])
      .where("user_id", "=", member.userId)
      .executeTakeFirstOrThrow();
    expect(row).toMatchObject({ status: "unconfirmed", message: "Lost my phone" });
    const audit = await t.ctx.db
      .selectFrom("audit_events")
      .select("type")
      .where("user_id", "=", member.userId)
      .where("type", "=", "support.requested")
      .execute();
    expect(audit).toHaveLength(1);
    expect(t.mail.last(member.email)?.subject).toContain("Confirm your Latchkey two-factor reset request");
  });

  it("a failure after the answer is logged, and the person still gets the same answer", async () => {
    const member = await seedMember(t);
    const logged = vi.spyOn(t.app.log, "error").mockImplementation(() => undefined);
    const failing: KyselyPlugin = {
      transformQuery(args) {
        if (
          args.node.kind === "InsertQueryNode" &&
          args.node.into &&
          TableNode.is(args.node.into) &&
          args.node.into.table.identifier.name === "support_requests"
        )
          throw new Error("database gone");
        return args.node;
      },
      async transformResult(args) {
        return args.result;
      },
    };
    const plain = t.ctx.db;
    t.ctx.db = plain.withPlugin(failing);
    try {
      expect((await ask(member.email)).statusCode).toBe(200);
      await t.app.afterResponse.settled();
      expect(logged).toHaveBeenCalledWith(
        expect.objectContaining({ err: expect.objectContaining({ message: "database gone" }) }),
        expect.stringContaining("support request"),
      );
    } finally {
      t.ctx.db = plain;
      logged.mockRestore();
    }
    expect(await t.ctx.db.selectFrom("support_requests").select("id").where("user_id", "=", member.userId).execute()).toHaveLength(0);
  });

  it("/support answers before the email is sent, so a slow mail server does not tell registered addresses apart", async () => {
    const member = await seedMember(t, { accountName: "Support timing" });
    const original = t.mail.send;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const held: MailMessage[] = [];
    // The mail server holds every message until released.
    t.mail.send = async (message: MailMessage): Promise<void> => {
      held.push(message);
      await gate;
    };
    try {
      const b = new Browser(t.app);
      const page = await b.get("/support");
      const answer = await Promise.race([
        b.request("POST", "/support", { form: { _csrf: csrfFrom(page.body), email: member.email, message: "" } }),
        new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), 2000)),
      ]);
      expect(answer === "timeout" ? "timeout" : answer.statusCode).toBe(200);
      // The confirmation email is sent after the answer, and the held mail server does not hold the answer up.
      await vi.waitFor(() => expect(held.map((m) => m.to)).toEqual([member.email]));
    } finally {
      release();
      await t.app.afterResponse.settled();
      t.mail.send = original;
    }
  });

  // Measured on PostgreSQL only: there every query is a round trip and the old extra work of a registered address
  // stood out (+60 % and more of the answer's time); on SQLite it was a fraction of a millisecond, within the
  // noise of a shared machine. The two tests above show the equal work structurally on both dialects.
  it.skipIf(dialect === "sqlite")(
    "answers a registered and an unknown address equally fast (40 interleaved requests each, median of the paired differences)",
    async () => {
      const member = await seedMember(t);
      const registered: number[] = [];
      const unknown: number[] = [];
      // Warm up both paths (first queries, page rendering) before measuring.
      for (const email of [member.email, "warm-up-nobody@example.com"]) {
        expect((await ask(email)).statusCode).toBe(200);
        await t.app.afterResponse.settled();
      }
      for (let i = 0; i < 40; i++) {
        // A new day each round, so the per-address limit (3 a day) never answers instead.
        t.clock.advanceSeconds(DAY_SECONDS + 1);
        // Alternate which goes first, so drift (JIT, caches, other load) hits both the same.
        const order =
          i % 2 === 0 ? ([member.email, "nobody-here@example.com"] as const) : (["nobody-here@example.com", member.email] as const);
        for (const email of order) {
          const { statusCode, ms } = await ask(email);
          expect(statusCode).toBe(200);
          (email === member.email ? registered : unknown).push(ms);
          // The work after a registered answer must not slow down the next measured request.
          await t.app.afterResponse.settled();
        }
      }
      // Each round's two requests ran side by side, so the median of their differences is robust to load that
      // comes and goes on a shared machine. Before the fix a registered address took an insert, a membership
      // look-up and an audit insert longer: 0.6 to 1 times the unknown address's median; now both do the same
      // work before the answer (measured: within ±0.2).
      const paired = median(registered.map((ms, i) => ms - unknown[i]!));
      const summary = `registered ${median(registered).toFixed(2)} ms, unknown ${median(unknown).toFixed(2)} ms, paired difference ${paired.toFixed(2)} ms`;
      expect(Math.abs(paired), summary).toBeLessThan(0.35 * median(unknown) + 0.2);
    },
  );
});
