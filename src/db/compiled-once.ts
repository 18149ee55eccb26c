import type { Compilable, CompiledQuery, Kysely } from "kysely";
import type { Database } from "./schema.js";

/** What a named parameter is while its query is being compiled: a text no caller's value can be (it starts with NUL). */
const STAND_IN = "\u0000latchkey-parameter:";

/** Gives a query's named parameter a stand-in while it is compiled once, typed as the value it stands for. */
export type Param = <T>(name: string) => T;

type Slot = { name: string } | { constant: unknown };

/**
 * A query of a hot path built and compiled by Kysely once per dialect, with named stand-ins where its values go; each
 * call binds the real values by name and runs the same SQL text. Kysely otherwise builds and compiles every query on
 * every call, which for a query with a CASE or a sub-select cost several times running it (issue 10: the mail claim and
 * the attempt counter were a tenth of the password step's main-thread time). The built query must not depend on the
 * values (no lists of varying length): those are built per call as usual.
 */
export function compiledOnce<V extends Record<string, unknown>, R>(
  build: (db: Kysely<Database>, param: Param) => Compilable<R>,
): (db: Kysely<Database>, values: V) => CompiledQuery<R> {
  const compiled = new WeakMap<object, { query: CompiledQuery<R>; slots: Slot[] }>();
  return (db, values) => {
    const value = (name: string): unknown => {
      if (!(name in values)) throw new Error(`compiledOnce: no value for the parameter "${name}"`);
      return values[name];
    };
    const executor = db.getExecutor();
    // A handle with plugins (a test's injected failure, say) builds per call: plugins rewrite the query as it is
    // compiled, which a query compiled once for the plain handle would skip.
    if (executor.plugins.length > 0) return build(db, <T>(name: string) => value(name) as T).compile();
    // By the dialect's adapter, which a Kysely handle shares with its transactions: one compile per dialect in use.
    let entry = compiled.get(executor.adapter);
    if (entry === undefined) {
      const query = build(db, <T>(name: string) => `${STAND_IN}${name}` as T).compile();
      const slots = query.parameters.map((parameter): Slot =>
        typeof parameter === "string" && parameter.startsWith(STAND_IN)
          ? { name: parameter.slice(STAND_IN.length) }
          : { constant: parameter },
      );
      entry = { query, slots };
      compiled.set(executor.adapter, entry);
    }
    const parameters = entry.slots.map((slot) => ("constant" in slot ? slot.constant : value(slot.name)));
    return { ...entry.query, parameters };
  };
}
