import { afterAll, beforeAll, expect, it } from "vitest";
import { describeEachDialect } from "./helpers/dialects.js";
import { seedMember, signedInBrowser, startTestApp, type TestApp } from "./helpers/app.js";

/**
 * Team Members shows `teamMembersPageSize` members a page, by name, with Previous / Next (a 1,000-member account was
 * a megabyte of HTML on one page, issue 10). Here the page size is 3: at the size one page and no pager, past it two.
 */
const PAGE_SIZE = 3;

describeEachDialect("Team Members, a page at a time", (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(dialect, { limits: { teamMembersPageSize: PAGE_SIZE } });
  });
  afterAll(async () => {
    await t?.close();
  });

  /** Names in the members table of a page, in order (the Name cell; "(you)" marks the viewer). */
  const names = (body: string): string[] => [...body.matchAll(/<td data-label="Name">([^<]*)<\/td>/g)].map((m) => m[1] ?? "");
  const roleForms = (body: string): number => (body.match(/<select id="role-/g) ?? []).length;

  it("lists every member on one page, without a pager, when there are exactly as many as a page holds", async () => {
    const admin = await seedMember(t, { role: "admin", name: "Ann" });
    for (const name of ["Bob", "Cy"]) await seedMember(t, { accountId: admin.accountId, name });
    const page = await (await signedInBrowser(t, admin)).get("/settings/team");
    expect(page.statusCode).toBe(200);
    expect(names(page.body)).toEqual(["Ann (you)", "Bob", "Cy"]);
    expect(page.body).not.toContain('aria-label="Pages of members"');
  });

  it("past a page's size splits the members by name over pages with Previous and Next; invitations on the first page; whether an admin is the last one is counted over the whole account", async () => {
    // Two admins, one on each page: neither is the last admin, so both keep their role form (counted per page, each
    // page would see one admin and take it away).
    const admin = await seedMember(t, { role: "admin", name: "Zoe" });
    await seedMember(t, { accountId: admin.accountId, name: "Al", role: "admin" });
    for (const name of ["Dan", "Bea"]) await seedMember(t, { accountId: admin.accountId, name });
    const browser = await signedInBrowser(t, admin);
    expect(
      (await browser.request("POST", "/api/v1/team/invitations", { json: { email: "invited@example.com", role: "member" } })).statusCode,
    ).toBe(201);

    const first = await browser.get("/settings/team");
    expect(first.statusCode).toBe(200);
    expect(names(first.body)).toEqual(["Al", "Bea", "Dan", ""]);
    expect(first.body).toContain("invited@example.com");
    expect(first.body).toContain("Members 1–3 of 4, by name: page 1 of 2.");
    expect(first.body).toContain('<a href="/settings/team?page=2" rel="next">Next page</a>');
    expect(first.body).not.toContain('rel="prev"');
    expect(roleForms(first.body)).toBe(3);

    const second = await browser.get("/settings/team?page=2");
    expect(second.statusCode).toBe(200);
    expect(names(second.body)).toEqual(["Zoe (you)"]);
    expect(second.body).not.toContain("invited@example.com");
    expect(second.body).toContain("Members 4–4 of 4, by name: page 2 of 2.");
    expect(second.body).toContain('<a href="/settings/team" rel="prev">Previous page</a>');
    expect(second.body).not.toContain('rel="next"');
    expect(roleForms(second.body)).toBe(1);

    // A page past the end (members removed meanwhile) shows the last page.
    const past = await browser.get("/settings/team?page=999999");
    expect(past.statusCode).toBe(200);
    expect(names(past.body)).toEqual(["Zoe (you)"]);
  });

  it("answers a page that is not a page number with 400 and a clear message", async () => {
    const admin = await seedMember(t, { role: "admin" });
    const browser = await signedInBrowser(t, admin);
    for (const page of ["0", "-1", "1.5", "abc", "", "1e3", "1000000"]) {
      const response = await browser.get(`/settings/team?page=${encodeURIComponent(page)}`);
      expect(response.statusCode, page).toBe(400);
      expect(response.body, page).toContain("must be a page number: a whole number from 1");
    }
  });
});
