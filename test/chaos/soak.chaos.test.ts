import { expect, it } from "vitest";
import { describeEachDialect } from "../helpers/dialects.js";
import { runSoak } from "../../bench/soak.js";

// The short form of `npm run soak` (bench/soak.ts): the same mixed load for 20 s. RSS stability needs the long run,
// whose last result is in docs/soak.md.
describeEachDialect("a short soak under steady mixed load", (dialect) => {
  it("answers every request without a 5xx and logs no error", async () => {
    const result = await runSoak({ seconds: 20, dialect, checksPerSecond: 50, signInsPerSecond: 1, teamActionsPerSecond: 0.5 });
    expect(result.serverErrors).toEqual([]);
    expect(result.logErrors).toEqual([]);
    expect(result.unanswered).toBe(0);
    expect(result.signIns).toBeGreaterThan(10);
    expect(result.requests).toBeGreaterThan(800);
  }, 120_000);
});
