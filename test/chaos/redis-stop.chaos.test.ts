import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeEachDialect } from "../helpers/dialects.js";
import { seedMember } from "../helpers/app.js";
import { LoadTally, nextLinkPath, serveWithSmtp, sleep, type ServedInstance } from "../helpers/chaos.js";
import { createTestDatabase, type TestDatabase } from "../helpers/databases.js";
import { HttpClient } from "../helpers/http-client.js";
import type { Instance } from "../helpers/instance.js";
import { startOwnRedis, type OwnRedis } from "../helpers/redis-server.js";
import type { SmtpSink } from "../helpers/smtp-sink.js";
import type { Runtime } from "../../src/runtime.js";

describeEachDialect("Redis stopped under load", (dialect) => {
  let database: TestDatabase;
  let redis: OwnRedis;
  let served: ServedInstance;
  let smtp: SmtpSink;
  let instance: Instance;
  let runtime: Runtime;

  beforeAll(async () => {
    database = await createTestDatabase(dialect);
    redis = await startOwnRedis();
    served = await serveWithSmtp({
      ...(database.databaseUrl ? { DATABASE_URL: database.databaseUrl } : {}),
      REDIS_URL: redis.url,
      LATCHKEY_DATA_DIR: database.databaseUrl ? mkdtempSync(join(tmpdir(), "latchkey-chaos-")) : database.dataDir,
    });
    ({ smtp, instance, runtime } = served);
  }, 120_000);

  afterAll(async () => {
    await served?.close();
    await redis?.stop();
    await database?.drop();
  });

  it("password attempts fail closed (503, never an unthrottled attempt), session checks stay 200 throughout, and sign-in is normal within 5 s of Redis's return", async () => {
    const users = await Promise.all(Array.from({ length: 4 }, () => seedMember(runtime)));
    const origin = instance.url;
    const tally = new LoadTally();
    let ip = 10;
    const browser = (): HttpClient => new HttpClient(`127.3.${Math.floor(ip / 250)}.${(ip++ % 250) + 2}`, origin);
    /** From when Redis was surely gone (its process had exited) until just before it was started again. */
    let downFrom = Number.POSITIVE_INFINITY;
    let downUntil = Number.POSITIVE_INFINITY;
    let stopAt = Number.POSITIVE_INFINITY;
    const attemptsWhileDown: number[] = [];
    let lastStep = 0;

    const checker = browser();
    const first = users[0]!;
    await tally.call(checker, origin, "POST", "/api/v1/login", { json: { email: first.email, password: first.password } });
    await tally.call(checker, origin, "GET", (await nextLinkPath(smtp, first.email, 0))!);
    const checkStatuses: number[] = [];
    const checks = (async () => {
      while (Date.now() < stopAt) {
        checkStatuses.push((await tally.call(checker, origin, "GET", "/api/v1/verify"))?.status ?? 0);
        await sleep(25);
      }
    })();
    const signIns = users.slice(1).map(async (user) => {
      while (Date.now() < stopAt) {
        const client = browser();
        const sentAt = Date.now();
        const step = await tally.call(
          client,
          origin,
          "POST",
          "/api/v1/login",
          { json: { email: user.email, password: user.password } },
          [503],
        );
        lastStep = step?.status ?? 0;
        if (step && sentAt >= downFrom && Date.now() <= downUntil) attemptsWhileDown.push(step.status);
        await sleep(50);
      }
    });

    await sleep(1_500);
    await redis.stop();
    downFrom = Date.now();
    await sleep(3_000);
    downUntil = Date.now();
    await redis.start();
    const back = Date.now();
    while (lastStep !== 200 && Date.now() - back < 10_000) await sleep(25);
    const backInMs = Date.now() - back;
    await sleep(1_000);
    stopAt = Date.now();
    await Promise.all([checks, ...signIns]);

    expect(tally.serverErrors).toEqual([]);
    // While Redis was away, no password attempt went through uncounted.
    expect(attemptsWhileDown.filter((status) => status !== 503)).toEqual([]);
    expect(attemptsWhileDown.filter((status) => status === 503).length).toBeGreaterThan(5);
    expect(checkStatuses.filter((status) => status !== 200)).toEqual([]);
    expect(backInMs).toBeLessThan(5_000);
    expect(instance.alive).toBe(true);
  }, 180_000);
});
