import type { AppContext } from "../context.js";
import type { MailMessage } from "./mailer.js";

export interface QueueMailOptions {
  /**
   * Messages that replace one another (e.g. `challenge:<id>` for sign-in links): a newer message with the same key
   * supersedes an older one not yet delivered, so a person is never sent a link that is already void.
   */
  key?: string;
}

/**
 * Hands a message to Latchkey's mail. Call it with the same `ctx` (e.g. `withTx(ctx, tx)`) as the change that causes
 * the message, so the two commit together.
 *
 * Interim implementation: sends at once through the mailer. The durable queue (issue 11) replaces the body of this
 * function; callers do not change.
 */
export async function queueMail(
  ctx: Pick<AppContext, "db" | "mailer">,
  message: MailMessage,
  options: QueueMailOptions = {},
): Promise<void> {
  void options;
  await ctx.mailer.send(message);
}
