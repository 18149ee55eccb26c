import type { Migration, MigrationProvider } from "kysely";
import * as m0001 from "./0001_core.js";
import * as m0002 from "./0002_auth_app.js";
import * as m0003 from "./0003_support_recovery.js";
import * as m0004 from "./0004_sso.js";
import * as m0005 from "./0005_oidc_provider.js";
import * as m0006 from "./0006_api_tokens.js";
import * as m0008 from "./0008_housekeeping.js";
import * as m0009 from "./0009_password_resets.js";
import * as m0010 from "./0010_email_changes.js";

/** Every migration, in order. Listed statically so they work the same from `src` (tsx) and `dist` (node). */
const migrations: Record<string, Migration> = {
  "0001_core": m0001,
  "0002_auth_app": m0002,
  "0003_support_recovery": m0003,
  "0004_sso": m0004,
  "0005_oidc_provider": m0005,
  "0006_api_tokens": m0006,
  "0008_housekeeping": m0008,
  "0009_password_resets": m0009,
  "0010_email_changes": m0010,
};

export const migrationProvider: MigrationProvider = {
  getMigrations: async () => migrations,
};
