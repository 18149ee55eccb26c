import type { LightMyRequestResponse } from "fastify";
import { afterAll, beforeAll, expect, it } from "vitest";
import { defaultLimits } from "../src/config.js";
import { hashToken } from "../src/auth/tokens.js";
import { describeEachDialect } from "./helpers/dialects.js";
import { seedMember, startTestApp, type Browser, type TestApp } from "./helpers/app.js";
import { enableAuthApp, passwordStep, STEP_SECONDS, submitCode, submitRecoveryCode, totpCode, wrongCode } from "./helpers/auth-app.js";

const PARALLEL = 20;

describeEachDialect("auth app redemption races", (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(dialect);
  });
  afterAll(async () => {
    await t?.close();
  });

  async function sessionCount(userId: string): Promise<number> {
    return (await t.ctx.db.selectFrom("sessions").select("id").where("user_id", "=", userId).execute()).length;
  }

  /** `n` challenges, one per browser, each from its own password step (in turn, so none is throttled). */
  async function challenges(member: { email: string; password: string }, n: number): Promise<Browser[]> {
    const browsers: Browser[] = [];
    for (let i = 0; i < n; i++) browsers.push(await passwordStep(t, member));
    return browsers;
  }

  function tally(responses: LightMyRequestResponse[]): Record<number, number> {
    const out: Record<number, number> = {};
    for (const r of responses) out[r.statusCode] = (out[r.statusCode] ?? 0) + 1;
    return out;
  }

  function expectNoServerErrors(responses: LightMyRequestResponse[]): void {
    for (const r of responses) {
      expect(r.statusCode, r.body).toBeLessThan(500);
      if (r.statusCode !== 200) expect(["invalid_code", "code_reused", "too_many_attempts", "challenge_expired"]).toContain(r.json().error);
    }
  }

  it(`${PARALLEL} simultaneous redemptions of one recovery code from ${PARALLEL} challenges: exactly one session`, async () => {
    const member = await seedMember(t);
    const { codes } = await enableAuthApp(t, member);
    const browsers = await challenges(member, PARALLEL);
    const before = await sessionCount(member.userId);

    const responses = await Promise.all(browsers.map((b) => submitRecoveryCode(b, codes[0])));
    expectNoServerErrors(responses);
    expect(tally(responses)[200]).toBe(1);
    expect(await sessionCount(member.userId)).toBe(before + 1);
    const winner = responses.find((r) => r.statusCode === 200) as LightMyRequestResponse;
    expect(winner.json().recoveryCodesRemaining).toBe(9);
    const winners = browsers.filter((b) => b.cookies.has("latchkey_session"));
    expect(winners).toHaveLength(1);
    expect((await winners[0]!.get("/api/v1/session")).statusCode).toBe(200);

    const rows = await t.ctx.db.selectFrom("recovery_codes").select(["used_at"]).where("user_id", "=", member.userId).execute();
    expect(rows.filter((r) => r.used_at !== null)).toHaveLength(1);
    const used = await t.ctx.db
      .selectFrom("audit_events")
      .select("id")
      .where("user_id", "=", member.userId)
      .where("type", "=", "sign_in.recovery_code_used")
      .execute();
    expect(used).toHaveLength(1);
    expect(t.mail.sent.filter((m) => m.to === member.email && m.subject.includes("recovery code was used"))).toHaveLength(1);
  });

  it(`${PARALLEL} simultaneous submissions of one app code from ${PARALLEL} challenges: exactly one wins`, async () => {
    const member = await seedMember(t);
    const { secret } = await enableAuthApp(t, member);
    t.clock.advanceSeconds(STEP_SECONDS);
    const browsers = await challenges(member, PARALLEL);
    const before = await sessionCount(member.userId);
    const code = totpCode(t, secret);

    const responses = await Promise.all(browsers.map((b) => submitCode(b, code)));
    expectNoServerErrors(responses);
    expect(tally(responses)[200]).toBe(1);
    expect(await sessionCount(member.userId)).toBe(before + 1);
    // Every loser was told the code was used (or, past the per-user limit, that code entry is paused): none a mere "wrong code".
    for (const r of responses.filter((x) => x.statusCode !== 200)) expect(["code_reused", "too_many_attempts"]).toContain(r.json().error);
    const user = await t.ctx.db.selectFrom("users").select("totp_last_step").where("id", "=", member.userId).executeTakeFirstOrThrow();
    expect(Number(user.totp_last_step)).toBe(Math.floor(t.clock.now() / 1000 / STEP_SECONDS));
  });

  it("10 simultaneous sign-ins, half with the previous step's code and half with the current one: at most one win per step", async () => {
    const member = await seedMember(t);
    const { secret } = await enableAuthApp(t, member);
    t.clock.advanceSeconds(3 * STEP_SECONDS);
    const browsers = await challenges(member, 10);
    const before = await sessionCount(member.userId);
    // Half send the previous step's code, half the current one: at most one of each can ever be accepted.
    const responses = await Promise.all(browsers.map((b, i) => submitCode(b, totpCode(t, secret, i % 2 === 0 ? -1 : 0))));
    expectNoServerErrors(responses);
    const wins = tally(responses)[200] ?? 0;
    expect(wins).toBeGreaterThanOrEqual(1);
    expect(wins).toBeLessThanOrEqual(2);
    expect(await sessionCount(member.userId)).toBe(before + wins);
  });

  it(`${PARALLEL} simultaneous wrong codes on one challenge: at most 5 are checked, the rest find it ended`, async () => {
    const member = await seedMember(t);
    const { secret } = await enableAuthApp(t, member);
    const [browser] = await challenges(member, 1);
    const token = browser!.cookies.get("latchkey_challenge") as string;
    const code = wrongCode(t, secret);
    // Same cookie for all: simulate one script firing at once.
    const responses = await Promise.all(
      Array.from({ length: PARALLEL }, () =>
        t.app.inject({
          method: "POST",
          url: "/api/v1/login/code",
          headers: { cookie: `latchkey_challenge=${token}`, "content-type": "application/json" },
          payload: JSON.stringify({ code }),
        }),
      ),
    );
    expectNoServerErrors(responses);
    const errors = responses.map((r) => r.json().error as string);
    expect(errors.filter((e) => e === "invalid_code").length).toBeLessThanOrEqual(defaultLimits.codeFailuresPerChallenge - 1);
    expect(errors.filter((e) => e === "challenge_expired").length).toBeGreaterThanOrEqual(
      PARALLEL - defaultLimits.codeFailuresPerChallenge + 1,
    );
    const row = await t.ctx.db.selectFrom("challenges").selectAll().where("token_hash", "=", hashToken(token)).executeTakeFirstOrThrow();
    expect(row.failed_attempts).toBe(defaultLimits.codeFailuresPerChallenge);
    expect(row.consumed_at).not.toBeNull();
    const checked = await t.ctx.db
      .selectFrom("audit_events")
      .select("id")
      .where("user_id", "=", member.userId)
      .where("type", "=", "sign_in.code_failed")
      .execute();
    expect(checked).toHaveLength(defaultLimits.codeFailuresPerChallenge);
  });

  it(`${PARALLEL} simultaneous wrong codes from ${PARALLEL} challenges: at most 10 are checked, one lock, one email`, async () => {
    const member = await seedMember(t);
    const { secret } = await enableAuthApp(t, member);
    const browsers = await challenges(member, PARALLEL);
    const code = wrongCode(t, secret);
    const responses = await Promise.all(browsers.map((b) => submitCode(b, code)));
    expectNoServerErrors(responses);
    expect(tally(responses)[429]).toBeGreaterThanOrEqual(PARALLEL - defaultLimits.codeFailuresPerUser + 1);
    const checked = await t.ctx.db
      .selectFrom("audit_events")
      .select("id")
      .where("user_id", "=", member.userId)
      .where("type", "=", "sign_in.code_failed")
      .execute();
    expect(checked.length).toBeLessThanOrEqual(defaultLimits.codeFailuresPerUser);
    const locks = await t.ctx.db
      .selectFrom("audit_events")
      .select("id")
      .where("user_id", "=", member.userId)
      .where("type", "=", "sign_in.code_entry_locked")
      .execute();
    expect(locks).toHaveLength(1);
    expect(t.mail.sent.filter((m) => m.to === member.email && /sign-in paused/.test(m.subject))).toHaveLength(1);
    // And the user is locked now.
    t.clock.advanceSeconds(STEP_SECONDS);
    const after = await submitCode(await passwordStep(t, member), totpCode(t, secret));
    expect(after.statusCode).toBe(429);
  });
});
