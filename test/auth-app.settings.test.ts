import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { defaultLimits } from "../src/config.js";
import type { Database } from "../src/db/schema.js";
import { describeEachDialect } from "./helpers/dialects.js";
import { Browser, csrfFrom, seedMember, signedInBrowser, startTestApp, type TestApp } from "./helpers/app.js";
import { codesOnPage, enableAuthApp, passwordStep, STEP_SECONDS, submitCode, submitRecoveryCode, totpCode } from "./helpers/auth-app.js";

const TABLES: Array<keyof Database> = [
  "accounts",
  "users",
  "memberships",
  "invitations",
  "setup_tokens",
  "sessions",
  "challenges",
  "email_links",
  "attempt_counters",
  "audit_events",
  "totp_setups",
  "recovery_codes",
  "recovery_code_reveals",
];
const FRESH_PROOF = defaultLimits.freshProofSeconds;

function base32Decode(input: string): Buffer {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const c of input) bits += alphabet.indexOf(c).toString(2).padStart(5, "0");
  return Buffer.from((bits.match(/.{8}/g) ?? []).map((b) => parseInt(b, 2)));
}

/** Every form in which a TOTP key or a recovery code could sit in a row. */
function needlesFor(secret: string | null, codes: string[]): string[] {
  const out: string[] = [];
  if (secret) {
    const raw = base32Decode(secret);
    out.push(
      secret,
      secret.toLowerCase(),
      secret.match(/.{4}/g)!.join(" "),
      raw.toString("hex"),
      raw.toString("base64"),
      raw.toString("base64url"),
    );
  }
  for (const code of codes) out.push(code, code.replace(/-/g, ""), code.toUpperCase());
  return out;
}

describeEachDialect("auth app settings", (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(dialect);
  });
  afterAll(async () => {
    await t?.close();
  });

  /** Reads every row of every table (and, on SQLite, the database files themselves) and looks for the secrets. */
  async function expectNothingInTheClear(secret: string | null, codes: string[], where: string): Promise<void> {
    const needles = needlesFor(secret, codes);
    for (const table of TABLES) {
      const rows = await t.ctx.db.selectFrom(table).selectAll().execute();
      const dump = JSON.stringify(rows);
      for (const needle of needles) expect(dump.includes(needle), `${where}: ${table} holds ${needle}`).toBe(false);
    }
    if (t.dialect === "sqlite") {
      const file = join(t.config.dataDir, "latchkey.db");
      for (const path of [file, `${file}-wal`].filter(existsSync)) {
        const bytes = readFileSync(path);
        for (const needle of needles) expect(bytes.includes(Buffer.from(needle)), `${where}: ${path} holds ${needle}`).toBe(false);
      }
    }
  }

  async function userRow(userId: string) {
    return t.ctx.db.selectFrom("users").selectAll().where("id", "=", userId).executeTakeFirstOrThrow();
  }

  async function manageCsrf(browser: Browser): Promise<string> {
    return csrfFrom((await browser.get("/settings/two-factor")).body);
  }

  it("never holds the TOTP key or a recovery code in the clear, at any step", async () => {
    const member = await seedMember(t);
    const browser = await signedInBrowser(t, member);
    expect((await browser.request("POST", "/settings/two-factor/setup", { form: { _csrf: await manageCsrf(browser) } })).statusCode).toBe(
      303,
    );
    const codesPage = await browser.get("/settings/two-factor/setup");
    const codes = codesOnPage(codesPage.body);
    expect(codes).toHaveLength(10);
    const pending = await t.ctx.db.selectFrom("totp_setups").selectAll().where("user_id", "=", member.userId).execute();
    expect(pending).toHaveLength(1);
    const reveals = await t.ctx.db.selectFrom("recovery_code_reveals").selectAll().where("user_id", "=", member.userId).execute();
    expect(reveals).toHaveLength(1);
    await expectNothingInTheClear(null, codes, "after start");

    await browser.request("POST", "/settings/two-factor/setup/codes-saved", { form: { _csrf: csrfFrom(codesPage.body), saved: "yes" } });
    const scan = await browser.get("/settings/two-factor/setup");
    const secret = /id="manual-key"[^>]*>([A-Z2-7 ]+)</.exec(scan.body)?.[1]?.replace(/ /g, "") as string;
    expect(secret).toMatch(/^[A-Z2-7]{32}$/);
    await expectNothingInTheClear(secret, codes, "at the scan step");

    expect(
      (
        await browser.request("POST", "/settings/two-factor/setup/confirm", {
          form: { _csrf: csrfFrom(scan.body), code: totpCode(t, secret) },
        })
      ).statusCode,
    ).toBe(200);
    const user = await userRow(member.userId);
    expect(user.totp_secret_sealed).toMatch(/^v1\./);
    const stored = await t.ctx.db.selectFrom("recovery_codes").selectAll().where("user_id", "=", member.userId).execute();
    expect(stored).toHaveLength(10);
    for (const row of stored) expect(row.code_hash).toMatch(/^[A-Za-z0-9_-]{20,}$/);
    expect(await t.ctx.db.selectFrom("totp_setups").selectAll().where("user_id", "=", member.userId).execute()).toEqual([]);
    expect(await t.ctx.db.selectFrom("recovery_code_reveals").selectAll().where("user_id", "=", member.userId).execute()).toEqual([]);
    await expectNothingInTheClear(secret, codes, "after confirming");

    // A sign-in with a recovery code, and new codes (shown until "Done").
    expect((await submitRecoveryCode(await passwordStep(t, member), codes[0])).statusCode).toBe(200);
    const regenerated = await browser.request("POST", "/settings/two-factor/recovery-codes", {
      form: { _csrf: await manageCsrf(browser) },
    });
    expect(regenerated.statusCode).toBe(303);
    const fresh = codesOnPage((await browser.get("/settings/two-factor/recovery-codes")).body);
    expect(fresh).toHaveLength(10);
    await expectNothingInTheClear(secret, [...codes, ...fresh], "after regenerating");
  });

  it("an aborted setup leaves the email link: method, sign-in and the pending key and codes do nothing", async () => {
    const member = await seedMember(t);
    const browser = await signedInBrowser(t, member);
    await browser.request("POST", "/settings/two-factor/setup", { form: { _csrf: await manageCsrf(browser) } });
    const codesPage = await browser.get("/settings/two-factor/setup");
    const codes = codesOnPage(codesPage.body);
    await browser.request("POST", "/settings/two-factor/setup/codes-saved", { form: { _csrf: csrfFrom(codesPage.body), saved: "yes" } });
    const scan = await browser.get("/settings/two-factor/setup");
    const secret = /id="manual-key"[^>]*>([A-Z2-7 ]+)</.exec(scan.body)?.[1]?.replace(/ /g, "") as string;
    // A wrong code at the last step changes nothing either.
    const wrong = await browser.request("POST", "/settings/two-factor/setup/confirm", {
      form: { _csrf: csrfFrom(scan.body), code: totpCode(t, secret, 3) },
    });
    expect(wrong.statusCode).toBe(401);
    expect(wrong.body).toContain("That code is not right");
    // …and the person walks away.

    expect((await userRow(member.userId)).two_factor_method).toBe("email_link");
    expect((await userRow(member.userId)).totp_secret_sealed).toBeNull();
    expect(await t.ctx.db.selectFrom("recovery_codes").selectAll().where("user_id", "=", member.userId).execute()).toEqual([]);
    expect((await browser.get("/api/v1/two-factor")).json()).toMatchObject({ method: "email_link", recoveryCodesRemaining: 0 });
    expect((await browser.get("/api/v1/session")).json().twoFactor.method).toBe("email_link");

    // Sign-in is still by email link.
    const api = new Browser(t.app);
    const login = await api.request("POST", "/api/v1/login", { json: { email: member.email, password: member.password } });
    expect(login.json()).toEqual({ next: "email_link" });
    // The pending key's code and the shown codes are not a way in.
    t.clock.advanceSeconds(STEP_SECONDS);
    const byCode = await submitCode(api, totpCode(t, secret));
    expect(byCode.statusCode).toBe(409);
    expect(byCode.json().error).toBe("auth_app_not_enabled");
    const byRecovery = await submitRecoveryCode(api, codes[0]);
    expect(byRecovery.statusCode).toBe(409);
    expect(byRecovery.json().error).toBe("auth_app_not_enabled");
    expect(api.cookies.has("latchkey_session")).toBe(false);
    const web = new Browser(t.app);
    const step = await web.signInWithPassword(member.email, member.password);
    expect(step.statusCode).toBe(303);
    expect(step.headers.location).not.toBe("/login/code");
    expect((await web.get(t.mail.lastLink(member.email))).statusCode).toBe(303);
    expect((await web.get("/api/v1/session")).statusCode).toBe(200);

    // After the setup's lifetime it is gone: the page says so, and a late confirmation is refused.
    t.clock.advanceSeconds(defaultLimits.totpSetupTtlSeconds);
    const late = await web.get("/settings/two-factor/setup");
    expect(late.statusCode).toBe(409);
    expect(late.body).toContain("Press “Enable: set up the auth app” to start again");
    await web.request("POST", "/settings/confirm-password", { form: { _csrf: await manageCsrf(web), password: member.password } });
    const confirm = await web.request("POST", "/settings/two-factor/setup/confirm", {
      form: { _csrf: await manageCsrf(web), code: totpCode(t, secret) },
    });
    expect(confirm.statusCode).toBe(409);
    expect((await userRow(member.userId)).two_factor_method).toBe("email_link");
  });

  it("asks for the password again when the proof is older than 10 minutes; a wrong password is refused", async () => {
    const member = await seedMember(t);
    const browser = await signedInBrowser(t, member);
    t.clock.advanceSeconds(FRESH_PROOF + 60);

    const stale = await browser.request("POST", "/settings/two-factor/setup", { form: { _csrf: await manageCsrf(browser) } });
    expect(stale.statusCode).toBe(403);
    expect(stale.body).toContain("Confirm your password");
    expect(stale.body).toContain('action="/settings/confirm-password"');
    expect(await t.ctx.db.selectFrom("totp_setups").selectAll().where("user_id", "=", member.userId).execute()).toEqual([]);
    expect((await browser.get("/api/v1/two-factor")).json().freshProof).toBe(false);

    const wrong = await browser.request("POST", "/settings/confirm-password", {
      form: { _csrf: csrfFrom(stale.body), password: "not my password", next: "/settings/two-factor" },
    });
    expect(wrong.statusCode).toBe(401);
    expect(wrong.body).toContain("That password is not right");
    expect((await browser.request("POST", "/settings/two-factor/setup", { form: { _csrf: await manageCsrf(browser) } })).statusCode).toBe(
      403,
    );

    const right = await browser.request("POST", "/settings/confirm-password", {
      form: { _csrf: csrfFrom(stale.body), password: member.password, next: "/settings/two-factor" },
    });
    expect(right.statusCode).toBe(303);
    expect(right.headers.location).toBe("/settings/two-factor?notice=confirmed");
    expect((await browser.get("/api/v1/two-factor")).json().freshProof).toBe(true);
    const started = await browser.request("POST", "/settings/two-factor/setup", { form: { _csrf: await manageCsrf(browser) } });
    expect(started.statusCode).toBe(303);
    expect(started.headers.location).toBe("/settings/two-factor/setup");

    const types = (await t.ctx.db.selectFrom("audit_events").select("type").where("user_id", "=", member.userId).execute()).map(
      (r) => r.type,
    );
    expect(types).toContain("session.reauthentication_failed");
    expect(types).toContain("session.reauthenticated");
  });

  it("asks for the password again at the confirming step when the proof went stale during the setup", async () => {
    const member = await seedMember(t);
    const browser = await signedInBrowser(t, member);
    await browser.request("POST", "/settings/two-factor/setup", { form: { _csrf: await manageCsrf(browser) } });
    const codesPage = await browser.get("/settings/two-factor/setup");
    await browser.request("POST", "/settings/two-factor/setup/codes-saved", { form: { _csrf: csrfFrom(codesPage.body), saved: "yes" } });
    const scan = await browser.get("/settings/two-factor/setup");
    const secret = /id="manual-key"[^>]*>([A-Z2-7 ]+)</.exec(scan.body)?.[1]?.replace(/ /g, "") as string;

    t.clock.advanceSeconds(FRESH_PROOF + 60);
    const stale = await browser.request("POST", "/settings/two-factor/setup/confirm", {
      form: { _csrf: csrfFrom(scan.body), code: totpCode(t, secret) },
    });
    expect(stale.statusCode).toBe(403);
    expect(stale.body).toContain("Confirm your password");
    expect((await userRow(member.userId)).two_factor_method).toBe("email_link");

    const confirmed = await browser.request("POST", "/settings/confirm-password", {
      form: { _csrf: csrfFrom(stale.body), password: member.password, next: "/settings/two-factor/setup" },
    });
    expect(confirmed.statusCode).toBe(303);
    expect(confirmed.headers.location).toBe("/settings/two-factor/setup");
    // The setup is where it was: the same key, now confirmable.
    const again = await browser.get("/settings/two-factor/setup");
    expect(again.body).toContain(secret.match(/.{4}/g)!.join(" "));
    const done = await browser.request("POST", "/settings/two-factor/setup/confirm", {
      form: { _csrf: csrfFrom(again.body), code: totpCode(t, secret) },
    });
    expect(done.statusCode).toBe(200);
    expect((await userRow(member.userId)).two_factor_method).toBe("auth_app");
  });

  it("needs a fresh proof to regenerate recovery codes or turn the app off", async () => {
    const member = await seedMember(t);
    const { browser, codes } = await enableAuthApp(t, member);
    t.clock.advanceSeconds(FRESH_PROOF + 60);
    const regenerate = await browser.request("POST", "/settings/two-factor/recovery-codes", { form: { _csrf: await manageCsrf(browser) } });
    expect(regenerate.statusCode).toBe(403);
    expect(regenerate.body).toContain("Confirm your password");
    const disable = await browser.request("POST", "/settings/two-factor/disable", { form: { _csrf: await manageCsrf(browser) } });
    expect(disable.statusCode).toBe(403);
    expect(disable.body).toContain("Confirm your password");
    expect((await userRow(member.userId)).two_factor_method).toBe("auth_app");
    // The old codes still work: nothing was regenerated.
    expect((await submitRecoveryCode(await passwordStep(t, member), codes[0])).statusCode).toBe(200);
  });

  it("turning the app off goes back to the email link and deletes the key and the codes", async () => {
    const member = await seedMember(t);
    const other = await signedInBrowser(t, member);
    const { browser, codes, secret } = await enableAuthApp(t, member);
    const elsewhere = await passwordStep(t, member);
    t.clock.advanceSeconds(STEP_SECONDS);
    expect((await submitCode(elsewhere, totpCode(t, secret))).statusCode).toBe(200);

    const manage = await browser.get("/settings/two-factor");
    expect(manage.body).toContain("/settings/two-factor/disable");
    const disabled = await browser.request("POST", "/settings/two-factor/disable", { form: { _csrf: csrfFrom(manage.body) } });
    expect(disabled.statusCode).toBe(303);
    expect(disabled.headers.location).toBe("/settings/two-factor?notice=disabled");
    expect((await browser.get(disabled.headers.location as string)).body).toContain("You sign in with the emailed link again");

    const user = await userRow(member.userId);
    expect(user.two_factor_method).toBe("email_link");
    expect(user.totp_secret_sealed).toBeNull();
    expect(user.totp_last_step).toBeNull();
    expect(user.totp_enabled_at).toBeNull();
    expect(user.recovery_batch_id).toBeNull();
    expect(await t.ctx.db.selectFrom("recovery_codes").selectAll().where("user_id", "=", member.userId).execute()).toEqual([]);
    expect(await t.ctx.db.selectFrom("recovery_code_reveals").selectAll().where("user_id", "=", member.userId).execute()).toEqual([]);
    expect((await browser.get("/api/v1/two-factor")).json()).toMatchObject({ method: "email_link", recoveryCodesRemaining: 0 });
    // The browser that turned it off stays signed in; the other sessions end.
    expect((await browser.get("/api/v1/session")).statusCode).toBe(200);
    expect((await elsewhere.get("/api/v1/session")).statusCode).toBe(401);
    expect((await other.get("/api/v1/session")).statusCode).toBe(401);

    // Sign-in is by email link again; the old codes are no way in.
    const api = new Browser(t.app);
    expect((await api.request("POST", "/api/v1/login", { json: { email: member.email, password: member.password } })).json()).toEqual({
      next: "email_link",
    });
    expect((await submitRecoveryCode(api, codes[1])).json().error).toBe("auth_app_not_enabled");
    t.clock.advanceSeconds(STEP_SECONDS);
    expect((await submitCode(api, totpCode(t, secret))).json().error).toBe("auth_app_not_enabled");
    expect((await api.get(t.mail.lastLink(member.email))).statusCode).toBe(303);
    expect((await api.get("/api/v1/session")).json().twoFactor.method).toBe("email_link");
  });

  it("refuses to turn the app off while an account of the person requires it, and says why", async () => {
    const member = await seedMember(t, { accountName: "Strict Co" });
    const { browser } = await enableAuthApp(t, member);
    await t.ctx.db.updateTable("accounts").set({ two_factor_policy: "auth_app_required" }).where("id", "=", member.accountId).execute();

    const manage = await browser.get("/settings/two-factor");
    expect(manage.statusCode).toBe(200);
    const refused = await browser.request("POST", "/settings/two-factor/disable", { form: { _csrf: csrfFrom(manage.body) } });
    expect(refused.statusCode).toBe(409);
    expect(refused.body).toContain("You cannot turn off the authenticator app");
    expect(refused.body).toContain("Strict Co");
    expect(refused.body).toMatch(/requires it for every team member/);
    expect((await userRow(member.userId)).two_factor_method).toBe("auth_app");
    expect((await browser.get("/api/v1/two-factor")).json().requiredBy).toEqual(["Strict Co"]);

    // Another account of the person that requires it counts as well.
    await t.ctx.db.updateTable("accounts").set({ two_factor_policy: "email_link" }).where("id", "=", member.accountId).execute();
    const second = await seedMember(t, { accountName: "Other Strict" });
    await t.ctx.db.updateTable("memberships").set({ user_id: member.userId }).where("user_id", "=", second.userId).execute();
    await t.ctx.db.updateTable("accounts").set({ two_factor_policy: "auth_app_required" }).where("id", "=", second.accountId).execute();
    const refusedAgain = await browser.request("POST", "/settings/two-factor/disable", { form: { _csrf: await manageCsrf(browser) } });
    expect(refusedAgain.statusCode).toBe(409);
    expect(refusedAgain.body).toContain("Other Strict");

    // Once no account requires it, it can be turned off.
    await t.ctx.db.updateTable("accounts").set({ two_factor_policy: "email_link" }).where("id", "=", second.accountId).execute();
    const allowed = await browser.request("POST", "/settings/two-factor/disable", { form: { _csrf: await manageCsrf(browser) } });
    expect(allowed.statusCode).toBe(303);
    expect((await userRow(member.userId)).two_factor_method).toBe("email_link");
  });

  it("enabling the app ends the person's other sessions", async () => {
    const member = await seedMember(t);
    const other = await signedInBrowser(t, member);
    const third = await signedInBrowser(t, member);
    expect((await other.get("/api/v1/session")).statusCode).toBe(200);
    const { browser } = await enableAuthApp(t, member);
    expect((await browser.get("/api/v1/session")).statusCode).toBe(200);
    expect((await other.get("/api/v1/session")).statusCode).toBe(401);
    expect((await third.get("/api/v1/verify")).statusCode).toBe(401);
    const sessions = await t.ctx.db.selectFrom("sessions").select("id").where("user_id", "=", member.userId).execute();
    expect(sessions).toHaveLength(1);
  });

  it("regenerating recovery codes ends the person's other sessions (a credential change)", async () => {
    const member = await seedMember(t, { accountName: "Regen" });
    const app = await enableAuthApp(t, member);
    // Someone signed in elsewhere with one of the old codes.
    const elsewhere = await passwordStep(t, member);
    expect((await submitRecoveryCode(elsewhere, app.codes[0])).statusCode).toBe(200);
    expect((await elsewhere.get("/api/v1/session")).statusCode).toBe(200);
    const manage = await app.browser.get("/settings/two-factor");
    expect(
      (await app.browser.request("POST", "/settings/two-factor/recovery-codes", { form: { _csrf: csrfFrom(manage.body) } })).statusCode,
    ).toBe(303);
    expect((await elsewhere.get("/api/v1/session")).statusCode).toBe(401);
    expect((await app.browser.get("/api/v1/session")).statusCode).toBe(200);
  });
});
