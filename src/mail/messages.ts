import { html, type SafeHtml } from "../html.js";
import type { MailMessage } from "./mailer.js";

interface Layout {
  to: string;
  subject: string;
  productName: string;
  /** Paragraphs of plain text; the HTML body shows the same words. */
  paragraphs: string[];
  action?: { label: string; url: string };
  /** Closing paragraph: what to do if this was not you. */
  footer: string;
}

/** One layout for every email: the same words in text and HTML, the action as a button and as a plain URL. */
function compose(layout: Layout): MailMessage {
  const text = [
    ...layout.paragraphs,
    ...(layout.action ? [`${layout.action.label}:\n${layout.action.url}`] : []),
    layout.footer,
    `— ${layout.productName}`,
  ].join("\n\n");
  const button: SafeHtml | string = layout.action
    ? html`<p><a href="${layout.action.url}" style="display:inline-block;padding:10px 18px;background:#1f4fd1;color:#fff;border-radius:6px;text-decoration:none">${layout.action.label}</a></p>
<p style="color:#555;font-size:13px">Or copy this address into the same browser:<br><span style="word-break:break-all">${layout.action.url}</span></p>`
    : "";
  const body = html`<!doctype html><html><body style="font-family:system-ui,sans-serif;line-height:1.5;color:#1a1a1a;max-width:560px">
${layout.paragraphs.map((p) => html`<p>${p}</p>`)}
${button}
<p style="color:#555;font-size:13px">${layout.footer}</p>
<p style="color:#555;font-size:13px">— ${layout.productName}</p>
</body></html>`;
  return { to: layout.to, subject: layout.subject, text, html: body.value };
}

export function signInLinkMessage(input: { to: string; productName: string; url: string; expiresInMinutes: number; ip: string | null; userAgent: string | null }): MailMessage {
  const where = [input.userAgent, input.ip ? `IP address ${input.ip}` : null].filter(Boolean).join(", ");
  return compose({
    to: input.to,
    subject: `Your ${input.productName} sign-in link`,
    productName: input.productName,
    paragraphs: [
      `Someone entered your email address and the correct password to sign in to ${input.productName}${where ? ` (${where})` : ""}.`,
      `Open the link below in the same browser where you entered your password to finish signing in. It works once and expires in ${input.expiresInMinutes} minutes.`,
    ],
    action: { label: "Finish signing in", url: input.url },
    footer: "If this was not you, do not open the link: someone knows your password. Change your password and tell your Account Admin.",
  });
}

export function invitationMessage(input: { to: string; productName: string; accountName: string; invitedBy: string | null; url: string; expiresInDays: number }): MailMessage {
  return compose({
    to: input.to,
    subject: `You're invited to ${input.accountName} on ${input.productName}`,
    productName: input.productName,
    paragraphs: [
      `${input.invitedBy ?? "An Account Admin"} invited you to join the team account "${input.accountName}" on ${input.productName}.`,
      `Open the link to set your name and password. It works once and expires in ${input.expiresInDays} days.`,
    ],
    action: { label: "Accept the invitation", url: input.url },
    footer: "If you did not expect this invitation, you can ignore this email: nothing happens until the link is opened.",
  });
}
