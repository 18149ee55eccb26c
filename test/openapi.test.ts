import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { routes } from "../src/paths.js";
import { createApiToken } from "../src/auth/api-tokens.js";
import { seedMember, signedInBrowser, startTestApp, type Browser, type TestApp } from "./helpers/app.js";

const run = promisify(execFile);

describe("the OpenAPI document", () => {
  let t: TestApp;
  beforeAll(async () => {
    // A public URL that is not localhost: the document's server is what an operator would publish.
    t = await startTestApp("sqlite", { env: { LATCHKEY_PUBLIC_URL: "https://auth.acme.test" } });
  });
  afterAll(async () => {
    await t?.close();
  });

  async function documentText(): Promise<string> {
    const response = await t.app.inject({ method: "GET", url: "/api/v1/openapi.json" });
    expect(response.statusCode).toBe(200);
    return response.body;
  }

  it("describes every /api/v1 route the server answers, with the same methods, and nothing it does not", async () => {
    const doc = JSON.parse(await documentText()) as { openapi: string; paths: Record<string, Record<string, unknown>> };
    expect(doc.openapi).toBe("3.1.0");
    const documented = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.keys(ops).map((m) => `${m.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ":$1")}`),
    );
    const served = t.app.latchkeyRoutes.filter((r) => r.split(" ")[1]!.startsWith("/api/v1/"));
    expect(served.length).toBeGreaterThan(15);
    expect([...documented].sort()).toEqual([...served].sort());
  });

  it("passes Redocly's recommended ruleset with zero errors (the one warning: the document itself cannot fail with a 4xx)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "latchkey-openapi-"));
    try {
      const file = join(dir, "openapi.json");
      writeFileSync(file, await documentText());
      const result = await run(
        join(process.cwd(), "node_modules", ".bin", "redocly"),
        ["lint", file, "--extends=recommended", "--format=summary"],
        { env: { ...process.env, REDOCLY_TELEMETRY: "off", REDOCLY_SUPPRESS_UPDATE_NOTICE: "true" } },
      ).catch((error: { stdout: string; stderr: string }) => ({
        stdout: error.stdout,
        stderr: `${error.stderr}\n(redocly exited non-zero)`,
      }));
      const output = `${result.stdout}\n${result.stderr}`;
      expect(output, output).not.toContain("non-zero");
      expect(output, output).toMatch(/valid/i);
      expect(output, output).not.toMatch(/^error/im);
      const warnings = [...output.matchAll(/^warning (\S+): (\d+)/gm)].map((m) => `${m[1]}: ${m[2]}`);
      expect(warnings).toEqual(["operation-4xx-response: 1"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it("documents every error an operation answers: an unauthenticated call's 401 and a forced-setup 403 are in the document", async () => {
    const doc = JSON.parse(await documentText()) as {
      paths: Record<string, Record<string, { responses: Record<string, { description: string }> }>>;
    };
    const verify = doc.paths["/api/v1/verify"]!["get"]!;
    expect(verify.responses["401"]!.description).toContain("unauthenticated");
    expect(verify.responses["403"]!.description).toContain("two_factor_setup_required");
    const login = doc.paths["/api/v1/login"]!["post"]!;
    expect(Object.keys(login.responses)).toEqual(expect.arrayContaining(["200", "400", "401", "403", "413", "415", "429", "503"]));
    // The session check stays open during forced setup (a client must see why), so it does not list that 403.
    expect(doc.paths["/api/v1/session"]!["get"]!.responses["403"]).toBeUndefined();
  });

  it("documents the operator API under the bearer scheme: a token, never a cookie, and no session rules", async () => {
    const doc = JSON.parse(await documentText()) as {
      paths: Record<string, Record<string, { security: unknown; tags: string[]; responses: Record<string, { description: string }> }>>;
      components: { securitySchemes: Record<string, Record<string, string>> };
    };
    expect(doc.components.securitySchemes["bearer"]).toMatchObject({ type: "http", scheme: "bearer" });
    const operator = Object.entries(doc.paths)
      .filter(([path]) => path.startsWith("/api/v1/admin/"))
      .flatMap(([path, ops]) => Object.entries(ops).map(([method, op]) => ({ name: `${method.toUpperCase()} ${path}`, op })));
    expect(operator.map((o) => o.name).sort()).toEqual([
      "DELETE /api/v1/admin/accounts/{id}/members/{userId}",
      "GET /api/v1/admin/accounts",
      "GET /api/v1/admin/accounts/{id}",
      "POST /api/v1/admin/accounts",
      "POST /api/v1/admin/accounts/{id}/invitations",
    ]);
    for (const { name, op } of operator) {
      expect(op.security, name).toEqual([{ bearer: [] }]);
      expect(op.tags, name).toEqual(["Operator"]);
      expect(op.responses["401"]!.description, name).toContain("unauthenticated");
      expect(op.responses["401"]!.description, name).toContain("invalid_token");
      // Neither the two-factor policy nor the CSRF check (there is no cookie to ride on) can refuse an operator call.
      expect(op.responses["403"], name).toBeUndefined();
    }
    expect(doc.paths["/api/v1/admin/accounts/{id}/members/{userId}"]!["delete"]!.responses["409"]!.description).toContain("last_admin");
    // No other operation accepts the token.
    for (const [path, ops] of Object.entries(doc.paths))
      if (!path.startsWith("/api/v1/admin/"))
        for (const op of Object.values(ops)) expect(JSON.stringify(op.security), path).not.toContain("bearer");
  });

  it("every operator GET answers an API token with the shape it declares", async () => {
    const created = await createApiToken(t.ctx, { name: "openapi" });
    if (!created.ok) throw new Error(created.message);
    const admin = await seedMember(t, { role: "admin" });
    const gets = t.app.apiOperations.filter((op) => op.method === "GET" && op.access === "operator");
    expect(gets.length).toBe(2);
    for (const op of gets) {
      const response = await t.app.inject({
        method: "GET",
        url: routes[op.route].replace(":id", admin.accountId),
        headers: { authorization: `Bearer ${created.value.token}` },
      });
      expect(response.statusCode, `${op.operationId}: ${response.body.slice(0, 200)}`).toBe(op.ok.status);
      const parsed = op.ok.schema!.safeParse(response.json());
      expect(parsed.success, `${op.operationId}: ${JSON.stringify(parsed.error?.issues)}`).toBe(true);
    }
  });

  it("every GET operation answers an Account Admin with the shape it declares", async () => {
    const admin = await seedMember(t, { role: "admin" });
    await seedMember(t, { accountId: admin.accountId });
    const browser: Browser = await signedInBrowser(t, admin);
    await browser.request("POST", routes.apiTeamInvitations, {
      json: { email: "new-person@example.com", role: "member" },
      headers: { origin: t.config.publicUrl.origin },
    });
    const gets = t.app.apiOperations.filter((op) => op.method === "GET" && op.access !== "operator" && !routes[op.route].includes(":"));
    expect(gets.length).toBeGreaterThan(6);
    for (const op of gets) {
      const response = await browser.get(routes[op.route]);
      expect(response.statusCode, `${op.operationId}: ${response.body.slice(0, 200)}`).toBe(op.ok.status);
      if (op.ok.schema) {
        const parsed = op.ok.schema.safeParse(response.json());
        expect(parsed.success, `${op.operationId}: ${JSON.stringify(parsed.error?.issues)}`).toBe(true);
      }
    }
  });
});
