import { SMTPServer } from "smtp-server";

/**
 * The bench's mail server: a real SMTP server on loopback, in the bench's process, that accepts every message and keeps
 * only the last one (thousands arrive in a password run) and a count, so the bench can read the sign-in link it needs.
 */
export interface SmtpSink {
  url: string;
  /** Messages accepted so far. */
  count: () => number;
  /** The raw text of the last message, or undefined before the first. */
  last: () => string | undefined;
  close: () => Promise<void>;
}

export async function startSmtpSink(): Promise<SmtpSink> {
  let count = 0;
  let last: string | undefined;
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ["STARTTLS"],
    logger: false,
    // Stopping drops open connections at once (as a restarting mail server does) instead of waiting up to 30 s for
    // clients that keep theirs open between messages.
    closeTimeout: 100,
    onData(stream, _session, callback) {
      const chunks: Buffer[] = [];
      stream.on("data", (chunk: Buffer) => chunks.push(chunk));
      stream.on("end", () => {
        count += 1;
        last = Buffer.concat(chunks).toString("utf8");
        callback();
      });
    },
  });
  // A client that goes away mid-session (a server stopped at the end of the bench) is not the bench's failure.
  server.on("error", () => {});
  await new Promise<void>((resolve, reject) => {
    server.server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const address = server.server.address();
  if (typeof address !== "object" || address === null) throw new Error("the SMTP sink has no address");
  return {
    url: `smtp://127.0.0.1:${address.port}`,
    count: () => count,
    last: () => last,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
