import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type Nodemailer from "nodemailer";
import type { Transporter } from "nodemailer";
import type { MailMessage, Mailer } from "./mailer.js";

export interface TransportOptions {
  smtpUrl: string | undefined;
  from: string;
  /** Where `.eml` files go when there is no SMTP server. */
  outboxDir: string;
  /** SMTP connection, greeting and socket timeouts (the sender bounds each delivery as well). */
  timeoutMs?: number;
  /**
   * SMTP connections kept open and reused, at most this many at once: the most messages the sender sends side by side
   * (`mailBatchSize`), so none waits inside the pool while the sender's timeout runs. Default 1.
   */
  maxConnections?: number;
  /** Told of each outbox message, so the operator sees the link in the log. */
  onOutboxMessage?: (file: string, message: MailMessage) => void;
}

/**
 * Text and HTML parts as quoted-printable, always: readable in the raw message, valid for any text, and chosen here
 * rather than by nodemailer, whose per-message scan to choose an encoding cost as much as the rest of building the
 * message (issue 10: 0.5 → 0.3 ms of the main thread per sign-in email).
 */
const TEXT_ENCODING = "quoted-printable";

/** nodemailer, loaded for the first message rather than at start (memory, issue 10). */
async function nodemailer(): Promise<typeof Nodemailer> {
  return (await import("nodemailer")).default;
}

/** SMTP through nodemailer when `smtpUrl` is set; otherwise RFC 5322 `.eml` files in the outbox folder. */
export function createMailer(options: TransportOptions): Mailer {
  if (options.smtpUrl !== undefined) {
    const smtpUrl = options.smtpUrl;
    let transport: Promise<Transporter> | undefined;
    return {
      async send(message) {
        const timeouts =
          options.timeoutMs === undefined
            ? {}
            : { connectionTimeout: options.timeoutMs, greetingTimeout: options.timeoutMs, socketTimeout: options.timeoutMs };
        // Pooled: a connection (TCP, greeting, EHLO, STARTTLS, AUTH) serves many messages in turn instead of one, so a
        // sign-in email costs one SMTP transaction. Idle connections close after the socket timeout.
        transport ??= nodemailer().then((mailer) =>
          mailer.createTransport({ url: smtpUrl, pool: true, maxConnections: options.maxConnections ?? 1, ...timeouts }),
        );
        await (await transport).sendMail({ from: options.from, textEncoding: TEXT_ENCODING, ...message });
      },
      async close() {
        (await transport)?.close();
      },
    };
  }
  // nodemailer's stream transport builds the exact message SMTP would carry; we write it to a file instead.
  let transport: Promise<Transporter> | undefined;
  // 0700 when we create it: the messages carry live sign-in links.
  mkdirSync(options.outboxDir, { recursive: true, mode: 0o700 });
  let sequence = 0;
  return {
    async send(message) {
      transport ??= nodemailer().then((mailer) => mailer.createTransport({ streamTransport: true, buffer: true, newline: "windows" }));
      const info = await (await transport).sendMail({ from: options.from, textEncoding: TEXT_ENCODING, ...message });
      sequence += 1;
      const safeTo = message.to.replace(/[^a-zA-Z0-9@._-]/g, "_");
      const file = join(
        options.outboxDir,
        `${new Date().toISOString().replace(/[:.]/g, "-")}-${String(sequence).padStart(4, "0")}-${safeTo}.eml`,
      );
      writeFileSync(file, info.message as Buffer, { mode: 0o600 });
      options.onOutboxMessage?.(file, message);
    },
    async close() {
      (await transport)?.close();
    },
  };
}
