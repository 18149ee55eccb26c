import { execFile } from "node:child_process";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { defaultLimits } from "../src/config.js";
import { connect } from "../src/db/connect.js";
import { checkAccountName, checkName, cleanProviderName } from "../src/auth/emails.js";
import { createAccountWithAdmin } from "../src/team/accounts.js";
import { completeSetup, issueSetupLink } from "../src/team/setup.js";
import { connectSso } from "../src/team/sso.js";
import { ssoRedirectUri } from "../src/auth/sso-sign-in.js";
import { newId } from "../src/auth/tokens.js";
import { Browser, seedMember, startTestApp, TEST_SECRET_KEY, type TestApp } from "./helpers/app.js";
import { createTestDatabase } from "./helpers/databases.js";
import { describeEachDialect } from "./helpers/dialects.js";
import { startTestIdp, type TestIdp } from "./helpers/oidc-provider.js";

/** Names that look like another name, or reorder what follows them on screen (review issue 7). */
const DECEPTIVE: Array<[string, string]> = [
  ["a right-to-left override (U+202E)", "Mallory\u202Egnp.exe"],
  ["a left-to-right embedding (U+202A)", "Ann\u202Aa"],
  ["a first-strong isolate (U+2068)", "Ann\u2068a"],
  ["a pop directional isolate (U+2069)", "Ann\u2069a"],
  ["a right-to-left mark (U+200F)", "Ann\u200Fa"],
  ["a left-to-right mark (U+200E)", "Ann\u200Ea"],
  ["an Arabic letter mark (U+061C)", "Ann\u061Ca"],
  ["a zero-width space (U+200B)", "Ad\u200Bmin"],
  ["a zero-width non-joiner between Latin letters (U+200C)", "Ad\u200Cmin"],
  ["a zero-width joiner between Latin letters (U+200D)", "Ad\u200Dmin"],
  ["a word joiner (U+2060)", "Ad\u2060min"],
  ["a zero-width no-break space inside (U+FEFF)", "Ad\uFEFFmin"],
  ["a soft hyphen (U+00AD)", "Ad\u00ADmin"],
  ["a tag character (U+E0041)", "Ad\u{E0041}min"],
  ["a line separator (U+2028)", "Ad\u2028min"],
  ["a Hangul filler (U+3164), blank on screen", "Ad\u3164min"],
];

/** Real names that use a joiner as their script needs it. */
const GENUINE = [
  "\u0645\u0647\u062F\u06CC\u200C\u0632\u0627\u062F\u0647" /* Persian: Mahdi-zadeh */,
  "Jos\u00E9 M\u00FCller-L\u00FCdenscheidt",
  "Team \u{1F469}\u200D\u{1F4BB}",
  "Dev \u{1F469}\u{1F3FD}\u200D\u{1F4BB} \u{1F3F3}\uFE0F\u200D\u{1F308}",
];

describe("checkName, the one check of people's and account names", () => {
  it.each(DECEPTIVE)("refuses %s", (_what, name) => {
    const person = checkName(name, defaultLimits);
    expect(person).toMatchObject({
      ok: false,
      reason: "name_invalid",
      message: "A name cannot contain invisible characters or text-direction controls.",
    });
    expect(checkAccountName(name, defaultLimits)).toMatchObject({
      ok: false,
      reason: "account_name_invalid",
      message: "An account name cannot contain invisible characters or text-direction controls.",
    });
  });

  it.each(GENUINE)("accepts %s", (name) => {
    expect(checkName(name, defaultLimits)).toEqual({ ok: true, value: name });
  });

  it("a name from an identity provider has such characters stripped, not refused", () => {
    expect(cleanProviderName("Eve\u202Egnp.exe\u200B")).toBe("Evegnp.exe");
    expect(cleanProviderName(GENUINE[0] as string)).toBe(GENUINE[0]);
  });
});

describeEachDialect("names with invisible characters", (dialect) => {
  describe("first-run setup page", () => {
    let t: TestApp;
    beforeEach(async () => {
      t = await startTestApp(dialect);
    });
    afterEach(async () => {
      await t?.close();
    });

    async function setupPath(): Promise<string> {
      const issued = await issueSetupLink(t.ctx);
      if (!issued) throw new Error("no setup link");
      return new URL(issued.url).pathname;
    }
    const valid = { accountName: "Acme Inc.", name: "Ada Lovelace", email: "ada@example.com", password: "first admin passphrase" };

    it("refuses an account name with a right-to-left override: 422, the message at the account name field, nothing created", async () => {
      const path = await setupPath();
      const response = await new Browser(t.app).submit(path, path, { ...valid, accountName: "Acme\u202Egnp.exe" });
      expect(response.statusCode).toBe(422);
      expect(response.body).toContain(
        'id="f-accountName-error">An account name cannot contain invisible characters or text-direction controls.</p>',
      );
      expect(await t.ctx.db.selectFrom("accounts").select("id").execute()).toHaveLength(0);
    });

    it("a bad account name and a bad person's name fail with different codes (account_name_invalid, name_invalid), so forms pick the field by code", async () => {
      const token = (await setupPath()).split("/").pop() as string;
      const info = { ip: "127.0.0.1", userAgent: "test" };
      expect(await completeSetup(t.ctx, { token, ...valid, accountName: " ", info })).toMatchObject({
        ok: false,
        reason: "account_name_invalid",
      });
      expect(await completeSetup(t.ctx, { token, ...valid, name: " ", info })).toMatchObject({ ok: false, reason: "name_invalid" });
      expect(await createAccountWithAdmin(t.ctx, { name: "Acme\u202Egnp.exe", adminEmail: "a@example.com" })).toMatchObject({
        ok: false,
        reason: "account_name_invalid",
      });
    });

    it("refuses a person's name with a zero-width space: 422, the message at the name field, nothing created", async () => {
      const path = await setupPath();
      const response = await new Browser(t.app).submit(path, path, { ...valid, name: "Ada\u200B Lovelace" });
      expect(response.statusCode).toBe(422);
      expect(response.body).toContain('id="f-name-error">A name cannot contain invisible characters or text-direction controls.</p>');
      expect(await t.ctx.db.selectFrom("users").select("id").execute()).toHaveLength(0);
    });
  });

  describe("invitation acceptance and SSO", () => {
    let t: TestApp;
    let idp: TestIdp;
    const domain = `names-${newId().slice(0, 6)}.example`;
    beforeAll(async () => {
      t = await startTestApp(dialect);
      idp = await startTestIdp({ redirectUri: ssoRedirectUri(t.ctx) });
      const admin = await seedMember(t, { role: "admin", email: `admin@${domain}`, accountName: "Names SSO" });
      expect(
        (
          await connectSso(t.ctx, {
            accountId: admin.accountId,
            issuer: idp.issuer,
            clientId: idp.clientId,
            clientSecret: idp.clientSecret,
            domains: [domain],
          })
        ).ok,
      ).toBe(true);
    });
    afterAll(async () => {
      await idp?.close();
      await t?.close();
    });

    async function invitationPath(email: string): Promise<string> {
      const created = await createAccountWithAdmin(t.ctx, { name: "Invited Co", adminEmail: email });
      if (!created.ok) throw new Error(created.message);
      return new URL(created.value.invitationUrl).pathname;
    }

    it("the invitation form refuses each bidi control and invisible character in the name: 422 at the name field, no login made", async () => {
      const email = `new-${newId().slice(0, 8)}@example.com`;
      const path = await invitationPath(email);
      for (const [what, name] of DECEPTIVE) {
        const response = await new Browser(t.app).submit(path, path, { name, password: "a perfectly fine passphrase" });
        expect(response.statusCode, what).toBe(422);
        expect(response.body, what).toContain(
          'id="f-name-error">A name cannot contain invisible characters or text-direction controls.</p>',
        );
      }
      expect(await t.ctx.db.selectFrom("users").select("id").where("email", "=", email).executeTakeFirst()).toBeUndefined();
    });

    it("the invitation form keeps a Persian name with its zero-width non-joiner as typed", async () => {
      const email = `fa-${newId().slice(0, 8)}@example.com`;
      const path = await invitationPath(email);
      const response = await new Browser(t.app).submit(path, path, { name: GENUINE[0] as string, password: "a perfectly fine passphrase" });
      expect(response.statusCode, response.body).toBe(303);
      expect(await t.ctx.db.selectFrom("users").select("name").where("email", "=", email).executeTakeFirst()).toEqual({ name: GENUINE[0] });
    });

    it("an SSO member's name from the provider has bidi controls and zero-width characters stripped", async () => {
      const browser = new Browser(t.app);
      const started = await browser.request("POST", "/api/v1/login/sso", { json: { domain } });
      expect(started.statusCode, started.body).toBe(200);
      const email = `eve-${newId().slice(0, 8)}@${domain}`;
      idp.nextUser = { sub: `sub-${newId().slice(0, 10)}`, email, email_verified: true, name: "Eve\u202Egnp.exe\u200B" };
      const done = await browser.get(await idp.signIn(started.json<{ authorizationUrl: string }>().authorizationUrl));
      expect(done.statusCode, done.body).toBe(303);
      expect(await t.ctx.db.selectFrom("users").select("name").where("email", "=", email).executeTakeFirst()).toEqual({
        name: "Evegnp.exe",
      });
    });
  });

  it("latchkey account create refuses an account name with a right-to-left override: exit 1, the reason, nothing created", async () => {
    const database = await createTestDatabase(dialect);
    try {
      const env: Record<string, string> = {
        PATH: process.env["PATH"] ?? "",
        HOME: process.env["HOME"] ?? "",
        LOG_LEVEL: "silent",
        LATCHKEY_DATA_DIR: database.dataDir,
        LATCHKEY_SECRET_KEY: TEST_SECRET_KEY,
        ...(database.databaseUrl ? { DATABASE_URL: database.databaseUrl } : {}),
      };
      const run = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        execFile(
          process.execPath,
          [
            "--import",
            "tsx",
            join(process.cwd(), "src/cli.ts"),
            "account",
            "create",
            "--name",
            "Acme\u202Egnp.exe",
            "--admin-email",
            "a@example.com",
          ],
          { env, timeout: 45_000, cwd: process.cwd() },
          (error, stdout, stderr) => resolve({ code: error ? (typeof error.code === "number" ? error.code : -1) : 0, stdout, stderr }),
        );
      });
      expect(run.code).toBe(1);
      expect(run.stderr).toContain("An account name cannot contain invisible characters or text-direction controls.");
      expect(run.stdout).not.toMatch(/\/invite\//);
      const store = connect({ databaseUrl: database.databaseUrl, sqliteFile: database.sqliteFile });
      try {
        expect(await store.db.selectFrom("accounts").select("id").execute()).toHaveLength(0);
      } finally {
        await store.close();
      }
    } finally {
      await database.drop();
    }
  });
});
