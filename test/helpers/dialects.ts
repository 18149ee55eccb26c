import { describe } from "vitest";
import type { Dialect } from "../../src/db/connect.js";
import { dialects, postgresAvailable } from "./databases.js";

// Asked once, when a test file that runs on both dialects is collected. In CI (CI=true) a missing PostgreSQL throws
// here and fails the file, never a silent skip; on a laptop without PostgreSQL its suites are skipped with a note.
const postgresUp = await postgresAvailable();

/** A second axis of a suite beside the dialect (e.g. the attempt store), named in the title: `name (sqlite, label)`. */
export interface SuiteVariant<Options> {
  label: string;
  options: Options;
}

/**
 * The suite once per dialect, titled `name (sqlite)` and `name (postgres)`; the PostgreSQL one is skipped only where
 * PostgreSQL is missing outside CI. With variants: once per dialect and variant, `name (sqlite, label)` and so on.
 */
export function describeEachDialect(name: string, fn: (dialect: Dialect) => void): void;
export function describeEachDialect<Options>(
  name: string,
  variants: ReadonlyArray<SuiteVariant<Options>>,
  fn: (dialect: Dialect, options: Options) => void,
): void;
export function describeEachDialect<Options>(
  name: string,
  variantsOrFn: ReadonlyArray<SuiteVariant<Options>> | ((dialect: Dialect) => void),
  maybeFn?: (dialect: Dialect, options: Options) => void,
): void {
  for (const dialect of dialects) {
    const skip = dialect === "postgres" && !postgresUp;
    if (typeof variantsOrFn === "function") {
      describe.skipIf(skip)(`${name} (${dialect})`, () => variantsOrFn(dialect));
      continue;
    }
    for (const variant of variantsOrFn) {
      describe.skipIf(skip)(`${name} (${dialect}, ${variant.label})`, () => maybeFn?.(dialect, variant.options));
    }
  }
}

/** A suite that needs PostgreSQL itself (no SQLite half), under the same rule: a failure in CI, a skip elsewhere. */
export function describeOnPostgres(name: string, fn: () => void): void {
  describe.skipIf(!postgresUp)(name, fn);
}
