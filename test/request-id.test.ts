import type { FastifyInstance, InjectOptions } from "fastify";
import { afterEach, describe, expect, it } from "vitest";
import { loadConfig } from "../src/config.js";
import { openRuntime, type Runtime } from "../src/runtime.js";
import { buildApp } from "../src/server.js";
import { TestClock } from "./helpers/clock.js";
import { createTestDatabase, type TestDatabase } from "./helpers/databases.js";
import { deliverMailBeforeAnswer, MemoryMailer, seedMember, signedInBrowser, TEST_SECRET_KEY } from "./helpers/app.js";

interface Line {
  level: number;
  msg: string;
  reqId?: string;
}

const opened: Array<{ app: FastifyInstance; runtime: Runtime; database: TestDatabase }> = [];
afterEach(async () => {
  for (const { app, runtime, database } of opened.splice(0)) {
    await app.close();
    await runtime.close().catch(() => undefined);
    await database.drop();
  }
});

/** A real app (SQLite) logging at `level` into an array. */
async function loggedApp(level: string): Promise<{ app: FastifyInstance; runtime: Runtime; mail: MemoryMailer; lines: Line[] }> {
  const database = await createTestDatabase("sqlite");
  const config = loadConfig({ LATCHKEY_DATA_DIR: database.dataDir, LATCHKEY_SECRET_KEY: TEST_SECRET_KEY, LOG_LEVEL: level });
  const mail = new MemoryMailer();
  const runtime = await openRuntime(config, { clock: new TestClock(), mailer: mail, migrate: true });
  const lines: Line[] = [];
  const app = await buildApp(runtime.ctx, { logStream: { write: (line: string) => void lines.push(JSON.parse(line) as Line) } });
  deliverMailBeforeAnswer(app, runtime.mailSender);
  await app.ready();
  opened.push({ app, runtime, database });
  return { app, runtime, mail, lines };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe("request ids", () => {
  it("a well-formed incoming X-Request-Id is kept: echoed in the answer and in every log line of the request", async () => {
    const { app, lines } = await loggedApp("info");
    for (const id of ["3f2b8c1e-5d6a-4b7c-9e0f-1a2b3c4d5e6f", "0123456789abcdef0123456789abcdef", "01HZX3J8K9.req:1/a+b=@lb-2"]) {
      lines.splice(0);
      const response = await app.inject({ method: "GET", url: "/login", headers: { "x-request-id": id } });
      expect(response.statusCode).toBe(200);
      expect(response.headers["x-request-id"]).toBe(id);
      expect(lines.map((l) => l.msg)).toEqual(["incoming request", "request completed"]);
      for (const line of lines) expect(line.reqId).toBe(id);
    }
  });

  it.each([
    ["empty", ""],
    ["with a space", "abc def"],
    ["with a quote", 'abc"def'],
    ["with a control character", "abc\u0001def"],
    ["two ids joined", "abc, def"],
    ["longer than 128 characters", "a".repeat(129)],
    ["not ASCII", "abcé"],
  ])("an incoming X-Request-Id that is %s is replaced by a generated one", async (_label, given) => {
    const { app, lines } = await loggedApp("info");
    const response = await app.inject({ method: "GET", url: "/login", headers: { "x-request-id": given } });
    expect(response.statusCode).toBe(200);
    const id = String(response.headers["x-request-id"]);
    expect(id).toMatch(UUID);
    expect(lines.every((l) => l.reqId === id)).toBe(true);
  });

  it("without one, each request gets its own generated id, different every time", async () => {
    const { app } = await loggedApp("silent");
    const ids = await Promise.all(
      Array.from({ length: 5 }, async () => String((await app.inject({ method: "GET", url: "/healthz" })).headers["x-request-id"])),
    );
    for (const id of ids) expect(id).toMatch(UUID);
    expect(new Set(ids).size).toBe(5);
  });

  it("refusals, redirects, 404s, 405s, router refusals and errors carry it too, and an error's log line has it", async () => {
    const { app, runtime, mail, lines } = await loggedApp("debug");
    const browser = await signedInBrowser({ app, mail }, await seedMember({ ctx: runtime.ctx }));
    const kinds: Array<[string, InjectOptions]> = [
      ["redirect", { method: "GET", url: "/settings" }],
      ["api 401", { method: "GET", url: "/api/v1/session" }],
      ["forward auth 401 (debug lines)", { method: "GET", url: "/api/v1/verify" }],
      ["404", { method: "GET", url: "/no-such-page" }],
      ["405", { method: "DELETE", url: "/login" }],
      ["router refusal", { method: "GET", url: `/invite/${"x".repeat(300)}` }],
      ["bad JSON", { method: "POST", url: "/api/v1/login", headers: { "content-type": "application/json" }, payload: "{" }],
    ];
    for (const [kind, request] of kinds) {
      lines.splice(0);
      const id = `kind-${kind.replace(/\W+/g, "-")}`;
      const response = await app.inject({ ...request, headers: { ...request.headers, "x-request-id": id } });
      expect(response.headers["x-request-id"], kind).toBe(id);
      expect(lines.length, kind).toBeGreaterThan(0);
      for (const line of lines) expect(line.reqId, `${kind}: ${line.msg}`).toBe(id);
    }
    // A 5xx: the database goes away under the running app; the error line names the request.
    lines.splice(0);
    await runtime.store.close();
    const failed = await app.inject({
      method: "GET",
      url: "/api/v1/verify",
      headers: { "x-request-id": "fails-1", cookie: browser.cookieHeader() },
    });
    expect(failed.statusCode).toBe(500);
    expect(failed.headers["x-request-id"]).toBe("fails-1");
    const errors = lines.filter((l) => l.level >= 50);
    expect(errors.map((l) => l.msg)).toEqual(["unhandled error"]);
    expect(errors[0]?.reqId).toBe("fails-1");
  });
});
