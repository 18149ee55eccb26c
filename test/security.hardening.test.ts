import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildApp } from "../src/server.js";
import { createAccountWithAdmin } from "../src/team/accounts.js";
import { issueSetupLink } from "../src/team/setup.js";
import { Browser, csrfFrom, seedMember, signedInBrowser, startTestApp, type TestApp } from "./helpers/app.js";

describe("hardening", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp("sqlite");
  });
  afterAll(async () => {
    await t?.close();
  });

  it.each(["a@x.com,b@corp.com", "a@x.com;b@corp.com", '"a"@x.com', "a<b@corp.com>@x.com", "a(b)@x.com", "a@[127.0.0.1].com"])(
    "an invitation to an address with header structure (%s) is refused with 422 email_invalid and nothing is sent",
    async (email) => {
      const admin = await seedMember(t, { role: "admin" });
      const browser = await signedInBrowser(t, admin);
      const sent = t.mail.sent.length;
      const response = await browser.request("POST", "/api/v1/team/invitations", { json: { email, role: "member" } });
      expect(response.statusCode).toBe(422);
      expect(response.json().error).toBe("email_invalid");
      expect(t.mail.sent.length).toBe(sent);
    },
  );

  it("a setup link printed on an empty database is void once an account exists (e.g. made with the CLI)", async () => {
    const fresh = await startTestApp("sqlite");
    try {
      const setup = await issueSetupLink(fresh.ctx);
      expect(setup).not.toBeNull();
      const created = await createAccountWithAdmin(fresh.ctx, { name: "Made by CLI", adminEmail: "ops@example.com" });
      expect(created.ok).toBe(true);
      const browser = new Browser(fresh.app);
      const path = new URL(setup!.url).pathname;
      const page = await browser.get(path);
      expect(page.statusCode).toBe(410);
      const form = await fresh.app.inject({ method: "GET", url: "/login" });
      const cookie = form.cookies.map((c) => `${c.name}=${c.value}`).join("; ");
      const posted = await fresh.app.inject({
        method: "POST",
        url: path,
        headers: { cookie, "content-type": "application/x-www-form-urlencoded" },
        payload: new URLSearchParams({ _csrf: csrfFrom(form.body), accountName: "Hijack", name: "X", email: "x@example.com", password: "a long enough password" }).toString(),
      });
      expect(posted.statusCode).toBe(410);
      const accounts = await fresh.ctx.db.selectFrom("accounts").select("name").execute();
      expect(accounts.map((a) => a.name)).toEqual(["Made by CLI"]);
    } finally {
      await fresh.close();
    }
  });

  it("/dev/mail answers only requests addressed to a loopback name (no DNS rebinding)", async () => {
    const outbox = mkdtempSync(join(tmpdir(), "latchkey-outbox-"));
    const app = await buildApp(t.ctx, { logger: false, outboxDir: outbox });
    try {
      expect((await app.inject({ method: "GET", url: "/dev/mail", headers: { host: "localhost:3000" } })).statusCode).toBe(200);
      expect((await app.inject({ method: "GET", url: "/dev/mail", headers: { host: "127.0.0.1:3000" } })).statusCode).not.toBe(404);
      expect((await app.inject({ method: "GET", url: "/dev/mail", headers: { host: "evil.example" } })).statusCode).toBe(404);
      expect((await app.inject({ method: "GET", url: "/dev/mail/x.eml", headers: { host: "evil.example:3000" } })).statusCode).toBe(404);
    } finally {
      await app.close();
      rmSync(outbox, { recursive: true, force: true });
    }
  });
});
