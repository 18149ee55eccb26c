import { ESLint } from "eslint";
import { describe, expect, it } from "vitest";

/** The layering of the README is a lint rule, run by `npm test`: these prove the rule can fail. */
describe("the layering lint rule", () => {
  const eslint = new ESLint({ cwd: process.cwd() });

  async function restricted(filePath: string, code: string): Promise<string[]> {
    const [result] = await eslint.lintText(code, { filePath });
    return (result?.messages ?? []).filter((m) => m.ruleId === "no-restricted-imports").map((m) => m.message);
  }

  it("refuses a domain module that imports the web framework or the HTTP layer", async () => {
    const messages = await restricted(
      "src/auth/example.ts",
      'import type { FastifyReply } from "fastify";\nimport { sendError } from "../http/errors.js";\nexport const x = (r: FastifyReply): unknown => [r, sendError];\n',
    );
    expect(messages).toHaveLength(2);
    expect(messages[0]).toContain("Domain code has no HTTP in it");
  });

  it("refuses prom-client anywhere but src/observability/prometheus.ts: the rest reports through ctx.metrics", async () => {
    const code = 'import { Counter } from "prom-client";\nexport const x = Counter;\n';
    for (const file of ["src/auth/example.ts", "src/http/example.ts", "src/observability/example.ts"]) {
      const messages = await restricted(file, code);
      expect(messages, file).toHaveLength(1);
      expect(messages[0]).toContain("Report through ctx.metrics");
    }
    expect(await restricted("src/observability/prometheus.ts", code)).toEqual([]);
  });

  it("refuses a view that queries the database or calls the domain", async () => {
    const messages = await restricted(
      "src/http/views/example.ts",
      'import { listTeamMembers } from "../../team/members.js";\nexport const x = listTeamMembers;\n',
    );
    expect(messages).toHaveLength(1);
  });

  it("lets a view import the domain's types, and a domain module import its own layer", async () => {
    expect(
      await restricted(
        "src/http/views/example.ts",
        'import type { TeamMember } from "../../team/members.js";\nexport type X = TeamMember;\n',
      ),
    ).toEqual([]);
    expect(
      await restricted("src/team/example.ts", 'import { hashToken } from "../auth/tokens.js";\nexport const x = hashToken;\n'),
    ).toEqual([]);
  });
});
