import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeOnPostgres } from "../helpers/dialects.js";
import { seedMember } from "../helpers/app.js";
import { brokenRows, LoadTally, nextLinkPath, serveWithSmtp, sleep, type ServedInstance } from "../helpers/chaos.js";
import { HttpClient } from "../helpers/http-client.js";
import type { Instance } from "../helpers/instance.js";
import { PgCluster } from "../helpers/pg-cluster.js";
import type { SmtpSink } from "../helpers/smtp-sink.js";
import type { Runtime } from "../../src/runtime.js";

/** How long PostgreSQL stays down during the restart. */
const DOWN_MS = 3_000;

describeOnPostgres("PostgreSQL restarted under load", () => {
  let cluster: PgCluster;
  let served: ServedInstance;
  let smtp: SmtpSink;
  let instance: Instance;
  let runtime: Runtime;

  beforeAll(async () => {
    cluster = await PgCluster.create("latchkey_chaos");
    served = await serveWithSmtp({
      DATABASE_URL: await cluster.createDatabase("latchkey"),
      LATCHKEY_DATA_DIR: mkdtempSync(join(tmpdir(), "latchkey-chaos-")),
    });
    ({ smtp, instance, runtime } = served);
  }, 120_000);

  afterAll(async () => {
    await served?.close();
    await cluster?.drop();
  });

  it("answers 503 (never a 500, never later than 10 s) while it is down, never exits, is normal within 5 s of its return, and leaves no half-written state", async () => {
    const users = await Promise.all(Array.from({ length: 4 }, () => seedMember(runtime)));
    const origin = instance.url;
    const tally = new LoadTally();
    let ip = 10;
    const browser = (): HttpClient => new HttpClient(`127.2.${Math.floor(ip / 250)}.${(ip++ % 250) + 2}`, origin);
    let stopAt = Number.POSITIVE_INFINITY;
    /** While PostgreSQL is away, 503 is the right answer; 500 never is. */
    const outage503 = [503];

    const signIns = users.slice(1).map(async (user) => {
      while (Date.now() < stopAt) {
        const client = browser();
        const before = smtp.links(user.email).length;
        const step = await tally.call(
          client,
          origin,
          "POST",
          "/api/v1/login",
          { json: { email: user.email, password: user.password } },
          outage503,
        );
        if (step?.status !== 200) {
          await sleep(100);
          continue;
        }
        const path = await nextLinkPath(smtp, user.email, before, 15_000);
        if (!path) continue;
        const answers = await Promise.all([1, 2].map(() => tally.call(client, origin, "GET", path, {}, outage503)));
        for (const answer of answers) tally.redeemed(`link ${path}`, answer);
      }
    });
    const checker = browser();
    const first = users[0]!;
    await tally.call(checker, origin, "POST", "/api/v1/login", { json: { email: first.email, password: first.password } });
    await tally.call(checker, origin, "GET", (await nextLinkPath(smtp, first.email, 0))!);
    let lastCheck = 0;
    const checks = (async () => {
      while (Date.now() < stopAt) {
        lastCheck = (await tally.call(checker, origin, "GET", "/api/v1/verify", {}, outage503))?.status ?? 0;
        await sleep(25);
      }
    })();

    await sleep(2_000);
    const winsBefore = tally.wins();
    await cluster.stop();
    await sleep(DOWN_MS);
    await cluster.start();
    const back = Date.now();
    while (lastCheck !== 200 && Date.now() - back < 10_000) await sleep(25);
    const backInMs = Date.now() - back;
    await sleep(3_000);
    stopAt = Date.now();
    await Promise.all([checks, ...signIns]);

    expect(tally.serverErrors).toEqual([]);
    expect(tally.statuses.get(503) ?? 0).toBeGreaterThan(0);
    expect(tally.slowestMs).toBeLessThan(10_000);
    expect(tally.dropped).toBe(0);
    expect(instance.alive).toBe(true);
    expect(backInMs).toBeLessThan(5_000);
    // Sign-ins went on after the restart.
    expect(tally.wins()).toBeGreaterThan(winsBefore);
    expect(tally.doubles()).toEqual([]);
    expect(await brokenRows(runtime.ctx.db)).toEqual([]);
  }, 180_000);
});
