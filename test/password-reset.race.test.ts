import type { LightMyRequestResponse } from "fastify";
import { afterAll, beforeAll, expect, it } from "vitest";
import { verifyPassword } from "../src/auth/passwords.js";
import { Browser, seedMember, startTestApp, type TestApp } from "./helpers/app.js";
import { enableAuthApp, STEP_SECONDS, totpCode } from "./helpers/auth-app.js";
import { describeEachDialect } from "./helpers/dialects.js";

const PARALLEL = 20;

/** A reset link works once: of any number of simultaneous redemptions exactly one sets a password, on both dialects. */
describeEachDialect("password reset redemption races", (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(dialect);
  });
  afterAll(async () => {
    await t?.close();
  });

  async function resetToken(email: string): Promise<string> {
    const response = await new Browser(t.app).request("POST", "/api/v1/password-reset", { json: { email } });
    expect(response.statusCode).toBe(202);
    await t.app.afterResponse.settled();
    return new URL(t.mail.lastLink(email)).pathname.split("/").pop() as string;
  }

  function confirmAll(bodies: unknown[]): Promise<LightMyRequestResponse[]> {
    return Promise.all(bodies.map((json) => new Browser(t.app).request("POST", "/api/v1/password-reset/confirm", { json })));
  }

  function expectOneWinner(responses: LightMyRequestResponse[], losing: string[]): LightMyRequestResponse {
    for (const r of responses) {
      expect(r.statusCode, r.body).toBeLessThan(500);
      if (r.statusCode !== 204) expect(losing, r.body).toContain(r.json().error);
    }
    const winners = responses.filter((r) => r.statusCode === 204);
    expect(winners).toHaveLength(1);
    return winners[0]!;
  }

  async function resetEvents(userId: string): Promise<number> {
    return (
      await t.ctx.db.selectFrom("audit_events").select("id").where("user_id", "=", userId).where("type", "=", "password.reset").execute()
    ).length;
  }

  it(`${PARALLEL} simultaneous redemptions of one email-link user's link, each with its own password: exactly one is set`, async () => {
    const member = await seedMember(t);
    const token = await resetToken(member.email);
    const passwords = Array.from({ length: PARALLEL }, (_, i) => `new passphrase number ${i}`);
    const responses = await confirmAll(passwords.map((password) => ({ token, password })));
    const winner = expectOneWinner(responses, ["link_used"]);
    const chosen = passwords[responses.indexOf(winner)]!;
    const user = await t.ctx.db.selectFrom("users").select("password_hash").where("id", "=", member.userId).executeTakeFirstOrThrow();
    expect(await verifyPassword(user.password_hash!, chosen)).toBe(true);
    expect(await resetEvents(member.userId)).toBe(1);
    expect(t.mail.sent.filter((m) => m.to === member.email && m.subject.includes("password was reset"))).toHaveLength(1);
  });

  it(`${PARALLEL} simultaneous redemptions with one recovery code: exactly one wins, the code is spent once`, async () => {
    const member = await seedMember(t);
    const { codes } = await enableAuthApp(t, member);
    const token = await resetToken(member.email);
    const responses = await confirmAll(
      Array.from({ length: PARALLEL }, () => ({ token, password: "one new passphrase", recoveryCode: codes[0] })),
    );
    // Losers: the link was used, or its tries were taken by the parallel requests.
    expectOneWinner(responses, ["link_used", "link_invalid"]);
    const used = await t.ctx.db
      .selectFrom("recovery_codes")
      .select("id")
      .where("user_id", "=", member.userId)
      .where("used_at", "is not", null)
      .execute();
    expect(used).toHaveLength(1);
    expect(await resetEvents(member.userId)).toBe(1);
  });

  it("simultaneous redemptions with different recovery codes: one wins, and only its code is spent (the losers' spends roll back)", async () => {
    const member = await seedMember(t);
    const { codes } = await enableAuthApp(t, member);
    const token = await resetToken(member.email);
    const tries = t.config.limits.codeFailuresPerChallenge;
    const responses = await confirmAll(
      codes.slice(0, tries).map((recoveryCode) => ({ token, password: "one new passphrase", recoveryCode })),
    );
    expectOneWinner(responses, ["link_used"]);
    const used = await t.ctx.db
      .selectFrom("recovery_codes")
      .select("id")
      .where("user_id", "=", member.userId)
      .where("used_at", "is not", null)
      .execute();
    expect(used).toHaveLength(1);
  });

  it(`${PARALLEL} simultaneous redemptions with one app code: exactly one wins`, async () => {
    const member = await seedMember(t);
    const { secret } = await enableAuthApp(t, member);
    t.clock.advanceSeconds(STEP_SECONDS);
    const token = await resetToken(member.email);
    const code = totpCode(t, secret);
    const responses = await confirmAll(Array.from({ length: PARALLEL }, () => ({ token, password: "one new passphrase", code })));
    expectOneWinner(responses, ["link_used", "link_invalid"]);
    expect(await resetEvents(member.userId)).toBe(1);
  });
});
