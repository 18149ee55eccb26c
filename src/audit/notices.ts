import type { AppContext, RequestInfo } from "../context.js";
import { securityNoticeMessage, type SecurityNoticeKind } from "../mail/messages.js";
import { queueMail } from "../mail/queue.js";
import { urlTo } from "../paths.js";

/**
 * Emails a person about a change to their sign-in: queued with `ctx` — call it inside the change's transaction
 * (`withTx`) where there is one, so the notice goes out exactly when the change is made. A mail server that fails
 * delays the notice (the queue retries it); it never blocks or undoes the change.
 */
export async function notifyUser(
  ctx: AppContext,
  input: { userId: string; kind: SecurityNoticeKind; info: RequestInfo; facts?: Record<string, string | number> },
): Promise<void> {
  const user = await ctx.db.selectFrom("users").select("email").where("id", "=", input.userId).executeTakeFirst();
  if (!user) return;
  await queueMail(
    ctx,
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
}
