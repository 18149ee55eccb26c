import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Notices, type NoticeFields } from "../src/notices.js";
import { csrfFrom } from "./helpers/app.js";
import { freePort } from "./helpers/ports.js";
import { CLI_ARGS, jsonLines, startServe, type ServeProcess } from "./helpers/serve-process.js";

function recorder(terminal: boolean): { notices: Notices; text: string[]; logged: Array<[NoticeFields, string]> } {
  const text: string[] = [];
  const logged: Array<[NoticeFields, string]> = [];
  const notices = new Notices({ terminal, writeText: (t) => void text.push(t) });
  notices.attach({ info: (fields, msg) => void logged.push([fields, msg]) });
  return { notices, text, logged };
}

const SETUP = {
  msg: "first-run setup link",
  fields: { setupUrl: "http://localhost:3000/setup/abc" },
  text: ["", "No account exists yet. Open this one-time link:", "  http://localhost:3000/setup/abc", ""],
};

describe("notices (the setup link, where mail goes, outbox mail)", () => {
  it("at a terminal: plain lines on stderr, no log line", () => {
    const { notices, text, logged } = recorder(true);
    notices.tell(SETUP);
    expect(text).toEqual(["\nNo account exists yet. Open this one-time link:\n  http://localhost:3000/setup/abc\n\n"]);
    expect(logged).toEqual([]);
  });

  it("elsewhere: one log line with the values as fields, no text", () => {
    const { notices, text, logged } = recorder(false);
    notices.tell(SETUP);
    expect(logged).toEqual([[{ setupUrl: "http://localhost:3000/setup/abc" }, "first-run setup link"]]);
    expect(text).toEqual([]);
  });

  it("a notice told before the logger is attached is logged once it is, not lost", () => {
    const logged: string[] = [];
    const notices = new Notices({ terminal: false, writeText: () => undefined });
    notices.tell(SETUP);
    expect(logged).toEqual([]);
    notices.attach({ info: (_fields, msg) => void logged.push(msg) });
    expect(logged).toEqual(["first-run setup link"]);
  });
});

describe("`latchkey serve` with stdout and stderr not a terminal (systemd, a container, a pipe)", () => {
  let serve: ServeProcess | undefined;
  afterEach(async () => {
    await serve?.cleanup();
    serve = undefined;
  });

  it("writes only JSON lines, on stdout: the URL, where mail goes, the setup link and each outbox mail's link as fields", async () => {
    serve = await startServe();
    const { origin } = serve;
    const setupUrl = (await serve.waitForLine((l) => l.msg === "first-run setup link", "the setup link"))["setupUrl"];
    expect(setupUrl).toMatch(new RegExp(`^${origin}/setup/[A-Za-z0-9_-]{43}$`));
    expect(serve.lines().find((l) => l.msg === "Latchkey is running")).toMatchObject({
      level: 30,
      url: origin,
      listen: `127.0.0.1:${serve.port}`,
      database: `SQLite in ${serve.dataDir}`,
    });
    expect(serve.lines().find((l) => l.msg === "mail goes to the outbox")).toMatchObject({
      outboxDir: join(serve.dataDir, "outbox"),
      devMailUrl: `${origin}/dev/mail`,
    });

    // The first admin, through the setup link; then a sign-in, whose email goes to the outbox.
    const page = await fetch(String(setupUrl));
    const cookie = page.headers
      .getSetCookie()
      .map((c) => c.split(";")[0])
      .join("; ");
    const created = await fetch(String(setupUrl), {
      method: "POST",
      redirect: "manual",
      headers: { cookie, origin, "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        _csrf: csrfFrom(await page.text()),
        accountName: "Acme",
        name: "Ada",
        email: "ada@example.com",
        password: "first admin passphrase",
      }),
    });
    expect(created.status).toBe(303);
    const signIn = await fetch(`${origin}/api/v1/login`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-request-id": "sign-in-1" },
      body: JSON.stringify({ email: "ada@example.com", password: "first admin passphrase" }),
    });
    expect(signIn.status).toBe(200);
    const mail = await serve.waitForLine((l) => l.msg === "mail written to the outbox", "the outbox mail line");
    expect(mail).toMatchObject({ level: 30, to: "ada@example.com" });
    expect(mail["subject"]).toEqual(expect.any(String));
    expect(mail["link"]).toMatch(new RegExp(`^${origin}/login/email/[A-Za-z0-9_-]{43}$`));
    expect(existsSync(String(mail["file"]))).toBe(true);

    // One format: every stdout line parsed as JSON (jsonLines throws otherwise); nothing on stderr.
    expect(jsonLines(serve.stdout()).length).toBeGreaterThan(5);
    expect(serve.stderr()).toBe("");
  });
});

/** `script` (util-linux) runs a command on a pseudo-terminal: how an operator's terminal looks to the server. */
function scriptAvailable(): boolean {
  try {
    execFileSync("script", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    if (process.env["CI"]) throw new Error("`script` (util-linux, Debian's bsdutils) is required in CI for the terminal test");
    console.warn("`script` not found: skipping the terminal test of the notices.");
    return false;
  }
}

describe("`latchkey serve` at a terminal", () => {
  it("prints the notices as plain lines on stderr (the terminal) and keeps them out of the JSON log on stdout", async (context) => {
    if (!scriptAvailable()) return context.skip();
    const dataDir = mkdtempSync(join(tmpdir(), "latchkey-tty-"));
    const port = await freePort();
    const logFile = join(dataDir, "stdout.log");
    const command = [process.execPath, ...CLI_ARGS, "serve"].map((part) => `'${part}'`).join(" ");
    // stderr stays on the pseudo-terminal; stdout (the JSON log) goes to a file.
    const child = spawn("script", ["-qfec", `${command} >'${logFile}'`, "/dev/null"], {
      env: {
        PATH: process.env["PATH"] ?? "",
        HOME: process.env["HOME"] ?? "",
        TERM: "dumb",
        PORT: String(port),
        LATCHKEY_DATA_DIR: dataDir,
        LOG_LEVEL: "info",
      },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let terminal = "";
    child.stdout.on("data", (chunk: Buffer) => (terminal += chunk.toString()));
    try {
      const deadline = Date.now() + 40_000;
      while (!/\/setup\/[A-Za-z0-9_-]{43}/.test(terminal) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
      const shown = terminal.replace(/\r\n/g, "\n");
      expect(shown).toContain(`Latchkey is running at http://localhost:${port} (listening on 127.0.0.1:${port}, SQLite in ${dataDir}).`);
      expect(shown).toContain(`Mail goes to ${join(dataDir, "outbox")} — read it at http://localhost:${port}/dev/mail.`);
      expect(shown).toMatch(
        new RegExp(
          `No account exists yet\\. Open this one-time link to create the first account and its admin:\\n  http://localhost:${port}/setup/[A-Za-z0-9_-]{43}\\n`,
        ),
      );
      // The terminal shows no JSON; the log file has no notice.
      expect(shown).not.toContain('"msg"');
      const log = jsonLines(readFileSync(logFile, "utf8"));
      expect(log.length).toBeGreaterThan(0);
      expect(log.some((l) => ["Latchkey is running", "first-run setup link", "mail goes to the outbox"].includes(l.msg))).toBe(false);
    } finally {
      // Ctrl-C at the terminal: SIGINT to the server, which stops gracefully.
      child.stdin.write("\x03");
      const exited = await Promise.race([
        new Promise((resolve) => child.once("exit", () => resolve(true))),
        new Promise((resolve) => setTimeout(() => resolve(false), 15_000)),
      ]);
      if (!exited) child.kill("SIGKILL");
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
