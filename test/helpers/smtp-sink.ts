import { SMTPServer } from "smtp-server";

export interface ReceivedMail {
  /** The envelope sender (MAIL FROM). */
  from: string | undefined;
  to: string[];
  raw: string;
  receivedAt: number;
}

/**
 * A real SMTP server on loopback that keeps every message (or, with `refuseRecipients`, refuses every recipient with a
 * 550); it can be stopped and started again on the same port.
 */
export class SmtpSink {
  readonly received: ReceivedMail[] = [];
  /** SMTP sessions opened by clients so far (each TCP connection that got a greeting). */
  connections = 0;

  constructor(private readonly options: { refuseRecipients?: boolean } = {}) {}

  private server: SMTPServer | undefined;
  port = 0;

  async start(port = this.port): Promise<void> {
    const server = new SMTPServer({
      authOptional: true,
      disabledCommands: ["STARTTLS"],
      logger: false,
      // Stopping drops open connections at once (as a restarting mail server does) instead of waiting up to 30 s for
      // clients that keep theirs open between messages.
      closeTimeout: 100,
      onConnect: (_session, callback) => {
        this.connections += 1;
        callback();
      },
      onRcptTo: (_address, _session, callback) => {
        if (!this.options.refuseRecipients) return callback();
        const error = new Error("550 5.1.1 Mailbox unavailable") as Error & { responseCode: number };
        error.responseCode = 550;
        callback(error);
      },
      onData: (stream, session, callback) => {
        const chunks: Buffer[] = [];
        stream.on("data", (chunk: Buffer) => chunks.push(chunk));
        stream.on("end", () => {
          this.received.push({
            from: session.envelope.mailFrom ? session.envelope.mailFrom.address : undefined,
            to: session.envelope.rcptTo.map((r) => r.address),
            raw: Buffer.concat(chunks).toString("utf8"),
            receivedAt: Date.now(),
          });
          callback();
        });
      },
    });
    // A client cut mid-session (an instance SIGKILLed while sending) is the server's "error" event: expected here.
    server.on("error", () => {});
    await new Promise<void>((resolve, reject) => {
      server.server.once("error", reject);
      server.listen(port, "127.0.0.1", () => resolve());
    });
    const address = server.server.address();
    this.port = typeof address === "object" && address ? address.port : port;
    this.server = server;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Messages to `address`, oldest first. */
  to(address: string): ReceivedMail[] {
    return this.received.filter((m) => m.to.includes(address));
  }

  /** The sign-in links (…/login/email/TOKEN) in messages to `address`, oldest first (quoted-printable soft breaks undone). */
  links(address: string, pattern = /https?:\/\/[^\s"<>]+\/login\/[^\s"<>]+/g): string[] {
    return this.to(address).flatMap((m) => [...m.raw.replace(/=\r?\n/g, "").matchAll(pattern)].map((x) => x[0].replace(/=3D/g, "=")));
  }

  /**
   * Waits (bounded) for a sign-in link to `address` newer than the `before`-th (the sender delivers after the answer):
   * the newest, or undefined if none came within `withinMs`.
   */
  async nextLink(address: string, before: number, withinMs: number): Promise<string | undefined> {
    const deadline = Date.now() + withinMs;
    while (this.links(address).length <= before && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    const links = this.links(address);
    return links.length > before ? links.at(-1) : undefined;
  }
}
