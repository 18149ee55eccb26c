import type { Migration, MigrationProvider } from "kysely";
import * as m0001 from "./0001_core.js";

/** Every migration, in order. Listed statically so they work the same from `src` (tsx) and `dist` (node). */
const migrations: Record<string, Migration> = {
  "0001_core": m0001,
};

export const migrationProvider: MigrationProvider = {
  getMigrations: async () => migrations,
};
