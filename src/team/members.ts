import type { AppContext } from "../context.js";
import type { Role } from "../db/schema.js";

export interface TeamMember {
  userId: string;
  name: string;
  email: string;
  role: Role;
  /** What the Team Members page shows: SSO members have no Latchkey second factor. */
  method: "email_link" | "auth_app" | "sso";
  lastSignInAt: number | null;
}

export async function listTeamMembers(ctx: Pick<AppContext, "db">, accountId: string): Promise<TeamMember[]> {
  const rows = await ctx.db
    .selectFrom("memberships")
    .innerJoin("users", "users.id", "memberships.user_id")
    .select(["users.id", "users.name", "users.email", "users.two_factor_method", "memberships.role", "memberships.sign_in_method", "memberships.last_sign_in_at"])
    .where("memberships.account_id", "=", accountId)
    .orderBy("users.name")
    .execute();
  return rows.map((r) => ({
    userId: r.id,
    name: r.name,
    email: r.email,
    role: r.role,
    method: r.sign_in_method === "sso" ? "sso" : r.two_factor_method,
    lastSignInAt: r.last_sign_in_at,
  }));
}
