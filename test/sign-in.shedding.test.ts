import { afterAll, beforeAll, beforeEach, expect, it } from "vitest";
import type { LightMyRequestResponse } from "fastify";
import { describeEachDialect } from "./helpers/dialects.js";
import { seedMember, startTestApp, type TestApp } from "./helpers/app.js";
import { defaultLimits } from "../src/config.js";

/**
 * A flood of sign-ins is refused at once, not queued without bound behind argon2 (issue 10): past
 * `passwordChecksInFlightMax` password checks running or waiting, the password step answers 503
 * `service_unavailable` with Retry-After, before any counter, query or hash, and changes nothing.
 */
const MAX = 2;
const BURST = 12;

describeEachDialect("password checks in flight", (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(dialect, { limits: { passwordChecksInFlightMax: MAX } });
  });
  afterAll(async () => t?.close());
  beforeEach(() => t.clock.advanceSeconds(defaultLimits.passwordAttemptWindowSeconds));

  const login = (email: string, password: string, i: number): Promise<LightMyRequestResponse> =>
    t.app.inject({ method: "POST", url: "/api/v1/login", payload: { email, password }, remoteAddress: `127.0.1.${i + 1}` });

  async function count(table: "challenges" | "audit_events"): Promise<number> {
    const row = await t.ctx.db
      .selectFrom(table)
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  it("answers a burst past the limit with 503 service_unavailable and Retry-After, and the rest as usual", async () => {
    const member = await seedMember(t);
    // What one accepted sign-in records, measured: the password accepted, the link sent.
    const eventsBeforeOne = await count("audit_events");
    expect((await login(member.email, member.password, 0)).statusCode).toBe(200);
    const eventsPerSignIn = (await count("audit_events")) - eventsBeforeOne;
    expect(eventsPerSignIn).toBeGreaterThan(0);
    const [challengesBefore, eventsBefore] = [await count("challenges"), await count("audit_events")];
    const answers = await Promise.all(Array.from({ length: BURST }, (_, i) => login(member.email, member.password, i)));
    const shed = answers.filter((a) => a.statusCode === 503);
    const accepted = answers.filter((a) => a.statusCode === 200);
    expect(shed.length + accepted.length).toBe(BURST);
    expect(shed.length).toBeGreaterThanOrEqual(BURST - 2 * MAX);
    expect(accepted.length).toBeGreaterThanOrEqual(1);
    for (const answer of shed) {
      expect(answer.json()).toMatchObject({ error: "service_unavailable" });
      expect(answer.json().message).toMatch(/Too many sign-ins at once/);
      expect(answer.headers["retry-after"]).toBe(String(defaultLimits.overloadRetryAfterSeconds));
    }
    // A refused check made nothing: a challenge and its audit events per accepted sign-in only.
    expect(await count("challenges")).toBe(challengesBefore + accepted.length);
    expect(await count("audit_events")).toBe(eventsBefore + accepted.length * eventsPerSignIn);
  });

  it("never refuses checks one at a time, at the limit", async () => {
    const member = await seedMember(t);
    for (let i = 0; i < MAX + 2; i += 1) expect((await login(member.email, member.password, i)).statusCode).toBe(200);
    // Exactly MAX at once: all answered.
    const together = await Promise.all(Array.from({ length: MAX }, (_, i) => login(member.email, member.password, i)));
    expect(together.map((a) => a.statusCode)).toEqual(Array(MAX).fill(200));
  });

  it("does not count a refused check against the email's attempts", async () => {
    const member = await seedMember(t);
    const wrong = await Promise.all(Array.from({ length: BURST }, (_, i) => login(member.email, "not the password", i)));
    const counted = wrong.filter((a) => a.statusCode === 401).length;
    expect(wrong.filter((a) => a.statusCode === 503).length).toBeGreaterThan(0);
    expect(counted).toBeLessThan(defaultLimits.passwordFailuresPerEmail);
    // Only the checks that ran were counted: the right password still gets in.
    expect((await login(member.email, member.password, 0)).statusCode).toBe(200);
  });
});
