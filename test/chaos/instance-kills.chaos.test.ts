import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeOnPostgres } from "../helpers/dialects.js";
import { seedMember, startTestApp, TEST_SECRET_KEY, type TestApp } from "../helpers/app.js";
import { enableAuthApp } from "../helpers/auth-app.js";
import { brokenRows, LoadTally, nextLinkPath, sleep } from "../helpers/chaos.js";
import { HttpClient } from "../helpers/http-client.js";
import { Instance } from "../helpers/instance.js";
import { freePorts } from "../helpers/ports.js";
import { SmtpSink } from "../helpers/smtp-sink.js";
import { createInvitation } from "../../src/team/invitations.js";

/** How many times instance B is SIGKILLed and started again (issue 11: 20). */
const KILLS = Number(process.env["CHAOS_KILLS"] ?? 20);
/** Progress lines on stderr with CHAOS_VERBOSE=1 (how long each restart took, what the workers did so far). */
const verbose = process.env["CHAOS_VERBOSE"] === "1";
const EMAIL_LINK_USERS = 6;
const AUTH_APP_USERS = 3;

describeOnPostgres("two instances on one PostgreSQL, one SIGKILLed 20 times under mixed load", () => {
  let t: TestApp;
  let smtp: SmtpSink;
  let a: Instance;
  let b: Instance;
  const tally = new LoadTally();
  const linkRequests = new Map<string, number>();
  let emailUsers: Array<{ userId: string; accountId: string; email: string; password: string }>;
  const appUsers: Array<{ email: string; password: string; codes: string[] }> = [];
  let admin: { userId: string; accountId: string };

  beforeAll(async () => {
    smtp = new SmtpSink();
    await smtp.start();
    t = await startTestApp("postgres");
    // Everyone is set up through the in-process app before the instances start: their mail senders would otherwise
    // claim the in-process app's queued sign-in links and deliver them to the SMTP sink instead of the test's mailbox.
    emailUsers = await Promise.all(Array.from({ length: EMAIL_LINK_USERS }, () => seedMember(t)));
    for (let i = 0; i < AUTH_APP_USERS; i++) {
      const member = await seedMember(t);
      appUsers.push({ ...member, codes: (await enableAuthApp(t, member)).codes });
    }
    admin = await seedMember(t, { role: "admin" });
    const [portA, portB] = (await freePorts(2)) as [number, number];
    const env = {
      DATABASE_URL: t.config.databaseUrl!,
      LATCHKEY_SECRET_KEY: TEST_SECRET_KEY,
      SMTP_URL: `smtp://127.0.0.1:${smtp.port}`,
      LATCHKEY_PUBLIC_URL: `http://127.0.0.1:${portA}`,
      LATCHKEY_DATA_DIR: mkdtempSync(join(tmpdir(), "latchkey-chaos-")),
    };
    a = new Instance(portA, env);
    b = new Instance(portB, env);
    await Promise.all([a.start(), b.start()]);
  }, 120_000);

  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await t?.close();
    await smtp?.stop();
  });

  it("no link, recovery code or invitation is redeemed twice, no row is orphaned, every answered request is below 500, and every link asked for is delivered", async () => {
    const origin = a.url;
    let killsDone = 0;
    let ip = 10;
    const browser = (): HttpClient => new HttpClient(`127.0.${Math.floor(ip / 250)}.${(ip++ % 250) + 2}`, origin);
    const pick = (): string => (b.ready && Math.random() < 0.5 ? b.url : a.url);

    const emailLinkWorker = async (user: { email: string; password: string }): Promise<void> => {
      while (killsDone < KILLS) {
        const client = browser();
        const before = smtp.links(user.email).length;
        const step = await tally.call(client, pick(), "POST", "/api/v1/login", { json: { email: user.email, password: user.password } });
        if (step?.status !== 200) {
          await sleep(100);
          continue;
        }
        linkRequests.set(user.email, (linkRequests.get(user.email) ?? 0) + 1);
        const path = await nextLinkPath(smtp, user.email, before);
        if (!path) continue;
        // The same link, in the same browser, on both instances at once: one may win.
        const answers = await Promise.all([tally.call(client, a.url, "GET", path), tally.call(client, pick(), "GET", path)]);
        for (const answer of answers) tally.redeemed(`link ${path}`, answer);
      }
    };

    const recoveryCodeWorker = async (user: { email: string; password: string; codes: string[] }): Promise<void> => {
      for (const code of user.codes) {
        if (killsDone >= KILLS) return;
        // Two browsers past the password step, the same code on both instances at once.
        const browsers = [browser(), browser()];
        const login = { json: { email: user.email, password: user.password } };
        const steps = await Promise.all(browsers.map((c) => tally.call(c, pick(), "POST", "/api/v1/login", login)));
        if (steps.some((s) => s?.status !== 200)) continue;
        const answers = await Promise.all(
          browsers.map((c, i) => tally.call(c, i === 0 ? a.url : pick(), "POST", "/api/v1/login/recovery-code", { json: { code } })),
        );
        for (const answer of answers) tally.redeemed(`code ${code}`, answer);
        await sleep(200);
      }
    };

    const invitationWorker = async (): Promise<void> => {
      let n = 0;
      while (killsDone < KILLS) {
        const email = `invitee-${n++}-${Date.now()}@example.com`;
        const made = await createInvitation(t.ctx, { accountId: admin.accountId, email, role: "member", invitedByUserId: admin.userId });
        if (!made.ok) throw new Error(made.message);
        const path = new URL(made.value.url).pathname;
        const browsers = [browser(), browser()];
        const pages = await Promise.all(browsers.map((c) => tally.call(c, pick(), "GET", path)));
        const answers = await Promise.all(
          browsers.map((c, i) => {
            const csrf = /name="_csrf" value="([^"]+)"/.exec(pages[i]?.body ?? "")?.[1];
            const form = { _csrf: csrf ?? "", name: "New Person", password: "a long enough passphrase" };
            return csrf ? tally.call(c, i === 0 ? a.url : pick(), "POST", path, { form }) : undefined;
          }),
        );
        for (const answer of answers) tally.redeemed(`invitation ${email}`, answer);
        await sleep(150);
      }
    };

    const sessionCheckWorker = async (): Promise<void> => {
      const user = emailUsers[0]!;
      const client = browser();
      await tally.call(client, a.url, "POST", "/api/v1/login", { json: { email: user.email, password: user.password } });
      const path = await nextLinkPath(smtp, user.email, 0);
      if (path) await tally.call(client, a.url, "GET", path);
      while (killsDone < KILLS) {
        await tally.call(client, pick(), "GET", "/api/v1/verify");
        await sleep(20);
      }
    };

    const killer = async (): Promise<void> => {
      while (killsDone < KILLS) {
        await sleep(300 + Math.random() * 500);
        await b.stop("SIGKILL");
        await sleep(100);
        const restarting = Date.now();
        await b.start();
        killsDone += 1;
        if (verbose)
          process.stderr.write(
            `kill ${killsDone}: restart ${Date.now() - restarting} ms; answered ${tally.answered}, dropped ${tally.dropped}, won ${tally.wins()}\n`,
          );
      }
    };

    await Promise.all([
      killer(),
      sessionCheckWorker(),
      invitationWorker(),
      ...emailUsers.slice(1).map((user) => emailLinkWorker(user)),
      ...appUsers.map((user) => recoveryCodeWorker(user)),
    ]);

    expect(tally.doubles()).toEqual([]);
    // The run did real work on both sides of the kills.
    expect(tally.wins()).toBeGreaterThan(KILLS);
    expect(tally.dropped).toBeGreaterThan(0);
    expect(tally.serverErrors).toEqual([]);

    // Every link asked for and acknowledged (200) reaches the mailbox: nothing was lost with a killed instance. An
    // acknowledged link is queued (committed with the link); one that the killed instance had claimed mid-send is
    // taken over by the surviving one when the claim's lease runs out, and its next look finds it.
    const { mailClaimLeaseSeconds, mailPollIntervalMs } = t.config.limits;
    const deadline = Date.now() + mailClaimLeaseSeconds * 1000 + 2 * mailPollIntervalMs + 5_000;
    const undelivered = (): Array<[string, number, number]> =>
      [...linkRequests]
        .filter(([email, count]) => smtp.to(email).length < count)
        .map(([email, count]) => [email, count, smtp.to(email).length]);
    while (undelivered().length > 0 && Date.now() < deadline) await sleep(250);
    expect(undelivered()).toEqual([]);

    expect(await brokenRows(t.ctx.db)).toEqual([]);
    const usedCodes = await t.ctx.db
      .selectFrom("recovery_codes")
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .where("used_at", "is not", null)
      .executeTakeFirstOrThrow();
    // A code marked used by a request whose instance died before answering counts as used, never as two sign-ins.
    expect(Number(usedCodes.n)).toBeGreaterThanOrEqual(tally.wins("code "));
  }, 300_000);
});
