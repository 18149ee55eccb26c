import type { AppContext, RequestInfo } from "../context.js";
import { securityNoticeMessage, type SecurityNoticeKind } from "../mail/messages.js";
import { urlTo } from "../paths.js";

/**
 * Emails a person about a change to their sign-in. A notice that cannot be sent must not undo or block the change
 * itself (the change is already committed), so failures are swallowed here and the audit log keeps the record.
 */
export async function notifyUser(
  ctx: AppContext,
  input: { userId: string; kind: SecurityNoticeKind; info: RequestInfo; facts?: Record<string, string | number> },
): Promise<void> {
  const user = await ctx.db.selectFrom("users").select("email").where("id", "=", input.userId).executeTakeFirst();
  if (!user) return;
  try {
    await ctx.mailer.send(
      securityNoticeMessage({
        to: user.email,
        productName: ctx.config.productName,
        kind: input.kind,
        ...(input.facts ? { facts: input.facts } : {}),
        when: new Date(ctx.clock.now()),
        ip: input.info.ip,
        userAgent: input.info.userAgent,
        settingsUrl: urlTo(ctx.config.publicUrl, "twoFactor"),
      }),
    );
  } catch {
    // Deliberately ignored: see above.
  }
}
