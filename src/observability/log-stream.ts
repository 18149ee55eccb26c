import pino from "pino";

/** A stream the logger writes whole JSON lines to. */
export interface LogStream {
  write(line: string): void;
}

let stdout: LogStream | undefined;

/**
 * The server's log destination: stdout, written synchronously, one process-wide stream.
 *
 * Why not pino's default (an asynchronous stdout): `serve` ends with `process.exit`, and a write still in flight then
 * is lost or lands after later lines — a shutdown test saw a request's "request completed" line after "stopped", and
 * with a log reader that fell behind (a full pipe) lines went missing altogether. Written synchronously, every line is
 * in the pipe, in order, before the next statement runs; a reader that falls behind slows the server down instead of
 * losing its log. The lines cost a write each on the event loop (microseconds); the asynchronous writes they replace
 * each took a turn of libuv's thread pool, which argon2id needs for the password step.
 */
export function stdoutLogStream(): LogStream {
  stdout ??= pino.destination({ dest: 1, sync: true });
  return stdout;
}
