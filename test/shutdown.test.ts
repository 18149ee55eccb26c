import { randomInt, randomUUID } from "node:crypto";
import { connect, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { startServe, type ServeProcess } from "./helpers/serve-process.js";
import { TEST_SECRET_KEY } from "./helpers/app.js";
import { createTestDatabase, REDIS_TEST_URL, type TestDatabase } from "./helpers/databases.js";
import { describeOnPostgres } from "./helpers/dialects.js";

/** A client connection written to by hand, so a test controls exactly how much of a request the server has. */
interface RawClient {
  socket: Socket;
  /** Everything the server sent. */
  received(): string;
  /** Resolves when the server closed (or dropped) the connection. */
  closed: Promise<void>;
  /** Resolves once the server has sent a status line (bounded: rejects after `timeoutMs`). */
  answered(timeoutMs?: number): Promise<void>;
}

/**
 * This file's own loopback source address and email tag: the PostgreSQL variant counts its unknown-email sign-ins in
 * the shared test Redis, where the throttle's windows outlast a run; runs one after another must not add up to a 429.
 */
const RUN_ADDRESS = `127.${randomInt(1, 255)}.${randomInt(1, 255)}.${randomInt(1, 255)}`;
const RUN_TAG = randomUUID();

async function rawClient(port: number): Promise<RawClient> {
  const socket = connect({ port, host: "127.0.0.1", localAddress: RUN_ADDRESS });
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  let data = "";
  socket.on("data", (chunk: Buffer) => (data += chunk.toString()));
  // A dropped connection may be reset: that is what the tests expect of it, not an error.
  socket.on("error", () => undefined);
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  // The server's log line of an answer can reach the test before the answer's bytes do (two pipes, two events): a test
  // that reads the answer after that line waits for it here.
  const answered = async (timeoutMs = 5_000): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    while (!/^HTTP\/1\.1 \d{3} /.test(data)) {
      if (Date.now() > deadline) throw new Error(`no answer within ${timeoutMs} ms; received: ${JSON.stringify(data)}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  };
  return { socket, received: () => data, closed, answered };
}

/** A sign-in attempt (POST /api/v1/login) on a kept-alive connection, split where the test says. */
function signInRequest(port: number, requestId: string): { head: string; body: string } {
  const body = JSON.stringify({ email: `${requestId}-${RUN_TAG}@example.com`, password: "correct horse battery staple" });
  const head = [
    "POST /api/v1/login HTTP/1.1",
    `Host: 127.0.0.1:${port}`,
    "Connection: keep-alive",
    "Content-Type: application/json",
    `Content-Length: ${Buffer.byteLength(body)}`,
    `X-Request-Id: ${requestId}`,
    "",
    "",
  ].join("\r\n");
  return { head, body };
}

/** Milliseconds from `since` until the process exits, and its exit code. */
async function exitAfter(serve: ServeProcess, since: number): Promise<{ code: number | string; ms: number }> {
  const code = await serve.exited;
  return { code, ms: Date.now() - since };
}

const statusOf = (response: string): number => Number(/^HTTP\/1\.1 (\d{3})/.exec(response)?.[1]);

/**
 * Six sign-ins the server is reading (headers sent, half the body to come) when SIGTERM arrives; then the rest of each
 * body. Each must be answered in full (401: unknown emails) with `Connection: close`, and the process must exit 0 within
 * its 10 s bound right after the last answer: nothing waits for a keep-alive timeout or the deadline.
 */
async function sixSignInsInFlightThenSigterm(running: ServeProcess): Promise<void> {
  const clients = await Promise.all(
    Array.from({ length: 6 }, async (_, i) => {
      const client = await rawClient(running.port);
      const request = signInRequest(running.port, `inflight-${i}`);
      client.socket.write(request.head + request.body.slice(0, 10));
      return { client, rest: request.body.slice(10) };
    }),
  );
  for (let i = 0; i < 6; i++) await running.waitForLine((l) => l.reqId === `inflight-${i}` && l.msg === "incoming request", `request ${i}`);

  const signalled = Date.now();
  running.child.kill("SIGTERM");
  await running.waitForLine((l) => l.msg === "shutting down: finishing the requests in flight", "the shutdown line");
  for (const { client, rest } of clients) client.socket.write(rest);
  await Promise.all(clients.map(({ client }) => client.closed));
  const answered = Date.now();

  for (const { client } of clients) {
    const response = client.received();
    expect(statusOf(response), response).toBe(401);
    expect(response).toMatch(/\r\nconnection: close\r\n/i);
    expect(response).toContain('"error":"invalid_credentials"');
  }
  const { code, ms } = await exitAfter(running, signalled);
  expect(code).toBe(0);
  // Within the bound, and right after the last answer: nothing waited for a keep-alive timeout or the deadline
  // (the answers themselves may take seconds on a busy machine: six password hashes).
  expect(ms).toBeLessThan(10_000);
  expect(Date.now() - answered).toBeLessThan(2_000);
  expect(running.lines().some((l) => l.msg.startsWith("shutdown: dropped"))).toBe(false);
  expect(running.lines().at(-1)?.msg).toBe("stopped");
}

describe("graceful shutdown of `latchkey serve`", () => {
  let serve: ServeProcess | undefined;
  afterEach(async () => {
    await serve?.cleanup();
    serve = undefined;
  });

  it("SIGTERM with 6 sign-ins in flight: each is answered in full with Connection: close, then the process exits 0 at once", async () => {
    serve = await startServe({ LATCHKEY_SHUTDOWN_SECONDS: "10" });
    await sixSignInsInFlightThenSigterm(serve);
  });

  it("a request that arrives on an open connection during the drain is answered 503 service_unavailable with Connection: close", async () => {
    serve = await startServe({ LATCHKEY_SHUTDOWN_SECONDS: "10" });
    const running = serve;
    // One sign-in in flight keeps the drain going; another connection has sent only part of its request line.
    const inFlight = await rawClient(running.port);
    const held = signInRequest(running.port, "held");
    inFlight.socket.write(held.head + held.body.slice(0, 5));
    await running.waitForLine((l) => l.reqId === "held" && l.msg === "incoming request", "the held request");
    const late = await rawClient(running.port);
    late.socket.write("GET /api/v1/session HT");

    running.child.kill("SIGTERM");
    await running.waitForLine((l) => l.msg === "shutting down: finishing the requests in flight", "the shutdown line");
    late.socket.write(`TP/1.1\r\nHost: 127.0.0.1:${running.port}\r\nX-Request-Id: late\r\n\r\n`);
    await late.closed;
    const refused = late.received();
    expect(statusOf(refused), refused).toBe(503);
    expect(refused).toMatch(/\r\nconnection: close\r\n/i);
    expect(refused).toMatch(/\r\nx-request-id: late\r\n/i);
    expect(refused).toContain('"error":"service_unavailable"');

    inFlight.socket.write(held.body.slice(5));
    await inFlight.closed;
    expect(statusOf(inFlight.received())).toBe(401);
    expect((await running.exited) as number).toBe(0);
  });

  it("SIGTERM with idle keep-alive clients: their connections are closed and the process exits 0 within 2 s", async () => {
    serve = await startServe({ LATCHKEY_SHUTDOWN_SECONDS: "10" });
    const running = serve;
    const clients = await Promise.all(
      Array.from({ length: 5 }, async (_, i) => {
        const client = await rawClient(running.port);
        client.socket.write(
          // A page, not a probe: probes are not logged at info, and the test waits for the answer's log line.
          `GET /login HTTP/1.1\r\nHost: 127.0.0.1:${running.port}\r\nConnection: keep-alive\r\nX-Request-Id: idle-${i}\r\n\r\n`,
        );
        return client;
      }),
    );
    for (let i = 0; i < 5; i++) await running.waitForLine((l) => l.reqId === `idle-${i}` && l.msg === "request completed", `answer ${i}`);
    await Promise.all(clients.map((client) => client.answered()));
    for (const client of clients) expect(statusOf(client.received())).toBe(200);

    const signalled = Date.now();
    running.child.kill("SIGTERM");
    await Promise.all(clients.map((client) => client.closed));
    const { code, ms } = await exitAfter(running, signalled);
    expect(code).toBe(0);
    expect(ms).toBeLessThan(2_000);
  });

  it('a log reader that falls behind loses no line: each answered request\'s log line is written, and "stopped" last', async () => {
    serve = await startServe({ LATCHKEY_SHUTDOWN_SECONDS: "10" });
    const running = serve;
    const stdout = running.child.stdout;
    if (!stdout) throw new Error("no stdout pipe");
    // The reader stops reading: once the pipe's buffer (64 KiB on Linux) is full, the server's log writes have to wait.
    // 8 clients asking for pages one after another soon write more request lines than that.
    stdout.pause();
    const before = running.stdout().length;
    let signalled = false;
    const answered: string[] = [];
    const clients = Array.from({ length: 8 }, async (_, client) => {
      for (let i = 0; !signalled && i < 250; i++) {
        const id = `slow-reader-${client}-${i}`;
        // A request sent on a connection the drain is closing may get no answer: only answered ones must be logged.
        const response = await fetch(`${running.origin}/login`, { headers: { "X-Request-Id": id } }).catch(() => undefined);
        if (!response) continue;
        await response.arrayBuffer();
        // A request that reached the drain is refused 503; it is logged all the same.
        expect([200, 503]).toContain(response.status);
        answered.push(id);
      }
    });
    // Until the server is held up by the full pipe (no answer for 300 ms), or has answered 200 requests: on a busy
    // machine the pipe may take longer than usual to fill.
    const deadline = Date.now() + 20_000;
    while (answered.length < 200 && Date.now() < deadline) {
      const seen = answered.length;
      await new Promise((resolve) => setTimeout(resolve, 300));
      if (answered.length === seen && seen > 0) break;
    }
    signalled = true;
    running.child.kill("SIGTERM");
    await new Promise((resolve) => setTimeout(resolve, 500));
    stdout.resume();
    await Promise.all(clients);
    expect(await running.exited).toBe(0);

    const lines = running.lines();
    // The reader was far behind: most of a full pipe was written while it did not read.
    expect(running.stdout().length - before).toBeGreaterThan(48 * 1024);
    const logged = new Set(lines.filter((l) => l.msg === "request completed").map((l) => l.reqId));
    expect(answered.filter((id) => !logged.has(id))).toEqual([]);
    expect(lines.at(-1)?.msg).toBe("stopped");
  });

  it("a half-sent request (half the headers, then silence) cannot hold it: exit 0 within LATCHKEY_SHUTDOWN_SECONDS=2", async () => {
    serve = await startServe({ LATCHKEY_SHUTDOWN_SECONDS: "2" });
    const running = serve;
    const halfHeaders = await rawClient(running.port);
    halfHeaders.socket.write(`POST /api/v1/login HTTP/1.1\r\nHost: 127.0.0.1:${running.port}\r\nContent-Ty`);
    // And a request whose body stalls half-way.
    const halfBody = await rawClient(running.port);
    const stalled = signInRequest(running.port, "stalled");
    halfBody.socket.write(stalled.head + stalled.body.slice(0, 8));
    await running.waitForLine((l) => l.reqId === "stalled" && l.msg === "incoming request", "the stalled request");

    const signalled = Date.now();
    running.child.kill("SIGTERM");
    const { code, ms } = await exitAfter(running, signalled);
    expect(code, running.stdout()).toBe(0);
    // The bound is the process's own, from the signal; an allowance for the signal's delivery and seeing the exit.
    expect(ms).toBeLessThan(2_000 + 500);
    await Promise.all([halfHeaders.closed, halfBody.closed]);
    expect(running.lines().find((l) => l.msg.startsWith("shutdown: dropped"))?.["dropped"]).toBe(2);
    expect(running.lines().at(-1)?.msg).toBe("stopped");
  });

  it("a second signal during the drain exits at once", async () => {
    serve = await startServe({ LATCHKEY_SHUTDOWN_SECONDS: "30" });
    const running = serve;
    const stalled = await rawClient(running.port);
    stalled.socket.write(`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${running.port}\r\n`);

    running.child.kill("SIGTERM");
    await running.waitForLine((l) => l.msg === "shutting down: finishing the requests in flight", "the shutdown line");
    const second = Date.now();
    running.child.kill("SIGINT");
    const { code, ms } = await exitAfter(running, second);
    // 128 + SIGINT's number, as a shell reports it.
    expect(code).toBe(130);
    expect(ms).toBeLessThan(1_000);
    expect(running.lines().some((l) => l.msg === "second signal: exiting at once")).toBe(true);
  });
});

describeOnPostgres("graceful shutdown of `latchkey serve` on PostgreSQL and Redis", () => {
  let serve: ServeProcess | undefined;
  let database: TestDatabase | undefined;
  afterEach(async () => {
    await serve?.cleanup();
    await database?.drop();
    serve = undefined;
    database = undefined;
  });

  it("SIGTERM with 6 sign-ins in flight: each is answered, the pool and Redis close, the process exits 0 at once", async () => {
    database = await createTestDatabase("postgres");
    serve = await startServe({
      LATCHKEY_SHUTDOWN_SECONDS: "10",
      DATABASE_URL: database.databaseUrl ?? "",
      LATCHKEY_SECRET_KEY: TEST_SECRET_KEY,
      REDIS_URL: REDIS_TEST_URL,
    });
    await sixSignInsInFlightThenSigterm(serve);
  });
});
