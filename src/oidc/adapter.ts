import type { Kysely } from "kysely";
import type { Adapter, AdapterPayload } from "oidc-provider";
import type { AppContext } from "../context.js";
import type { Database } from "../db/schema.js";
import { clientMetadata } from "./clients.js";

/**
 * oidc-provider's storage in the database (`oidc_models`), so every instance serves every session, code and token, on
 * SQLite and PostgreSQL alike. One row per model instance: the library's payload as JSON text, plus the columns it
 * looks things up by. An expired row is as good as gone (`find` ignores it; housekeeping deletes it later).
 * Times come from the injected clock; the library's own `exp` checks use the system clock, as it always does.
 */
/**
 * A value worth looking up: what the library generates (ids, uids, codes) is short URL-safe text. Anything else names
 * nothing (only printable ASCII is looked up), and is answered "not found" before the database sees it (PostgreSQL refuses text with a NUL byte, which
 * would otherwise be a 500).
 */
function isLookupValue(value: unknown): value is string {
  return typeof value === "string" && value.length > 0 && value.length <= 512 && /^[\x21-\x7e]+$/.test(value);
}

export class KyselyAdapter implements Adapter {
  constructor(
    private readonly ctx: Pick<AppContext, "db" | "clock">,
    private readonly model: string,
  ) {}

  async upsert(id: string, payload: AdapterPayload, expiresIn: number | undefined): Promise<void> {
    const now = this.ctx.clock.now();
    const row = {
      payload: JSON.stringify(payload),
      // A Grant is looked up by its own id when its tokens are revoked: it carries its id as its grant.
      grant_id: typeof payload.grantId === "string" ? payload.grantId : this.model === "Grant" ? id : null,
      user_code: typeof payload.userCode === "string" ? payload.userCode : null,
      uid: typeof payload.uid === "string" ? payload.uid : null,
      expires_at: typeof expiresIn === "number" ? now + expiresIn * 1000 : null,
      // As in the library's own adapter, saving an instance replaces it whole: a saved instance is not consumed.
      consumed_at: null,
    };
    await this.ctx.db
      .insertInto("oidc_models")
      .values({ model: this.model, id, ...row })
      .onConflict((oc) => oc.columns(["model", "id"]).doUpdateSet(row))
      .execute();
  }

  async find(id: string): Promise<AdapterPayload | undefined> {
    return this.findBy("id", id);
  }

  async findByUid(uid: string): Promise<AdapterPayload | undefined> {
    return this.findBy("uid", uid);
  }

  async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
    return this.findBy("user_code", userCode);
  }

  /** Marks a code or token as used: the library refuses (and revokes the grant of) a replayed one. */
  async consume(id: string): Promise<void> {
    await this.ctx.db
      .updateTable("oidc_models")
      .set({ consumed_at: this.ctx.clock.now() })
      .where("model", "=", this.model)
      .where("id", "=", id)
      .execute();
  }

  async destroy(id: string): Promise<void> {
    await this.ctx.db.deleteFrom("oidc_models").where("model", "=", this.model).where("id", "=", id).execute();
  }

  async revokeByGrantId(grantId: string): Promise<void> {
    await this.ctx.db.deleteFrom("oidc_models").where("model", "=", this.model).where("grant_id", "=", grantId).execute();
  }

  private async findBy(column: "id" | "uid" | "user_code", value: string): Promise<AdapterPayload | undefined> {
    if (!isLookupValue(value)) return undefined;
    const now = this.ctx.clock.now();
    const row = await this.ctx.db
      .selectFrom("oidc_models")
      .select(["payload", "consumed_at"])
      .where("model", "=", this.model)
      .where(column, "=", value)
      .where((eb) => eb.or([eb("expires_at", "is", null), eb("expires_at", ">", now)]))
      .executeTakeFirst();
    if (!row) return undefined;
    const payload = JSON.parse(row.payload) as AdapterPayload;
    return row.consumed_at === null ? payload : { ...payload, consumed: Math.floor(row.consumed_at / 1000) };
  }
}

/**
 * Clients come from the operator's table (`latchkey client create`), never from dynamic registration: the library
 * asks this adapter for a client's metadata by id; anything else it might ask of it is refused.
 */
class ClientAdapter implements Adapter {
  constructor(private readonly ctx: Pick<AppContext, "db">) {}

  async find(id: string): Promise<AdapterPayload | undefined> {
    if (!isLookupValue(id)) return undefined;
    const row = await this.ctx.db.selectFrom("oidc_clients").selectAll().where("client_id", "=", id).executeTakeFirst();
    return row ? (clientMetadata(row) as AdapterPayload) : undefined;
  }

  async upsert(): Promise<void> {
    throw new Error("clients are registered with `latchkey client create`, not by the provider");
  }
  async findByUid(): Promise<undefined> {
    return undefined;
  }
  async findByUserCode(): Promise<undefined> {
    return undefined;
  }
  async consume(): Promise<void> {}
  async destroy(): Promise<void> {}
  async revokeByGrantId(): Promise<void> {}
}

/** The adapter factory for the provider's configuration: one adapter per model name. */
export function adapterFactory(ctx: Pick<AppContext, "db" | "clock">): (model: string) => Adapter {
  return (model: string) => (model === "Client" ? new ClientAdapter(ctx) : new KyselyAdapter(ctx, model));
}

/** Revokes everything issued under a grant (codes, access and refresh tokens) and the grant itself. */
export async function revokeGrant(db: Kysely<Database>, grantId: string): Promise<void> {
  await db.deleteFrom("oidc_models").where("grant_id", "=", grantId).execute();
}
