import type { simpleParser as SimpleParser } from "mailparser";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../../context.js";
import { html, type SafeHtml } from "../../html.js";
import { layout } from "../views/layout.js";
import { LatchkeyError } from "../../errors.js";
import { routes, pathTo } from "../../paths.js";

/** mailparser is loaded on the first visit of /dev/mail, not at start: it is most of a megabyte of code and ~20 MB of RSS. */
async function parser(): Promise<typeof SimpleParser> {
  return (await import("mailparser")).simpleParser;
}

/** True for addresses only this machine can reach: the outbox may hold live sign-in links. */
export function isLoopbackHost(host: string): boolean {
  return host === "localhost" || host === "::1" || host === "[::1]" || /^127(\.\d{1,3}){3}$/.test(host);
}

const EML = /^[A-Za-z0-9@._-]+\.eml$/;

/**
 * The HTML part as a mail program shows it: in an iframe drawn from `srcdoc`, sandboxed with no scripts, no forms,
 * no same-origin access (an opaque origin that cannot read our cookies or pages). It inherits this page's CSP, which
 * keeps it from loading anything from elsewhere. A click on one of its links opens in the whole tab (`_top`): our
 * pages may not be framed. The text part is shown below it, as before.
 */
function htmlPart(body: string): SafeHtml {
  return html`<h2>HTML</h2>
<iframe title="The HTML part of the message" sandbox="allow-top-navigation-by-user-activation" srcdoc="${`<base target="_top">${body}`}" style="display:block;width:100%;height:26rem;border:1px solid var(--line);border-radius:6px;background:#fff"></iframe>`;
}

/**
 * `/dev/mail`: the local outbox, newest first, for trying Latchkey without an SMTP server. Registered only when mail
 * goes to the outbox and the server listens on loopback.
 */
export function devMailRoutes(app: FastifyInstance, ctx: AppContext, outboxDir: string): void {
  // Only for requests addressed to a loopback name: a DNS-rebinding page (evil.example → 127.0.0.1) must not read
  // the outbox, which holds live sign-in links.
  app.addHook("onRequest", (request, _reply, done) => {
    if (!request.url.startsWith(routes.devMail)) return done();
    const host = (request.headers.host ?? "").replace(/:\d+$/, "");
    done(isLoopbackHost(host) ? undefined : new LatchkeyError("not_found", "Not found."));
  });
  const page = (title: string, body: ReturnType<typeof html>): ReturnType<typeof html> =>
    layout({ title, body, wide: true, productName: ctx.config.productName });

  app.get(routes.devMail, async (_request, reply) => {
    const simpleParser = await parser();
    const files = (await readdir(outboxDir).catch(() => [] as string[]))
      .filter((f) => EML.test(f))
      .sort()
      .reverse()
      .slice(0, 100);
    const rows = await Promise.all(
      files.map(async (file) => {
        const mail = await simpleParser(await readFile(join(outboxDir, file)));
        return html`<tr><td data-label="Sent (UTC)">${mail.date?.toISOString().replace("T", " ").slice(0, 19) ?? ""}</td><td data-label="To">${mail.to && !Array.isArray(mail.to) ? mail.to.text : ""}</td><td data-label="Subject"><a href="${pathTo("devMailMessage", { file })}">${mail.subject ?? "(no subject)"}</a></td></tr>`;
      }),
    );
    return reply.html(
      page(
        "Outbox",
        html`<h1>Outbox</h1><p class="muted">Messages Latchkey would have sent (SMTP_URL is not set), newest first. Files are in <code>${outboxDir}</code>.</p>
${rows.length === 0 ? html`<p>No messages yet. Sign in with a password to get a sign-in link here.</p>` : html`<table class="stack"><thead><tr><th scope="col">Sent (UTC)</th><th scope="col">To</th><th scope="col">Subject</th></tr></thead><tbody>${rows}</tbody></table>`}`,
      ),
    );
  });

  app.get<{ Params: { file: string } }>(routes.devMailMessage, async (request, reply) => {
    const { file } = request.params;
    if (!EML.test(file)) throw new LatchkeyError("not_found", "No such message.");
    const content = await readFile(join(outboxDir, file)).catch(() => null);
    if (content === null) throw new LatchkeyError("not_found", "No such message.");
    const simpleParser = await parser();
    const mail = await simpleParser(content);
    const links = [...(mail.text ?? "").matchAll(/https?:\/\/\S+/g)].map((m) => m[0]);
    return reply.html(
      page(
        mail.subject ?? "Message",
        html`<p><a href="${pathTo("devMail")}">← Outbox</a></p><h1>${mail.subject ?? "(no subject)"}</h1>
<p class="muted">To ${mail.to && !Array.isArray(mail.to) ? mail.to.text : ""} · ${mail.date?.toISOString() ?? ""}</p>
${links.map((l) => html`<p><a href="${l}">${l}</a></p>`)}
${mail.html ? htmlPart(mail.html) : ""}
<h2>Text</h2>
<pre>${mail.text ?? ""}</pre>`,
      ),
    );
  });
}
