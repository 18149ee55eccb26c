import { mkdtempSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import { simpleParser, type ParsedMail, type AddressObject } from "mailparser";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestClock } from "./helpers/clock.js";
import { loadConfig } from "../src/config.js";
import { openRuntime, type Runtime } from "../src/runtime.js";
import { buildApp } from "../src/server.js";
import { Browser, deliverMailBeforeAnswer, seedMember } from "./helpers/app.js";
import { SmtpSink } from "./helpers/smtp-sink.js";

const MAIL_FROM = "Acme Sign-in <sign-in@acme.example>";

/** The whole runtime as `latchkey serve` builds it from the environment, with SMTP_URL set. */
async function startApp(smtpUrl: string): Promise<{ app: FastifyInstance; runtime: Runtime; dataDir: string; close(): Promise<void> }> {
  const dataDir = mkdtempSync(join(tmpdir(), "latchkey-smtp-"));
  const config = loadConfig({ LATCHKEY_DATA_DIR: dataDir, SMTP_URL: smtpUrl, MAIL_FROM, LOG_LEVEL: "silent" });
  const runtime = await openRuntime(config, { clock: new TestClock(), migrate: true });
  const app = await buildApp(runtime.ctx, { logger: false });
  deliverMailBeforeAnswer(app, runtime.mailSender);
  return {
    app,
    runtime,
    dataDir,
    async close() {
      await app.close();
      await runtime.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

function addresses(field: AddressObject | AddressObject[] | undefined): string[] {
  return (Array.isArray(field) ? field : field ? [field] : []).flatMap((a) => a.value.map((v) => v.address ?? ""));
}

async function waitFor<T>(get: () => T | undefined, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const value = get();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("mail over real SMTP", () => {
  describe("a server that accepts", () => {
    let smtp: SmtpSink;
    let t: Awaited<ReturnType<typeof startApp>>;
    beforeAll(async () => {
      smtp = new SmtpSink();
      await smtp.start();
      t = await startApp(`smtp://127.0.0.1:${smtp.port}`);
    });
    afterAll(async () => {
      await t?.close();
      await smtp?.stop();
    });

    it("the sign-in email arrives with From, To, Subject, text and HTML bodies, and its link signs in in the same browser", async () => {
      const member = await seedMember({ ctx: t.runtime.ctx }, { email: "grace@example.com" });
      const browser = new Browser(t.app);
      const step = await browser.signInWithPassword(member.email, member.password);
      expect(step.statusCode).toBe(303);
      expect(step.headers.location).toBe("/login/email");

      const message = await waitFor(() => smtp.received.at(-1));
      expect(message.from).toBe("sign-in@acme.example");
      expect(message.to).toEqual(["grace@example.com"]);
      const mail: ParsedMail = await simpleParser(message.raw);
      expect(mail.from?.value[0]).toMatchObject({ name: "Acme Sign-in", address: "sign-in@acme.example" });
      expect(addresses(mail.to)).toEqual(["grace@example.com"]);
      expect(mail.subject).toBe("Your Latchkey sign-in link");
      expect(mail.messageId).toBeTruthy();

      const textLink = /http:\/\/localhost:3000\/login\/email\/[A-Za-z0-9_-]{43}/.exec(mail.text ?? "")?.[0];
      expect(textLink).toBeDefined();
      expect(mail.text).toContain("same browser");
      expect(mail.html).toBeTruthy();
      expect(mail.html).toContain(`href="${textLink}"`);
      expect(mail.html).toContain("Finish signing in");

      // Nothing went to the outbox: SMTP_URL is set.
      expect(existsSync(join(t.dataDir, "outbox"))).toBe(false);

      const stranger = new Browser(t.app);
      expect((await stranger.get(textLink as string)).statusCode).toBe(403);
      const signedIn = await browser.get(textLink as string);
      expect(signedIn.statusCode).toBe(303);
      const session = await browser.get("/api/v1/session");
      expect(session.statusCode).toBe(200);
      expect(session.json().user.email).toBe("grace@example.com");
    });
  });

  it("sign-in emails share one SMTP connection, and one dropped by the server is replaced for the next email", async () => {
    const smtp = new SmtpSink();
    await smtp.start();
    const t = await startApp(`smtp://127.0.0.1:${smtp.port}`);
    try {
      const member = await seedMember({ ctx: t.runtime.ctx }, { email: "pooled@example.com" });
      const signIn = async (): Promise<void> => {
        const response = await t.app.inject({
          method: "POST",
          url: "/api/v1/login",
          payload: { email: member.email, password: member.password },
        });
        expect(response.statusCode).toBe(200);
      };
      for (let i = 0; i < 5; i++) await signIn();
      expect(smtp.to(member.email)).toHaveLength(5);
      expect(smtp.connections).toBe(1);

      // The server goes away and comes back on the same port: the pooled connection is gone with it.
      await smtp.stop();
      await smtp.start();
      await signIn();
      await waitFor(() => (smtp.to(member.email).length === 6 ? true : undefined));
      expect(smtp.connections).toBe(2);
      const rows = await t.runtime.ctx.db.selectFrom("mail_queue").select(["sent_at"]).where("to_address", "=", member.email).execute();
      expect(rows).toHaveLength(6);
      expect(rows.every((row) => row.sent_at !== null)).toBe(true);
    } finally {
      await t.close();
      await smtp.stop();
    }
  });

  describe("a server that refuses", () => {
    let smtp: SmtpSink;
    let t: Awaited<ReturnType<typeof startApp>>;
    beforeAll(async () => {
      smtp = new SmtpSink({ refuseRecipients: true });
      await smtp.start();
      t = await startApp(`smtp://127.0.0.1:${smtp.port}`);
    });
    afterAll(async () => {
      await t?.close();
      await smtp?.stop();
    });

    it("the password step answers as usual on the API; the refused email stays queued for a retry, with the server's reply", async () => {
      const member = await seedMember({ ctx: t.runtime.ctx });
      const response = await t.app.inject({
        method: "POST",
        url: "/api/v1/login",
        payload: { email: member.email, password: member.password },
      });
      expect(response.statusCode).toBe(200);
      expect(response.json()).toEqual({ next: "email_link" });
      expect(smtp.received).toHaveLength(0);
      const row = await t.runtime.ctx.db
        .selectFrom("mail_queue")
        .select(["attempts", "sent_at", "failed_at", "last_error"])
        .where("to_address", "=", member.email)
        .executeTakeFirstOrThrow();
      expect(row).toMatchObject({ attempts: 1, sent_at: null, failed_at: null });
      expect(row.last_error).toContain("550");
    });

    it("the password form leads to “check your email”, which says delivery is failing", async () => {
      const member = await seedMember({ ctx: t.runtime.ctx });
      const browser = new Browser(t.app);
      const response = await browser.signInWithPassword(member.email, member.password);
      expect(response.statusCode).toBe(303);
      const page = await browser.get("/login/email");
      expect(page.statusCode).toBe(200);
      expect(page.body).toContain("We are having trouble sending email right now.");
    });
  });

  it("an SMTP server that is not there: the sign-in goes on, and the email waits in the queue", async () => {
    const gone = new SmtpSink();
    await gone.start();
    const port = gone.port;
    await gone.stop();
    const t = await startApp(`smtp://127.0.0.1:${port}`);
    try {
      const member = await seedMember({ ctx: t.runtime.ctx });
      const response = await t.app.inject({
        method: "POST",
        url: "/api/v1/login",
        payload: { email: member.email, password: member.password },
      });
      expect(response.statusCode).toBe(200);
      const row = await t.runtime.ctx.db
        .selectFrom("mail_queue")
        .select(["attempts", "sent_at", "last_error"])
        .where("to_address", "=", member.email)
        .executeTakeFirstOrThrow();
      expect(row).toMatchObject({ attempts: 1, sent_at: null });
      expect(row.last_error).toContain("ECONNREFUSED");
    } finally {
      await t.close();
    }
  });
});
