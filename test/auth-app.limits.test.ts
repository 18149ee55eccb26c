import type { LightMyRequestResponse } from "fastify";
import { afterAll, beforeAll, expect, it } from "vitest";
import { defaultLimits } from "../src/config.js";
import { hashToken } from "../src/auth/tokens.js";
import { describeEachDialect } from "./helpers/dialects.js";
import { Browser, csrfFrom, seedMember, startTestApp, type TestApp } from "./helpers/app.js";
import {
  enableAuthApp,
  passwordStep,
  STEP_SECONDS,
  submitCode,
  submitRecoveryCode,
  totpCode,
  UNISSUED_RECOVERY_CODE,
  wrongCode,
} from "./helpers/auth-app.js";

const PER_CHALLENGE = defaultLimits.codeFailuresPerChallenge; // 5
const PER_USER = defaultLimits.codeFailuresPerUser; // 10
const LOCK = defaultLimits.codeLockSeconds; // 15 minutes
const CHALLENGE_COOKIE = "latchkey_challenge";

function expectLocked(response: LightMyRequestResponse, aboutSeconds: number): void {
  expect(response.statusCode).toBe(429);
  expect(response.json().error).toBe("too_many_attempts");
  const retryAfter = Number(response.headers["retry-after"]);
  expect(retryAfter).toBeGreaterThan(aboutSeconds - 10);
  expect(retryAfter).toBeLessThanOrEqual(aboutSeconds);
}

describeEachDialect("auth app guessing limits", (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(dialect);
  });
  afterAll(async () => {
    await t?.close();
  });

  /** A member with the auth app on, the clock moved past the confirming step. */
  async function appMember() {
    const member = await seedMember(t);
    const app = await enableAuthApp(t, member);
    t.clock.advanceSeconds(STEP_SECONDS);
    return { ...member, ...app };
  }

  async function challengeRow(browser: Browser) {
    const token = browser.cookies.get(CHALLENGE_COOKIE) as string;
    return t.ctx.db.selectFrom("challenges").selectAll().where("token_hash", "=", hashToken(token)).executeTakeFirstOrThrow();
  }

  async function sessionCount(userId: string): Promise<number> {
    return (await t.ctx.db.selectFrom("sessions").select("id").where("user_id", "=", userId).execute()).length;
  }

  function lockMails(email: string): string[] {
    return t.mail.sent.filter((m) => m.to === email && /sign-in paused/.test(m.subject)).map((m) => m.text);
  }

  /** `n` wrong app codes in one challenge; all but a final limit-reaching one must be plain wrong tries. */
  async function wrongTries(browser: Browser, secret: string, n: number): Promise<LightMyRequestResponse[]> {
    const out: LightMyRequestResponse[] = [];
    for (let i = 0; i < n; i++) out.push(await submitCode(browser, wrongCode(t, secret)));
    return out;
  }

  /** 10 consecutive failures over two challenges (5 + 5); returns the answer to the 10th. */
  async function lockOut(member: { email: string; password: string; secret: string }): Promise<LightMyRequestResponse> {
    const first = await wrongTries(await passwordStep(t, member), member.secret, PER_CHALLENGE);
    expect(first[PER_CHALLENGE - 1]?.json().error).toBe("challenge_expired");
    const second = await wrongTries(await passwordStep(t, member), member.secret, PER_USER - PER_CHALLENGE);
    for (const r of second.slice(0, -1)) expect(r.json().error).toBe("invalid_code");
    return second[second.length - 1] as LightMyRequestResponse;
  }

  it("ends the challenge after 5 wrong codes: the 5th answer says to sign in again, a 6th try fails even with the right code", async () => {
    const member = await appMember();
    const browser = await passwordStep(t, member);
    const challengeToken = browser.cookies.get(CHALLENGE_COOKIE) as string;
    expect(challengeToken).toBeTruthy();

    for (let i = 1; i < PER_CHALLENGE; i++) {
      const response = await submitCode(browser, wrongCode(t, member.secret));
      expect(response.statusCode).toBe(401);
      expect(response.json().error).toBe("invalid_code");
      expect(response.json().details).toEqual({ attemptsLeft: PER_CHALLENGE - i });
      expect(response.json().message).toContain(`try ${PER_CHALLENGE - i} more time`);
    }
    const fifth = await submitCode(browser, wrongCode(t, member.secret));
    expect(fifth.statusCode).toBe(401);
    expect(fifth.json().error).toBe("challenge_expired");
    expect(fifth.json().message).toMatch(/sign in again/i);
    expect(browser.cookies.has(CHALLENGE_COOKIE)).toBe(false);

    const row = await t.ctx.db
      .selectFrom("challenges")
      .selectAll()
      .where("token_hash", "=", hashToken(challengeToken))
      .executeTakeFirstOrThrow();
    expect(row.failed_attempts).toBe(PER_CHALLENGE);
    expect(row.consumed_at).not.toBeNull();

    // The 6th try, with the right code, on the old challenge cookie kept (e.g. by a script): still refused.
    browser.cookies.set(CHALLENGE_COOKIE, challengeToken);
    const sixth = await submitCode(browser, totpCode(t, member.secret));
    expect(sixth.statusCode).toBe(401);
    expect(sixth.json().error).toBe("challenge_expired");
    const recovery = await submitRecoveryCode(browser, member.codes[0]);
    expect(recovery.statusCode).toBe(401);
    expect(recovery.json().error).toBe("challenge_expired");
    expect(await sessionCount(member.userId)).toBe(1);

    // The password again starts a new challenge, and the right code works (5 failures do not lock the user).
    const again = await passwordStep(t, member);
    expect((await submitCode(again, totpCode(t, member.secret))).statusCode).toBe(200);
  });

  it("says so on the web page at the 5th wrong code", async () => {
    const member = await appMember();
    const browser = new Browser(t.app);
    await browser.signInWithPassword(member.email, member.password);
    let last: LightMyRequestResponse | undefined;
    for (let i = 0; i < PER_CHALLENGE; i++) {
      const page = await browser.get("/login/code");
      expect(page.statusCode).toBe(200);
      last = await browser.request("POST", "/login/code", { form: { _csrf: csrfFrom(page.body), code: wrongCode(t, member.secret) } });
    }
    expect(last?.statusCode).toBe(401);
    expect(last?.body).toMatch(/sign in again with your email and password/i);
    // The code page is gone: back to the password.
    const after = await browser.get("/login/code");
    expect(after.statusCode).toBe(303);
    expect(after.headers.location).toContain("/login");
  });

  it("locks code entry for 15 minutes after 10 consecutive failures, emails the person, then doubles the next lock", async () => {
    const member = await appMember();
    const tenth = await lockOut(member);
    expectLocked(tenth, LOCK);
    expect(tenth.json().message).toMatch(/paused for 15 minutes/);
    const mails = lockMails(member.email);
    expect(mails).toHaveLength(1);
    expect(mails[0]).toContain(`${PER_USER} wrong authentication or recovery codes in a row`);
    expect(mails[0]).toContain("paused for 15 minutes");
    const events = await t.ctx.db
      .selectFrom("audit_events")
      .select("detail")
      .where("user_id", "=", member.userId)
      .where("type", "=", "sign_in.code_entry_locked")
      .execute();
    expect(events.map((e) => JSON.parse(e.detail))).toEqual([{ lockSeconds: LOCK, failures: PER_USER }]);

    // During the lock the right password still gets a challenge (a lock tells nothing about the password)…
    t.clock.advanceSeconds(60);
    const during = await passwordStep(t, member);
    const wrongPassword = await new Browser(t.app).request("POST", "/api/v1/login", {
      json: { email: member.email, password: "not the password at all" },
    });
    expect(wrongPassword.statusCode).toBe(401);
    expect(wrongPassword.json().error).toBe("invalid_credentials");
    // …but a right code, or a recovery code, is refused.
    expectLocked(await submitCode(during, totpCode(t, member.secret)), LOCK - 60);
    expectLocked(await submitRecoveryCode(during, member.codes[0]), LOCK - 60);
    expect(await sessionCount(member.userId)).toBe(1);
    // Refusals during the lock do not use up the challenge.
    expect((await challengeRow(during)).failed_attempts).toBe(0);

    // A second before the end: still locked.
    t.clock.advanceSeconds(LOCK - 60 - 1);
    expectLocked(await submitCode(await passwordStep(t, member), totpCode(t, member.secret)), 1);

    // After 15 minutes the right code works.
    t.clock.advanceSeconds(1);
    const after = await passwordStep(t, member);
    const ok = await submitCode(after, totpCode(t, member.secret));
    expect(ok.statusCode).toBe(200);
    expect(await sessionCount(member.userId)).toBe(2);

    // A second lock lasts twice as long.
    t.clock.advanceSeconds(STEP_SECONDS);
    const again = await lockOut(member);
    expectLocked(again, 2 * LOCK);
    expect(again.json().message).toMatch(/paused for 30 minutes/);
    expect(lockMails(member.email)[1]).toContain("paused for 30 minutes");
    t.clock.advanceSeconds(LOCK);
    expectLocked(await submitCode(await passwordStep(t, member), totpCode(t, member.secret)), LOCK);
    t.clock.advanceSeconds(LOCK);
    expect((await submitCode(await passwordStep(t, member), totpCode(t, member.secret))).statusCode).toBe(200);
  });

  it("counts recovery codes and app codes together", async () => {
    const member = await appMember();
    const a = await passwordStep(t, member);
    for (let i = 0; i < 3; i++) expect((await submitCode(a, wrongCode(t, member.secret))).json().error).toBe("invalid_code");
    expect((await submitRecoveryCode(a, UNISSUED_RECOVERY_CODE)).json().error).toBe("invalid_code");
    // The 5th try on this challenge, a recovery code, ends it.
    const fifth = await submitRecoveryCode(a, "yyyyy-yyyyy-yyyyy");
    expect(fifth.statusCode).toBe(401);
    expect(fifth.json().error).toBe("challenge_expired");

    const b = await passwordStep(t, member);
    for (let i = 0; i < 4; i++) expect((await submitRecoveryCode(b, UNISSUED_RECOVERY_CODE)).json().error).toBe("invalid_code");
    expectLocked(await submitCode(b, wrongCode(t, member.secret)), LOCK);
    expect(lockMails(member.email)).toHaveLength(1);
    // Locked for both kinds.
    const c = await passwordStep(t, member);
    expectLocked(await submitRecoveryCode(c, member.codes[0]), LOCK);
    expectLocked(await submitCode(c, totpCode(t, member.secret)), LOCK);
    // The recovery code refused during the lock was not spent.
    t.clock.advanceSeconds(LOCK);
    const d = await passwordStep(t, member);
    const used = await submitRecoveryCode(d, member.codes[0]);
    expect(used.statusCode).toBe(200);
    expect(used.json().recoveryCodesRemaining).toBe(9);
  });

  it("does not count malformed codes (400 invalid_code_format)", async () => {
    const member = await appMember();
    const browser = await passwordStep(t, member);
    const malformed = ["abcdef", "12345", "1234567", "", "   ", "12 34 56", "١٢٣٤٥٦", "１２３４５６"];
    for (let round = 0; round < 2; round++) {
      for (const code of malformed) {
        const response = await submitCode(browser, code);
        expect(response.statusCode, JSON.stringify(code)).toBe(400);
        expect(response.json().error).toBe("invalid_code_format");
        expect(response.json().message).toMatch(/6 digits|6-digit/);
      }
      for (const code of ["abcde", "12345", "", "abcde-fghjk-mnpq", "uuuuu-uuuuu-uuuuu"]) {
        const response = await submitRecoveryCode(browser, code);
        expect(response.statusCode, JSON.stringify(code)).toBe(400);
        expect(response.json().error).toBe("invalid_code_format");
        expect(response.json().message).toMatch(/15 letters and digits/);
      }
    }
    // 26 malformed answers: nothing counted, on the challenge or for the user.
    expect((await challengeRow(browser)).failed_attempts).toBe(0);
    const counter = await t.ctx.db
      .selectFrom("attempt_counters")
      .select("count")
      .where("key", "=", `code:fail:${member.userId}`)
      .executeTakeFirst();
    expect(counter).toBeUndefined();
    // All five real tries are still there.
    for (let i = 1; i < PER_CHALLENGE; i++)
      expect((await submitCode(browser, wrongCode(t, member.secret))).json().details).toEqual({ attemptsLeft: PER_CHALLENGE - i });
    expect((await submitCode(browser, totpCode(t, member.secret))).statusCode).toBe(200);
  });

  it("a right code resets the run of consecutive failures", async () => {
    const member = await appMember();
    // 8 failures, then a right code.
    await wrongTries(await passwordStep(t, member), member.secret, 4);
    const b = await passwordStep(t, member);
    await wrongTries(b, member.secret, 4);
    expect((await submitCode(b, totpCode(t, member.secret))).statusCode).toBe(200);
    expect(
      await t.ctx.db.selectFrom("attempt_counters").select("count").where("key", "=", `code:fail:${member.userId}`).executeTakeFirst(),
    ).toBeUndefined();

    // 9 more failures do not lock (they would, had the earlier 8 still counted)…
    await wrongTries(await passwordStep(t, member), member.secret, 4);
    const d = await wrongTries(await passwordStep(t, member), member.secret, 5);
    expect(d.map((r) => r.statusCode)).toEqual([401, 401, 401, 401, 401]);
    expect(d[4]?.json().error).toBe("challenge_expired");
    expect(lockMails(member.email)).toHaveLength(0);
    // …the 10th does.
    const e = await passwordStep(t, member);
    expectLocked(await submitCode(e, wrongCode(t, member.secret)), LOCK);

    // A recovery code resets the run too.
    t.clock.advanceSeconds(LOCK);
    const f = await passwordStep(t, member);
    await wrongTries(f, member.secret, 4);
    expect((await submitRecoveryCode(f, member.codes[1])).statusCode).toBe(200);
    expect(
      await t.ctx.db.selectFrom("attempt_counters").select("count").where("key", "=", `code:fail:${member.userId}`).executeTakeFirst(),
    ).toBeUndefined();
  });
});

describeEachDialect("auth app guessing limits with Redis counters", (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(dialect, { redis: true });
  });
  afterAll(async () => {
    await t?.close();
  });

  it("locks code entry after 10 consecutive failures, and refuses a right code during the lock", async () => {
    const member = await seedMember(t);
    const { secret, codes } = await enableAuthApp(t, member);
    t.clock.advanceSeconds(STEP_SECONDS);
    const a = await passwordStep(t, member);
    for (let i = 0; i < PER_CHALLENGE; i++) await submitCode(a, wrongCode(t, secret));
    const b = await passwordStep(t, member);
    for (let i = 0; i < PER_USER - PER_CHALLENGE - 1; i++)
      expect((await submitCode(b, wrongCode(t, secret))).json().error).toBe("invalid_code");
    expectLocked(await submitCode(b, wrongCode(t, secret)), LOCK);
    expect(t.mail.sent.some((m) => m.to === member.email && /sign-in paused/.test(m.subject))).toBe(true);
    // The counters live in Redis, not the database.
    expect(await t.ctx.db.selectFrom("attempt_counters").select("key").where("key", "like", "code:%").execute()).toEqual([]);

    const c = await passwordStep(t, member);
    expectLocked(await submitCode(c, totpCode(t, secret)), LOCK);
    expectLocked(await submitRecoveryCode(c, codes[0]), LOCK);
    const sessions = await t.ctx.db.selectFrom("sessions").select("id").where("user_id", "=", member.userId).execute();
    expect(sessions).toHaveLength(1);
  });
});
