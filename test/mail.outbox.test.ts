import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import { simpleParser } from "mailparser";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestClock } from "./helpers/clock.js";
import { loadConfig } from "../src/config.js";
import { openRuntime, type Runtime } from "../src/runtime.js";
import { buildApp } from "../src/server.js";
import { createMailer } from "../src/mail/transport.js";
import type { MailMessage } from "../src/mail/mailer.js";
import { Browser, deliverMailBeforeAnswer, seedMember } from "./helpers/app.js";

const LINK = /http:\/\/localhost:3000\/login\/email\/[A-Za-z0-9_-]{43}/;

describe("mail outbox (no SMTP_URL)", () => {
  let dataDir: string;
  let runtime: Runtime;
  let app: FastifyInstance;
  const logged: Array<{ file: string; message: MailMessage }> = [];

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "latchkey-outbox-"));
    const config = loadConfig({ LATCHKEY_DATA_DIR: dataDir, LOG_LEVEL: "silent" });
    runtime = await openRuntime(config, {
      clock: new TestClock(),
      migrate: true,
      onOutboxMessage: (file, message) => logged.push({ file, message }),
    });
    app = await buildApp(runtime.ctx, { logger: false, outboxDir: runtime.outboxDir });
    deliverMailBeforeAnswer(app, runtime.mailSender);
  });
  afterAll(async () => {
    await app?.close();
    await runtime?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  async function signIn(email: string): Promise<{ browser: Browser; member: Awaited<ReturnType<typeof seedMember>> }> {
    const member = await seedMember({ ctx: runtime.ctx }, { email });
    const browser = new Browser(app);
    expect((await browser.signInWithPassword(member.email, member.password)).statusCode).toBe(303);
    return { browser, member };
  }

  it("writes each message as an RFC 5322 .eml file under <data>/outbox/ that parses back with the link, and reports it", async () => {
    const { browser } = await signIn("outbox-reader@example.com");
    const outbox = join(dataDir, "outbox");
    expect(runtime.outboxDir).toBe(outbox);
    const files = readdirSync(outbox).filter((f) => f.includes("outbox-reader"));
    expect(files).toHaveLength(1);
    const file = files[0] as string;
    expect(file).toMatch(/\.eml$/);
    expect(statSync(join(outbox, file)).mode & 0o777).toBe(0o600);

    const raw = readFileSync(join(outbox, file));
    expect(raw.toString("latin1")).toMatch(/^(From|To|Subject|Date|Message-ID|Content-Type|MIME-Version): /im);
    expect(raw.toString("latin1")).toContain("\r\n");
    const mail = await simpleParser(raw);
    expect(mail.from?.value[0]).toMatchObject({ name: "Latchkey", address: "no-reply@localhost" });
    expect(mail.subject).toBe("Your Latchkey sign-in link");
    expect(mail.date).toBeInstanceOf(Date);
    const link = LINK.exec(mail.text ?? "")?.[0];
    expect(link).toBeDefined();
    expect(mail.html).toContain(`href="${link}"`);

    // The operator sees the link in the log.
    expect(logged.at(-1)?.file).toBe(join(outbox, file));
    expect(logged.at(-1)?.message.text).toContain(link);

    // And the link from the file signs in.
    expect((await browser.get(link as string)).statusCode).toBe(303);
    expect((await browser.get("/api/v1/session")).statusCode).toBe(200);
  });

  it("writes text and HTML as quoted-printable, also a message mostly in another script, and it parses back unchanged", async () => {
    const outboxDir = mkdtempSync(join(tmpdir(), "latchkey-qp-"));
    try {
      const files: string[] = [];
      const mailer = createMailer({
        smtpUrl: undefined,
        from: "Latchkey <no-reply@localhost>",
        outboxDir,
        onOutboxMessage: (file) => files.push(file),
      });
      const text = "Γεια σου Ελένη — 你好，世界 — ваша ссылка для входа: http://localhost:3000/login/email/x";
      const html = `<p>${text}</p>`;
      await mailer.send({ to: "elena@example.com", subject: "Σύνδεση", text, html });
      await mailer.close();
      const raw = readFileSync(files[0] as string).toString("latin1");
      expect(raw.match(/Content-Transfer-Encoding: quoted-printable/gi)).toHaveLength(2);
      expect(raw).not.toMatch(/Content-Transfer-Encoding: base64/i);
      const mail = await simpleParser(readFileSync(files[0] as string));
      expect(mail.text?.trim()).toBe(text);
      expect(mail.html).toContain(text);
      expect(mail.subject).toBe("Σύνδεση");
    } finally {
      rmSync(outboxDir, { recursive: true, force: true });
    }
  });

  it("/dev/mail lists the message, and its page shows the link", async () => {
    await signIn("dev-mail@example.com");
    const list = await new Browser(app).get("/dev/mail");
    expect(list.statusCode).toBe(200);
    expect(list.headers["content-type"]).toContain("text/html");
    expect(list.body).toContain("Outbox");
    expect(list.body).toContain("dev-mail@example.com");
    // The file name is one path segment, percent-encoded ("@" → %40) like every path parameter.
    const href = /href="(\/dev\/mail\/[^"]*dev-mail%40example\.com\.eml)"/.exec(list.body)?.[1];
    expect(href).toBeDefined();

    const message = await new Browser(app).get(href as string);
    expect(message.statusCode).toBe(200);
    expect(message.body).toContain("Your Latchkey sign-in link");
    const link = LINK.exec(message.body)?.[0];
    expect(link).toBeDefined();
    expect(message.body).toContain(`<a href="${link}">`);
  });

  it("/dev/mail shows the HTML part too: in a sandboxed frame drawn from srcdoc, the message's markup escaped into it", async () => {
    await signIn("dev-mail-html@example.com");
    const list = await new Browser(app).get("/dev/mail");
    const href = /href="(\/dev\/mail\/[^"]*dev-mail-html%40example\.com\.eml)"/.exec(list.body)?.[1];
    const message = await new Browser(app).get(href as string);
    expect(message.statusCode).toBe(200);
    const frame = /<iframe ([^>]*)><\/iframe>/.exec(message.body);
    expect(frame, "an iframe on the page").not.toBeNull();
    const attributes = frame![1]!;
    // No scripts, forms or same-origin access in it; its links may only take the whole tab, on a click.
    expect(/ sandbox="([^"]*)"/.exec(attributes)?.[1]).toBe("allow-top-navigation-by-user-activation");
    expect(attributes).toMatch(/title="[^"]+"/);
    expect(attributes).not.toMatch(/ src=/);
    // The HTML part, as an attribute value: its quotes and angle brackets escaped, so it cannot end the attribute.
    const srcdoc = /srcdoc="([^"]*)"/.exec(attributes)?.[1] ?? "";
    expect(srcdoc).toContain("&lt;a href=&quot;");
    expect(srcdoc).toContain("Finish signing in");
    expect(srcdoc).not.toMatch(/[<>]/);
    // The text part stays on the page, below.
    expect(message.body.indexOf("<iframe")).toBeLessThan(message.body.indexOf("<pre>"));
    expect(message.body).toContain("If this was not you, do not open the link");
  });

  it.each([
    "/dev/mail/../../etc/passwd",
    "/dev/mail/..%2F..%2Fetc%2Fpasswd",
    "/dev/mail/..%2F..%2Fsecret.key",
    "/dev/mail/..%2Flatchkey.db",
    "/dev/mail/%2Fetc%2Fpasswd",
    "/dev/mail/passwd",
    "/dev/mail/nothing-here.eml",
  ])("%s is a 404, never a file outside the outbox", async (path) => {
    const response = await app.inject({ method: "GET", url: path });
    expect(response.statusCode).toBe(404);
    expect(response.body).not.toContain("root:");
    expect(response.body).not.toContain("SQLite format");
  });

  it("a .eml-named file one folder up is not reachable", async () => {
    writeFileSync(join(dataDir, "outside.eml"), "Subject: outside\r\n\r\nsecret outside text\r\n");
    const response = await app.inject({ method: "GET", url: "/dev/mail/..%2Foutside.eml" });
    expect(response.statusCode).toBe(404);
    expect(response.body).not.toContain("secret outside text");
  });

  it("/dev/mail answers only requests addressed to a loopback name (no DNS rebinding)", async () => {
    const outbox = mkdtempSync(join(tmpdir(), "latchkey-outbox-"));
    const app = await buildApp(runtime.ctx, { logger: false, outboxDir: outbox });
    try {
      expect((await app.inject({ method: "GET", url: "/dev/mail", headers: { host: "localhost:3000" } })).statusCode).toBe(200);
      expect((await app.inject({ method: "GET", url: "/dev/mail", headers: { host: "127.0.0.1:3000" } })).statusCode).not.toBe(404);
      expect((await app.inject({ method: "GET", url: "/dev/mail", headers: { host: "evil.example" } })).statusCode).toBe(404);
      expect((await app.inject({ method: "GET", url: "/dev/mail/x.eml", headers: { host: "evil.example:3000" } })).statusCode).toBe(404);
    } finally {
      await app.close();
      rmSync(outbox, { recursive: true, force: true });
    }
  });

  it("without the outboxDir option there is no /dev/mail", async () => {
    const other = await buildApp(runtime.ctx, { logger: false });
    try {
      expect((await other.inject({ method: "GET", url: "/dev/mail" })).statusCode).toBe(404);
    } finally {
      await other.close();
    }
  });
});

describe("the outbox mailer on its own", () => {
  it("creates the outbox folder and writes files that keep non-ASCII subjects and bodies", async () => {
    const dir = join(mkdtempSync(join(tmpdir(), "latchkey-outbox-")), "deep", "outbox");
    const mailer = createMailer({ smtpUrl: undefined, from: "Latchkey <no-reply@example.com>", outboxDir: dir });
    try {
      await mailer.send({ to: "zoë@example.com", subject: "Grüße — 你好", text: "Käse 🧀 https://example.com/x", html: "<p>Käse 🧀</p>" });
      const files = readdirSync(dir);
      expect(files).toHaveLength(1);
      expect(files[0]).toMatch(/^[A-Za-z0-9@._-]+\.eml$/);
      const mail = await simpleParser(readFileSync(join(dir, files[0] as string)));
      expect(mail.subject).toBe("Grüße — 你好");
      expect(mail.text?.trim()).toBe("Käse 🧀 https://example.com/x");
      expect(mail.html).toContain("Käse 🧀");
    } finally {
      await mailer.close();
      rmSync(join(dir, "..", ".."), { recursive: true, force: true });
    }
  });
});
