import { generateSync } from "otplib";
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeEachDialect } from "./helpers/dialects.js";
import { csrfFrom, seedMember, signedInBrowser, startTestApp, Browser, type TestApp } from "./helpers/app.js";

function codeFor(secret: string, nowMs: number): string {
  return generateSync({ secret, epoch: Math.floor(nowMs / 1000) });
}

describeEachDialect("auth app setup and sign-in", (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(dialect);
  });
  afterAll(async () => {
    await t?.close();
  });

  it("sets up the auth app in three steps, then signs in with a code and a recovery code", async () => {
    const member = await seedMember(t);
    const browser = await signedInBrowser(t, member);
    const manage = await browser.get("/settings/two-factor");
    expect(manage.statusCode).toBe(200);
    const started = await browser.request("POST", "/settings/two-factor/setup", { form: { _csrf: csrfFrom(manage.body) } });
    expect(started.statusCode).toBe(303);
    const codesPage = await browser.get("/settings/two-factor/setup");
    const codes = [...codesPage.body.matchAll(/<li>([0-9a-z]{5}-[0-9a-z]{5}-[0-9a-z]{5})<\/li>/g)].map((m) => m[1] as string);
    expect(codes).toHaveLength(10);
    const download = await browser.get("/settings/two-factor/recovery-codes.txt");
    expect(download.headers["content-disposition"]).toContain("latchkey-recovery-codes-");
    for (const code of codes) expect(download.body).toContain(code);

    const notSaved = await browser.request("POST", "/settings/two-factor/setup/codes-saved", { form: { _csrf: csrfFrom(codesPage.body) } });
    expect(notSaved.statusCode).toBe(400);
    await browser.request("POST", "/settings/two-factor/setup/codes-saved", { form: { _csrf: csrfFrom(codesPage.body), saved: "yes" } });
    const scan = await browser.get("/settings/two-factor/setup");
    expect(scan.body).toContain("<svg");
    const manualKey = /id="manual-key"[^>]*>([A-Z2-7 ]+)</.exec(scan.body)?.[1]?.replace(/ /g, "");
    expect(manualKey).toMatch(/^[A-Z2-7]{32}$/);
    const user = await t.ctx.db.selectFrom("users").select("two_factor_method").where("id", "=", member.userId).executeTakeFirstOrThrow();
    expect(user.two_factor_method).toBe("email_link");

    const wrong = await browser.request("POST", "/settings/two-factor/setup/confirm", {
      form: { _csrf: csrfFrom(scan.body), code: "000000" === codeFor(manualKey!, t.clock.now()) ? "111111" : "000000" },
    });
    expect(wrong.statusCode).toBe(401);
    const confirmed = await browser.request("POST", "/settings/two-factor/setup/confirm", {
      form: { _csrf: csrfFrom(scan.body), code: codeFor(manualKey!, t.clock.now()) },
    });
    expect(confirmed.statusCode).toBe(200);
    expect(confirmed.body).toContain("Success!");
    const after = await t.ctx.db.selectFrom("users").selectAll().where("id", "=", member.userId).executeTakeFirstOrThrow();
    expect(after.two_factor_method).toBe("auth_app");
    expect(after.totp_secret_sealed).not.toContain(manualKey!);
    expect(t.mail.last(member.email)?.subject).toContain("Authenticator app turned on");

    // Sign in again with a code from the app (next time step: the confirming step is spent).
    t.clock.advanceSeconds(30);
    const second = new Browser(t.app);
    const step = await second.signInWithPassword(member.email, member.password);
    expect(step.headers.location).toBe("/login/code");
    const codePage = await second.get("/login/code");
    expect(codePage.body).toContain("Authentication code");
    const signedIn = await second.request("POST", "/login/code", {
      form: { _csrf: csrfFrom(codePage.body), code: codeFor(manualKey!, t.clock.now()) },
    });
    expect(signedIn.statusCode).toBe(303);
    expect((await second.get("/api/v1/session")).json().twoFactor.method).toBe("auth_app");

    // A recovery code via the API.
    const api = new Browser(t.app);
    expect((await api.request("POST", "/api/v1/login", { json: { email: member.email, password: member.password } })).json()).toEqual({
      next: "auth_app",
    });
    const recovered = await api.request("POST", "/api/v1/login/recovery-code", { json: { code: codes[0]!.toUpperCase() } });
    expect(recovered.statusCode).toBe(200);
    expect(recovered.json().recoveryCodesRemaining).toBe(9);
    const api2 = new Browser(t.app);
    await api2.request("POST", "/api/v1/login", { json: { email: member.email, password: member.password } });
    const reused = await api2.request("POST", "/api/v1/login/recovery-code", { json: { code: codes[0] } });
    expect(reused.statusCode).toBe(401);
    expect(reused.json().error).toBe("invalid_code");
  });
});
