import { afterAll, beforeAll, expect, it } from "vitest";
import { describeEachDialect } from "./helpers/dialects.js";
import { seedMember, startTestApp, type TestApp } from "./helpers/app.js";
import { isUniqueViolation } from "../src/db/unique-violation.js";
import { newId } from "../src/auth/tokens.js";

describeEachDialect("unique violations are told apart from other database errors", (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(dialect);
  });
  afterAll(async () => {
    await t?.close();
  });

  async function errorOf(work: () => Promise<unknown>): Promise<unknown> {
    try {
      await work();
    } catch (error) {
      return error;
    }
    throw new Error("expected the database to refuse");
  }

  it("a second user with the same email is a unique violation; a missing value is not", async () => {
    const member = await seedMember(t);
    const user = (email: string, name: string | null) => ({
      id: newId(),
      email,
      name: name as string,
      password_hash: null,
      two_factor_method: "email_link" as const,
      created_at: 0,
      updated_at: 0,
    });
    const duplicate = await errorOf(() => t.ctx.db.insertInto("users").values(user(member.email, "Twin")).execute());
    expect(isUniqueViolation(duplicate)).toBe(true);
    const missing = await errorOf(() =>
      t.ctx.db
        .insertInto("users")
        .values(user(`${newId()}@example.com`, null))
        .execute(),
    );
    expect(isUniqueViolation(missing)).toBe(false);
    expect(isUniqueViolation(new Error("x"))).toBe(false);
    expect(isUniqueViolation(null)).toBe(false);
  });
});
