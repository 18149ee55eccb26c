/**
 * Notices: what `serve` tells its operator besides the request log — that it runs and where, where mail goes, the
 * first-run setup link, each outbox message's link. At a terminal they are plain lines on stderr, for a person; anywhere
 * else (systemd, a container, a pipe) they are JSON log lines on stdout with the values as fields, so the log stream
 * stays one format and a program still finds the link: `{"msg":"first-run setup link","setupUrl":"http://…"}`.
 */

/** Values of a notice, as JSON fields. */
export type NoticeFields = Record<string, string | number | boolean>;

export interface Notice {
  /** The log line's `msg`: fixed wording, for programs to match on. */
  msg: string;
  fields: NoticeFields;
  /** The same for a person at a terminal: whole lines, already escaped for it (src/terminal.ts). */
  text: string[];
}

/** Where JSON notices go: the server's logger (info level, so `LOG_LEVEL` above info hides them). */
export interface NoticeLog {
  info(fields: NoticeFields, msg: string): void;
}

export interface NoticesOptions {
  /** Whether stderr is a terminal (`process.stderr.isTTY`). */
  terminal: boolean;
  /** Writes text for the terminal (stderr). */
  writeText: (text: string) => void;
}

export class Notices {
  private log: NoticeLog | undefined;
  /** Notices given before the logger exists (it comes with the app); written once it is attached. */
  private readonly waiting: Notice[] = [];

  constructor(private readonly options: NoticesOptions) {}

  /** The logger JSON notices are written to, from now on. */
  attach(log: NoticeLog): void {
    this.log = log;
    for (const notice of this.waiting.splice(0)) this.tell(notice);
  }

  tell(notice: Notice): void {
    if (this.options.terminal) {
      this.options.writeText(notice.text.map((line) => `${line}\n`).join(""));
      return;
    }
    if (!this.log) {
      this.waiting.push(notice);
      return;
    }
    this.log.info(notice.fields, notice.msg);
  }
}
