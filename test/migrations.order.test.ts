import { Migrator } from "kysely";
import { expect, it } from "vitest";
import { connect, migrateToLatest } from "../src/db/connect.js";
import { migrationProvider } from "../src/db/migrations/index.js";
import { createTestDatabase } from "./helpers/databases.js";
import { describeEachDialect } from "./helpers/dialects.js";

describeEachDialect("migrations landing out of order", (dialect) => {
  it("a database that already has a later migration still gets an earlier-numbered one that arrived after it", async () => {
    const database = await createTestDatabase(dialect);
    const store = connect({ databaseUrl: database.databaseUrl, sqliteFile: database.sqliteFile });
    try {
      const all = await migrationProvider.getMigrations();
      const names = Object.keys(all).sort();
      const earlier = names[names.length - 2]!;
      // As a release without `earlier` left it: every migration but that one applied, the last one included.
      const without = new Migrator({
        db: store.db,
        provider: { getMigrations: async () => Object.fromEntries(Object.entries(all).filter(([name]) => name !== earlier)) },
        migrationTableName: "latchkey_migrations",
        migrationLockTableName: "latchkey_migrations_lock",
      });
      expect((await without.migrateToLatest()).error).toBeUndefined();

      const result = await migrateToLatest(store.db);
      expect(result.results?.map((r) => [r.migrationName, r.status])).toEqual([[earlier, "Success"]]);
      expect((await migrateToLatest(store.db)).results).toEqual([]);
    } finally {
      await store.close();
      await database.drop();
    }
  });
});
