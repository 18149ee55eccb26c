import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyDueSupportResets, approveSupportRequest, denySupportRequest } from "../src/team/support-recovery.js";
import { afterWrongCode, codeEntryLockedFor } from "../src/auth/code-limits.js";
import { newId } from "../src/auth/tokens.js";
import { describeEachDialect } from "./helpers/dialects.js";
import { Browser, csrfFrom, seedMember, startTestApp, type TestApp } from "./helpers/app.js";
import { enableAuthApp } from "./helpers/auth-app.js";

const HOURS_72 = 72 * 60 * 60;

async function ask(t: TestApp, email: string): Promise<Awaited<ReturnType<Browser["request"]>>> {
  const b = new Browser(t.app);
  const page = await b.get("/support");
  const answer = await b.request("POST", "/support", { form: { _csrf: csrfFrom(page.body), email, message: "Lost my phone" } });
  // The request is recorded and emailed after the answer has gone out.
  await t.app.afterResponse.settled();
  return answer;
}

/** Runs an operator's command on the domain, then delivers the mail it queued (as the CLI does before it exits). */
async function asOperator<T>(t: TestApp, command: Promise<T>): Promise<T> {
  const result = await command;
  await t.deliverMail();
  return result;
}

/** Opens the emailed confirmation link and presses the button, as the owner would. */
async function confirmFromInbox(t: TestApp, email: string): Promise<string> {
  const b = new Browser(t.app);
  const link = t.mail.lastLink(email);
  const page = await b.get(link);
  expect(page.statusCode).toBe(200);
  const done = await b.request("POST", new URL(link).pathname, { form: { _csrf: csrfFrom(page.body) } });
  expect(done.statusCode).toBe(200);
  const id = /reference: ([0-9a-f]{32})/.exec(done.body)?.[1];
  expect(id).toBeDefined();
  return id!;
}

describeEachDialect("support recovery", (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(dialect);
  });
  afterAll(async () => {
    await t?.close();
  });

  it("answers the same for an unknown address and emails only a registered one", async () => {
    const member = await seedMember(t);
    const sentBefore = t.mail.sent.length;
    const unknown = await ask(t, "nobody-here@example.com");
    expect(unknown.statusCode).toBe(200);
    expect(t.mail.sent.length).toBe(sentBefore);
    const known = await ask(t, member.email.toUpperCase());
    expect(known.statusCode).toBe(200);
    expect(known.body.replace(/name="_csrf" value="[^"]+"/g, "")).toBe(unknown.body.replace(/name="_csrf" value="[^"]+"/g, ""));
    expect(t.mail.last(member.email)?.subject).toContain("Confirm your Latchkey two-factor reset request");
  });

  it("opening the confirmation link changes nothing until the owner presses the button", async () => {
    const member = await seedMember(t);
    await ask(t, member.email);
    const page = await new Browser(t.app).get(t.mail.lastLink(member.email));
    expect(page.body).toContain("Confirm my request");
    const row = await t.ctx.db
      .selectFrom("support_requests")
      .select("status")
      .where("user_id", "=", member.userId)
      .executeTakeFirstOrThrow();
    expect(row.status).toBe("unconfirmed");
    const id = (await t.ctx.db.selectFrom("support_requests").select("id").where("user_id", "=", member.userId).executeTakeFirstOrThrow())
      .id;
    const early = await asOperator(t, approveSupportRequest(t.ctx, { id, operator: "test" }));
    expect(early.ok).toBe(false);
  });

  it("an approved reset waits 72 hours, then removes the auth app and ends every session", async () => {
    const member = await seedMember(t);
    const { browser } = await enableAuthApp(t, member);
    await ask(t, member.email);
    const id = await confirmFromInbox(t, member.email);
    const approved = await asOperator(t, approveSupportRequest(t.ctx, { id, operator: "alice", note: "called back on file number" }));
    expect(approved.ok).toBe(true);
    expect(t.mail.last(member.email)?.subject).toContain("reset is scheduled");
    t.clock.advanceSeconds(HOURS_72 - 60);
    expect(await asOperator(t, applyDueSupportResets(t.ctx))).toBe(0);
    // Keep the browser's session alive through the wait would need activity; check the user row instead.
    t.clock.advanceSeconds(60);
    expect(await asOperator(t, applyDueSupportResets(t.ctx))).toBe(1);
    expect(await asOperator(t, applyDueSupportResets(t.ctx))).toBe(0);
    const user = await t.ctx.db.selectFrom("users").selectAll().where("id", "=", member.userId).executeTakeFirstOrThrow();
    expect(user.two_factor_method).toBe("email_link");
    expect(user.totp_secret_sealed).toBeNull();
    expect(await t.ctx.db.selectFrom("recovery_codes").select("id").where("user_id", "=", member.userId).execute()).toHaveLength(0);
    expect(await t.ctx.db.selectFrom("sessions").select("id").where("user_id", "=", member.userId).execute()).toHaveLength(0);
    expect((await browser.get("/api/v1/session")).statusCode).toBe(401);
    expect(t.mail.last(member.email)?.subject).toContain("two-factor authentication was reset");
    const events = await t.ctx.db
      .selectFrom("audit_events")
      .select("type")
      .where("user_id", "=", member.userId)
      .where("type", "like", "support.%")
      .execute();
    expect(events.map((e) => e.type).sort()).toEqual([
      "support.approved",
      "support.confirmed",
      "support.requested",
      "support.reset_completed",
    ]);
    const api = new Browser(t.app);
    expect((await api.request("POST", "/api/v1/login", { json: { email: member.email, password: member.password } })).json()).toEqual({
      next: "email_link",
    });
  });

  it("a completed reset forgets the code-entry lock and its doubling: the next lock is the first length again", async () => {
    const member = await seedMember(t);
    await enableAuthApp(t, member);
    const { limits } = t.config;
    const info = { ip: "127.0.0.1", userAgent: "test" };
    expect(await afterWrongCode(t.ctx, member.userId, limits.codeFailuresPerUser, info)).toBe(limits.codeLockSeconds);
    await ask(t, member.email);
    const id = await confirmFromInbox(t, member.email);
    expect((await asOperator(t, approveSupportRequest(t.ctx, { id, operator: "alice" }))).ok).toBe(true);
    t.clock.advanceSeconds(HOURS_72);
    expect(await asOperator(t, applyDueSupportResets(t.ctx))).toBe(1);
    expect(await codeEntryLockedFor(t.ctx, member.userId)).toBe(0);
    expect(await afterWrongCode(t.ctx, member.userId, limits.codeFailuresPerUser, info)).toBe(limits.codeLockSeconds);
  });

  it("the owner can cancel an approved reset from their inbox, and nothing changes", async () => {
    const member = await seedMember(t);
    await enableAuthApp(t, member);
    await ask(t, member.email);
    const id = await confirmFromInbox(t, member.email);
    await asOperator(t, approveSupportRequest(t.ctx, { id, operator: "alice" }));
    const cancelLink = t.mail.lastLink(member.email);
    const owner = new Browser(t.app);
    const page = await owner.get(cancelLink);
    expect(page.body).toContain("Cancel the reset");
    const cancelled = await owner.request("POST", new URL(cancelLink).pathname, { form: { _csrf: csrfFrom(page.body) } });
    expect(cancelled.statusCode).toBe(200);
    expect(cancelled.body).toContain("Reset cancelled");
    t.clock.advanceSeconds(HOURS_72 + 1);
    expect(await asOperator(t, applyDueSupportResets(t.ctx))).toBe(0);
    const user = await t.ctx.db.selectFrom("users").select("two_factor_method").where("id", "=", member.userId).executeTakeFirstOrThrow();
    expect(user.two_factor_method).toBe("auth_app");
    expect((await owner.get(cancelLink)).statusCode).toBe(410);
  });

  it("a denied request changes nothing and tells the person", async () => {
    const member = await seedMember(t);
    await ask(t, member.email);
    const id = await confirmFromInbox(t, member.email);
    expect((await asOperator(t, denySupportRequest(t.ctx, { id, operator: "bob" }))).ok).toBe(true);
    expect(t.mail.last(member.email)?.subject).toContain("declined");
    expect((await asOperator(t, approveSupportRequest(t.ctx, { id }))).ok).toBe(false);
  });

  it("accepts 3 requests per address a day and refuses the 4th; a bad email is refused with a message", async () => {
    const member = await seedMember(t);
    for (let i = 0; i < 3; i++) expect((await ask(t, member.email)).statusCode).toBe(200);
    const fourth = await ask(t, member.email);
    expect(fourth.statusCode).toBe(429);
    expect(fourth.body).toContain("Too many requests for this address today");
    const bad = await ask(t, "not an email");
    expect(bad.statusCode).toBe(422);
  });

  it("a support message with a NUL byte is refused with a 4xx whether or not the address has a login", async () => {
    const member = await seedMember(t, { accountName: "Support" });
    for (const email of [member.email, `nobody-${newId().slice(0, 8)}@example.com`]) {
      const b = new Browser(t.app);
      const response = await b.submit("/support", "/support", { email, message: "lost my phone\u0000" });
      expect(response.statusCode, `${email}: ${response.body.slice(0, 200)}`).toBe(400);
    }
    // Ordinary line breaks stay allowed.
    const ok = await new Browser(t.app).submit("/support", "/support", {
      email: member.email,
      message: "Lost my phone.\r\nCall me\tplease.",
    });
    expect(ok.statusCode).toBe(200);
  });

  it("accepts 10 requests from one IP address an hour and refuses the 11th, for any addresses", async () => {
    t.clock.advanceSeconds(2 * 60 * 60);
    for (let i = 0; i < 10; i++) expect((await ask(t, `someone-${i}@example.com`)).statusCode).toBe(200);
    const eleventh = await ask(t, "someone-else@example.com");
    expect(eleventh.statusCode).toBe(429);
    expect(eleventh.body).toContain("Too many requests from your network");
    t.clock.advanceSeconds(60 * 60);
    expect((await ask(t, "someone-else@example.com")).statusCode).toBe(200);
  });
});

describe("latchkey support (CLI)", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "latchkey-support-cli-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      execFile(
        process.execPath,
        ["--import", "tsx", "src/cli.ts", ...args],
        { env: { ...process.env, LATCHKEY_DATA_DIR: dir, LOG_LEVEL: "silent", CI: "" }, timeout: 60_000 },
        (error, stdout, stderr) => resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
    });
  }

  it("lists an empty queue, and refuses to show or approve an unknown request with a clear message", async () => {
    const list = await cli("support", "list");
    expect(list.code).toBe(0);
    expect(list.stdout).toContain("No support requests waiting");
    const show = await cli("support", "show", "0123456789abcdef0123456789abcdef");
    expect(show.code).toBe(1);
    expect(show.stderr).toContain("no support request");
    const approve = await cli("support", "approve", "nope");
    expect(approve.code).toBe(1);
    expect(approve.stderr).toContain("No support request nope");
    const help = await cli("support", "--help");
    expect(help.stdout).toMatch(/list[\s\S]*show[\s\S]*approve[\s\S]*deny/);
  });
});
