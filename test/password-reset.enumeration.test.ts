import { TableNode, type KyselyPlugin, type OperationNode } from "kysely";
import type { InjectOptions } from "fastify";
import { afterAll, beforeAll, expect, it, vi } from "vitest";
import { defaultLimits } from "../src/config.js";
import type { MailMessage } from "../src/mail/mailer.js";
import { Browser, csrfFrom, seedMember, startTestApp, type TestApp } from "./helpers/app.js";
import { describeEachDialect } from "./helpers/dialects.js";

/**
 * "Forgot your password?" must not tell whether an address has a login: not by its answer, not by its timing. Only the
 * checks every request gets (the address's form, the throttles) run before the answer; the look-up and, for a login,
 * the link, the audit events and the email come after it (as support requests, review finding F3).
 */
describeEachDialect("password reset request: the same answer for every address", (dialect) => {
  let t: TestApp;
  let ipCounter = 0;

  beforeAll(async () => {
    t = await startTestApp(dialect);
  });
  afterAll(async () => {
    await t?.close();
  });

  /** One request from a fresh IP address (the per-IP limit is not what is measured), through the API or the page. */
  async function ask(email: string, via: "api" | "page" = "api"): Promise<{ statusCode: number; body: string; ms: number }> {
    ipCounter += 1;
    const remoteAddress = `10.${(ipCounter >> 8) & 255}.${ipCounter & 255}.9`;
    let request: InjectOptions;
    if (via === "api") {
      request = {
        method: "POST",
        url: "/api/v1/password-reset",
        remoteAddress,
        headers: { "content-type": "application/json" },
        payload: JSON.stringify({ email }),
      };
    } else {
      const browser = new Browser(t.app);
      const csrf = csrfFrom((await browser.get("/login/forgot")).body);
      request = {
        method: "POST",
        url: "/login/forgot",
        remoteAddress,
        headers: { "content-type": "application/x-www-form-urlencoded", cookie: browser.cookieHeader() },
        payload: new URLSearchParams({ _csrf: csrf, email }).toString(),
      };
    }
    const started = process.hrtime.bigint();
    const response = await t.app.inject(request);
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    return { statusCode: response.statusCode, body: response.body, ms };
  }

  /** Runs `fn` with every query the app issues recorded as "select users", "insert password_resets", ... */
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

  async function ssoMember(): Promise<{ email: string }> {
    const member = await seedMember(t, { accountName: "SSO only" });
    await t.ctx.db.updateTable("users").set({ password_hash: null }).where("id", "=", member.userId).execute();
    await t.ctx.db.updateTable("memberships").set({ sign_in_method: "sso" }).where("user_id", "=", member.userId).execute();
    return member;
  }

  for (const via of ["api", "page"] as const) {
    it(`${via}: a login, an SSO member and an unknown address get the same answer after the same database work`, async () => {
      const member = await seedMember(t);
      const sso = await ssoMember();
      const logs: Record<string, string[]> = { login: [], sso: [], unknown: [] };
      const answers: Record<string, { statusCode: number; body: string }> = {};
      for (const [who, email] of [
        ["login", member.email],
        ["sso", sso.email],
        ["unknown", `nobody-${member.userId}@example.com`],
      ] as const) {
        const answer = await recordingQueries(logs[who]!, () => ask(email, via));
        await t.app.afterResponse.settled();
        answers[who] = { statusCode: answer.statusCode, body: answer.body };
      }
      expect(answers["login"]!.statusCode).toBe(via === "api" ? 202 : 200);
      expect(answers["sso"]).toEqual(answers["login"]);
      expect(answers["unknown"]).toEqual(answers["login"]);
      if (via === "page") expect(answers["login"]!.body).toContain("If an account uses this address, we sent a link");
      expect(logs["sso"]).toEqual(logs["login"]);
      expect(logs["unknown"]).toEqual(logs["login"]);
      expect(logs["login"]!.join()).not.toMatch(/users|memberships|password_resets|audit_events/);
      // What differs came after the answer: a link for the login, a pointer to SSO for the SSO member.
      expect(t.mail.last(member.email)?.subject).toBe("Reset your Latchkey password");
      expect(t.mail.last(sso.email)?.subject).toBe("How to sign in to Latchkey");
    });
  }

  it("answers before anything is looked up or written; the link, the audit events and the email come after", async () => {
    const member = await seedMember(t);
    const events: string[] = [];
    await recordingQueries(events, async () => {
      expect((await ask(member.email)).statusCode).toBe(202);
      events.push("answered");
      await t.app.afterResponse.settled();
    });
    const answeredAt = events.indexOf("answered");
    expect(events.slice(0, answeredAt).join()).not.toMatch(/users|password_resets/);
    expect(events.indexOf("select users")).toBeGreaterThan(answeredAt);
    expect(events.indexOf("insert password_resets")).toBeGreaterThan(answeredAt);
    expect(events.indexOf("insert audit_events")).toBeGreaterThan(answeredAt);
    expect(await t.ctx.db.selectFrom("password_resets").select("id").where("user_id", "=", member.userId).execute()).toHaveLength(1);
  });

  it("answers before the email is sent: a slow mail server does not tell logins apart", async () => {
    const member = await seedMember(t);
    const original = t.ctx.mailer;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const held: MailMessage[] = [];
    t.ctx.mailer = {
      async send(message) {
        held.push(message);
        await gate;
      },
      async close() {},
    };
    try {
      const answer = await Promise.race([
        ask(member.email),
        new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), 2000)),
      ]);
      expect(answer === "timeout" ? "timeout" : answer.statusCode).toBe(202);
      await vi.waitFor(() => expect(held.map((m) => m.to)).toEqual([member.email]));
    } finally {
      release();
      await t.app.afterResponse.settled();
      t.ctx.mailer = original;
    }
  });

  it("a failure after the answer is logged; the person got the same answer, and no link is left without its email", async () => {
    const member = await seedMember(t);
    const logged = vi.spyOn(t.app.log, "error").mockImplementation(() => undefined);
    const original = t.ctx.mailer;
    t.ctx.mailer = {
      async send() {
        throw new Error("mail server gone");
      },
      async close() {},
    };
    try {
      expect((await ask(member.email)).statusCode).toBe(202);
      await t.app.afterResponse.settled();
      expect(logged).toHaveBeenCalledWith(
        expect.objectContaining({ err: expect.objectContaining({ message: "mail server gone" }) }),
        expect.stringContaining("password reset request"),
      );
    } finally {
      t.ctx.mailer = original;
      logged.mockRestore();
    }
    // The row and the email commit together (queueMail in the same transaction): no link exists that was never sent.
    expect(await t.ctx.db.selectFrom("password_resets").select("id").where("user_id", "=", member.userId).execute()).toHaveLength(0);
  });

  // Measured on PostgreSQL only, as the support request's: there every query is a round trip, so extra work before the
  // answer for a login would stand out; on SQLite it is within the noise of a shared machine. The tests above show the
  // equal work structurally on both dialects.
  it.skipIf(dialect === "sqlite")(
    "answers a login and an unknown address equally fast (40 interleaved requests each, median of the paired differences)",
    async () => {
      const member = await seedMember(t);
      const login: number[] = [];
      const unknown: number[] = [];
      const median = (values: number[]): number => {
        const sorted = [...values].sort((a, b) => a - b);
        const mid = Math.floor(sorted.length / 2);
        return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
      };
      for (const email of [member.email, "warm-up-nobody@example.com"]) {
        expect((await ask(email)).statusCode).toBe(202);
        await t.app.afterResponse.settled();
      }
      for (let i = 0; i < 40; i++) {
        // A new window each round, so the per-address limit never answers instead.
        t.clock.advanceSeconds(defaultLimits.passwordResetRequestWindowSeconds + 1);
        const order =
          i % 2 === 0 ? ([member.email, "nobody-here@example.com"] as const) : (["nobody-here@example.com", member.email] as const);
        for (const email of order) {
          const { statusCode, ms } = await ask(email);
          expect(statusCode).toBe(202);
          (email === member.email ? login : unknown).push(ms);
          await t.app.afterResponse.settled();
        }
      }
      const paired = median(login.map((ms, i) => ms - unknown[i]!));
      const summary = `login ${median(login).toFixed(2)} ms, unknown ${median(unknown).toFixed(2)} ms, paired difference ${paired.toFixed(2)} ms`;
      expect(Math.abs(paired), summary).toBeLessThan(0.35 * median(unknown) + 0.2);
    },
  );
});
