import { createRequire } from "node:module";
import type * as KyselyModule from "kysely";

/**
 * Kysely's values (the `sql` tag, the classes `connect` builds), taken from its CommonJS build. Its ES module build is
 * some 400 modules through Node's ESM loader: loading it cost 18 MB of RSS where the CommonJS build costs 11.6 MB —
 * the idle server's footprint goal (issue 10). Types still come from "kysely" (`import type`). Every value import of
 * Kysely in src/ goes through here (eslint: no-restricted-imports), so only one copy is ever loaded.
 */
const kysely = createRequire(import.meta.url)("kysely") as typeof KyselyModule;

export const { sql, Kysely: KyselyClass, Migrator, PostgresDialect, SqliteDialect } = kysely;
