import { isIP } from "node:net";
import { html, type SafeHtml } from "../html.js";
import { describeDevice } from "./device.js";
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

/**
 * Where a request came from, as security emails say it: "Chrome 120 on macOS, IP address 203.0.113.9". Nothing of
 * it is text the requester chose: the browser is described from a fixed vocabulary (never the User-Agent itself),
 * and the IP is shown only when it is one (behind a proxy trusted entirely, it comes from X-Forwarded-For).
 */
function requestOrigin(ip: string | null, userAgent: string | null): string {
  const device = describeDevice(userAgent);
  return ip !== null && isIP(ip) !== 0 ? `${device}, IP address ${ip}` : device;
}

export function signInLinkMessage(input: {
  to: string;
  productName: string;
  url: string;
  expiresInMinutes: number;
  ip: string | null;
  userAgent: string | null;
}): MailMessage {
  return compose({
    to: input.to,
    subject: `Your ${input.productName} sign-in link`,
    productName: input.productName,
    paragraphs: [
      `Someone entered your email address and the correct password to sign in to ${input.productName} (${requestOrigin(input.ip, input.userAgent)}).`,
      `Open the link below in the same browser where you entered your password to finish signing in. It works once and expires in ${input.expiresInMinutes} minutes.`,
    ],
    action: { label: "Finish signing in", url: input.url },
    footer: "If this was not you, do not open the link: someone knows your password. Change your password and tell your Account Admin.",
  });
}

export function invitationMessage(input: {
  to: string;
  productName: string;
  accountName: string;
  invitedBy: string | null;
  url: string;
  expiresInDays: number;
}): MailMessage {
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

/** What happened to a person's sign-in, for the security notices below. */
export type SecurityNoticeKind =
  | "password_changed"
  | "password_reset"
  | "auth_app_enabled"
  | "auth_app_disabled"
  | "recovery_codes_regenerated"
  | "recovery_code_used"
  | "code_entry_locked";

const noticeTexts: Record<SecurityNoticeKind, { subject: string; what: (facts: Record<string, string | number>) => string }> = {
  password_changed: {
    subject: "Your password was changed",
    what: () => "The password of your login was changed. Every other browser signed in as you was signed out.",
  },
  password_reset: {
    subject: "Your password was reset",
    what: (f) =>
      `The password of your login was reset with a link sent to this address${
        f["proof"] === "auth_app"
          ? " and a code from your authenticator app"
          : f["proof"] === "recovery_code"
            ? ` and a recovery code (${f["remaining"]} unused recovery code${f["remaining"] === 1 ? "" : "s"} left)`
            : ""
      }. Every browser and application signed in as you was signed out, and sign-ins in progress were ended. Nobody was signed in by the reset: the next sign-in needs the new password and your second factor.`,
  },
  auth_app_enabled: {
    subject: "Authenticator app turned on",
    what: () =>
      "Two-factor authentication with an authenticator app was turned on for your login. From now on you sign in with your password and a code from the app.",
  },
  auth_app_disabled: {
    subject: "Authenticator app turned off",
    what: () =>
      "The authenticator app was turned off for your login. You now finish signing in with a link sent to this address, which is the weaker method.",
  },
  recovery_codes_regenerated: {
    subject: "New recovery codes issued",
    what: () => "New recovery codes were generated for your login. All of your earlier recovery codes stopped working.",
  },
  recovery_code_used: {
    subject: "A recovery code was used to sign in",
    what: (f) =>
      `A recovery code was used to sign in to your login. You have ${f["remaining"]} unused recovery code${f["remaining"] === 1 ? "" : "s"} left.${Number(f["remaining"]) <= 3 ? " Generate new codes soon in Edit your settings → Two-factor authentication → Manage." : ""}`,
  },
  code_entry_locked: {
    subject: "Too many wrong codes: sign-in paused",
    what: (f) =>
      `Someone entered your password correctly and then ${f["failures"]} wrong authentication or recovery codes in a row, so code entry for your login is paused for ${f["minutes"]} minutes.`,
  },
};

/** What to do if it was not them, where it differs from "change your password now". */
const noticeFooters: Partial<Record<SecurityNoticeKind, string>> = {
  code_entry_locked: "If this was not you, someone knows your password: change it as soon as you can sign in, and tell your Account Admin.",
  password_reset:
    "If this was not you, someone can read your email: secure your email account first, then use “Forgot your password?” on the sign-in page to set a password only you know, and tell your Account Admin at once.",
};

export function securityNoticeMessage(input: {
  to: string;
  productName: string;
  kind: SecurityNoticeKind;
  facts?: Record<string, string | number>;
  when: Date;
  ip: string | null;
  userAgent: string | null;
  settingsUrl: string;
}): MailMessage {
  const text = noticeTexts[input.kind];
  return compose({
    to: input.to,
    subject: `${input.productName}: ${text.subject}`,
    productName: input.productName,
    paragraphs: [
      text.what(input.facts ?? {}),
      `When: ${input.when.toUTCString()}. From: ${requestOrigin(input.ip, input.userAgent)}.`,
      "If this was you, there is nothing to do.",
    ],
    action: { label: "Review your security settings", url: input.settingsUrl },
    footer:
      noticeFooters[input.kind] ??
      "If this was not you, change your password now and tell your Account Admin: someone else may be signed in as you.",
  });
}

export function policyEnabledMessage(input: { to: string; productName: string; accountName: string; setupUrl: string }): MailMessage {
  return compose({
    to: input.to,
    subject: `${input.accountName} now requires an authenticator app`,
    productName: input.productName,
    paragraphs: [
      `An Account Admin of "${input.accountName}" now requires every team member to use an authenticator app for two-factor authentication on ${input.productName}.`,
      "Next time you use it you will be asked to set one up: first you save ten recovery codes, then you scan a QR code with an app such as Google Authenticator, Microsoft Authenticator, Authy, Duo Mobile or 1Password. Have the app ready.",
    ],
    action: { label: "Set up your auth app now", url: input.setupUrl },
    footer: "Questions? Ask your Account Admin.",
  });
}

export function memberRemovedMessage(input: {
  to: string;
  productName: string;
  accountName: string;
  loginDeleted: boolean;
  /** Who removed them, when not an Account Admin (the operator: the product's name). */
  removedBy?: string;
}): MailMessage {
  return compose({
    to: input.to,
    subject: `You were removed from ${input.accountName}`,
    productName: input.productName,
    paragraphs: [
      `${input.removedBy ?? "An Account Admin"} removed you from the team account "${input.accountName}" on ${input.productName}. You were signed out of it.`,
      input.loginDeleted
        ? "You had no other team account, so your login (password, authenticator app and recovery codes) was deleted. If you are invited again, you will set a new password and two-factor authentication."
        : "Your login stays, for your other team accounts.",
    ],
    footer: "If you did not expect this, contact your Account Admin.",
  });
}

export function supportConfirmMessage(input: { to: string; productName: string; url: string; expiresInHours: number }): MailMessage {
  return compose({
    to: input.to,
    subject: `Confirm your ${input.productName} two-factor reset request`,
    productName: input.productName,
    paragraphs: [
      `Someone asked ${input.productName} support to reset the two-factor authentication of the login with this address, because they cannot sign in.`,
      `If that was you, confirm the request from this inbox. Support will then check your identity before anything changes. The link works once and expires in ${input.expiresInHours} hours.`,
    ],
    action: { label: "Confirm my request", url: input.url },
    footer: "If this was not you, ignore this email: nothing happens unless the request is confirmed. Consider changing your password.",
  });
}

export function supportApprovedMessage(input: { to: string; productName: string; resetsAt: Date; cancelUrl: string }): MailMessage {
  return compose({
    to: input.to,
    subject: `Your ${input.productName} two-factor reset is scheduled`,
    productName: input.productName,
    paragraphs: [
      `Support approved the request to reset the two-factor authentication of your login. On ${input.resetsAt.toUTCString()} your authenticator app and recovery codes will be removed; you will then sign in with your password and a link sent to this address, and can set up a new app.`,
      "The wait is there to protect you: if you did not ask for this, someone is trying to take over your login. Cancel it with the link below.",
    ],
    action: { label: "Cancel this reset", url: input.cancelUrl },
    footer: "If this was you, there is nothing to do: the reset happens by itself.",
  });
}

export function supportDeniedMessage(input: { to: string; productName: string }): MailMessage {
  return compose({
    to: input.to,
    subject: `Your ${input.productName} two-factor reset request was declined`,
    productName: input.productName,
    paragraphs: [
      "Support could not verify the request to reset the two-factor authentication of your login, so nothing was changed.",
      "If you still cannot sign in, reply to your support contact or ask an Account Admin to remove and re-add you.",
    ],
    footer: "If you did not ask for a reset, your login is unchanged; consider changing your password.",
  });
}

export function supportCompletedMessage(input: { to: string; productName: string; signInUrl: string }): MailMessage {
  return compose({
    to: input.to,
    subject: `Your ${input.productName} two-factor authentication was reset`,
    productName: input.productName,
    paragraphs: [
      "As approved by support, the authenticator app and recovery codes of your login were removed and every session was signed out.",
      "Sign in with your password; you will get a link at this address. Then set up your authenticator app again under Edit your settings → Two-factor authentication → Manage.",
    ],
    action: { label: "Sign in", url: input.signInUrl },
    footer: "If you did not ask for this, change your password now and tell your Account Admin.",
  });
}

export function passwordResetMessage(input: {
  to: string;
  productName: string;
  url: string;
  expiresInMinutes: number;
  /** The login's second factor when the link was sent: an auth-app user will need a code on the reset page too. */
  secondFactor: "email_link" | "auth_app";
  ip: string | null;
  userAgent: string | null;
}): MailMessage {
  return compose({
    to: input.to,
    subject: `Reset your ${input.productName} password`,
    productName: input.productName,
    paragraphs: [
      `Someone asked to reset the password of the ${input.productName} login with this address (${requestOrigin(input.ip, input.userAgent)}).`,
      `If that was you, open the link below and choose a new password. It works once, in any browser, and expires in ${input.expiresInMinutes} minutes; asking again voids it.${
        input.secondFactor === "auth_app"
          ? " Have your authenticator app at hand: the page also asks for a code from it (or a recovery code)."
          : ""
      }`,
      "Resetting signs you out everywhere. Then sign in with the new password as usual, second factor included.",
    ],
    action: { label: "Choose a new password", url: input.url },
    footer: "If this was not you, ignore this email: your password stays as it is, and nothing changes unless the link is used.",
  });
}

/** The answer to "Forgot your password?" for a person who signs in only through their company's identity provider. */
export function passwordResetSsoMessage(input: { to: string; productName: string; accountNames: string[]; ssoUrl: string }): MailMessage {
  return compose({
    to: input.to,
    subject: `How to sign in to ${input.productName}`,
    productName: input.productName,
    paragraphs: [
      `Someone asked to reset the password of the ${input.productName} login with this address. Your login has no password here: you sign in to ${input.accountNames.map((n) => `"${n}"`).join(", ")} with single sign-on, through your company's identity provider.`,
      "Use “Sign in with SSO” with your work email. If you cannot sign in there, ask your IT department: your identity provider manages your password, not us.",
    ],
    action: { label: "Sign in with SSO", url: input.ssoUrl },
    footer: "If this was not you, ignore this email: nothing was changed.",
  });
}

/** To the new address: the link that makes it the login's address. Says nothing of the old address (a typo'd new one is a stranger's inbox). */
export function emailChangeConfirmMessage(input: { to: string; productName: string; url: string; expiresInHours: number }): MailMessage {
  return compose({
    to: input.to,
    subject: `Confirm your new ${input.productName} email address`,
    productName: input.productName,
    paragraphs: [
      `Someone signed in to ${input.productName} asked to use this address for their login from now on.`,
      `If that was you, open the link to confirm it. It works once and expires in ${input.expiresInHours} hours. Your other browsers will be signed out when you confirm.`,
    ],
    action: { label: "Confirm this address", url: input.url },
    footer: "If you did not ask for this, ignore this email: nothing changes unless the link is opened.",
  });
}

/** To the old address, at once: what is about to happen, how to stop it, and where to turn if the login is lost. */
export function emailChangeRequestedMessage(input: {
  to: string;
  productName: string;
  newEmail: string;
  expiresInHours: number;
  when: Date;
  ip: string | null;
  userAgent: string | null;
  cancelUrl: string;
  supportUrl: string;
}): MailMessage {
  return compose({
    to: input.to,
    subject: `${input.productName}: your email address is about to change`,
    productName: input.productName,
    paragraphs: [
      `Someone signed in to your login asked to change its email address to ${input.newEmail}. The change happens only if the link we sent to that address is opened within ${input.expiresInHours} hours.`,
      `When: ${input.when.toUTCString()}. From: ${requestOrigin(input.ip, input.userAgent)}.`,
      "If this was you, there is nothing to do.",
      "If this was not you, stop it with the button below: the change is cancelled and every browser signed in as you is signed out. Then change your password, and tell your Account Admin.",
    ],
    action: { label: "Stop this change", url: input.cancelUrl },
    footer: `If you can no longer sign in, an Account Admin of your team can remove and re-invite you, or ask ${input.productName} support for help: ${input.supportUrl}`,
  });
}

/** To both addresses once the change is confirmed. */
export function emailChangedMessage(input: {
  to: string;
  productName: string;
  oldEmail: string;
  newEmail: string;
  /** Which of the two addresses this copy goes to. */
  recipient: "old" | "new";
  when: Date;
  ip: string | null;
  userAgent: string | null;
  signInUrl: string;
}): MailMessage {
  const first =
    input.recipient === "old"
      ? `The email address of your ${input.productName} login was changed from ${input.oldEmail} to ${input.newEmail}. This address no longer signs in, and sign-in links and security notices now go to the new address.`
      : `${input.newEmail} is now the email address of your ${input.productName} login (it was ${input.oldEmail}). Sign in with it from now on.`;
  return compose({
    to: input.to,
    subject: `${input.productName}: your email address was changed`,
    productName: input.productName,
    paragraphs: [
      first,
      "Every other browser signed in as you was signed out.",
      `When: ${input.when.toUTCString()}. From: ${requestOrigin(input.ip, input.userAgent)}.`,
    ],
    action: { label: "Sign in", url: input.signInUrl },
    footer:
      input.recipient === "old"
        ? "If this was not you, someone has taken over your login: tell your Account Admin at once. They can remove the login from the team, and invite you again at an address you control."
        : "If this was not you, tell your Account Admin.",
  });
}
