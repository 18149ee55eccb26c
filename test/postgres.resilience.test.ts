import pg from "pg";
import { afterAll, beforeAll, expect, it } from "vitest";
import { POSTGRES_ADMIN_URL } from "./helpers/databases.js";
import { describeOnPostgres } from "./helpers/dialects.js";
import { Browser, seedMember, signedInBrowser, startTestApp, type TestApp } from "./helpers/app.js";

describeOnPostgres("when PostgreSQL ends Latchkey's idle connections", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp("postgres");
  });
  afterAll(async () => {
    await t?.close();
  });

  it("the process survives and the next requests work on fresh connections", async () => {
    const member = await seedMember(t);
    const browser = await signedInBrowser(t, member);
    const database = new URL(t.config.databaseUrl!).pathname.slice(1);
    const admin = new pg.Client({ connectionString: POSTGRES_ADMIN_URL });
    await admin.connect();
    const ended = await admin.query(
      "select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()",
      [database],
    );
    await admin.end();
    expect(ended.rowCount).toBeGreaterThan(0);
    // Give the pool a moment to notice the dead sockets (that is when pg emits the "error" event).
    await new Promise((resolve) => setTimeout(resolve, 200));
    let status = 0;
    // The first query on a connection that died without the pool noticing may fail once; then fresh ones serve.
    for (let i = 0; i < 3 && status !== 200; i++) status = (await browser.get("/api/v1/session")).statusCode;
    expect(status).toBe(200);
    expect(
      (await new Browser(t.app).request("POST", "/api/v1/login", { json: { email: member.email, password: member.password } })).statusCode,
    ).toBe(200);
  });
});
