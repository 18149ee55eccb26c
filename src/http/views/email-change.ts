import { html, type SafeHtml } from "../../html.js";
import { pathTo } from "../../paths.js";
import type { PendingEmailChange } from "../../auth/email-change.js";
import { date } from "./format.js";
import { alert, csrfField, field, focusedField } from "./layout.js";
import { personalPage, type SettingsChrome } from "./settings-chrome.js";

/** Settings → Change email address: the current address, a pending change, and the form (or why there is none). */
export function changeEmailPage(
  c: SettingsChrome & {
    email: string;
    pending: PendingEmailChange | null;
    /** Why this person cannot change their address here (SSO), instead of the form. */
    refused?: string | undefined;
    /** The session has no fresh proof: the form asks for the password too. */
    askPassword: boolean;
    value?: string;
    errors?: { email?: string | undefined; password?: string | undefined };
    notice?: string | undefined;
    error?: string | undefined;
  },
): SafeHtml {
  const e = c.errors ?? {};
  const focus = c.askPassword ? focusedField(["email", "password"], e) : "email";
  const csrf = csrfField(c.signedIn.csrf);
  const pending = c.pending
    ? html`<div class="alert ok" role="status">Check the inbox of <strong>${c.pending.newEmail}</strong>: we sent it a confirmation link. Your address changes when it is opened (until ${date(c.pending.expiresAt)}).</div>
<form method="post" action="${pathTo("emailWithdraw")}">${csrf}<button class="link" type="submit">Withdraw this change</button></form>`
    : "";
  const form = c.refused
    ? html`<p class="alert error" role="note">${c.refused}</p>`
    : html`<form method="post" action="${pathTo("email")}" novalidate>${csrf}
${field({ label: "New email address", name: "email", type: "email", autocomplete: "email", value: c.value ?? "", autofocus: focus === "email", error: e.email, maxlength: 254, ...(c.pending ? { hint: "Asking for another address replaces the change waiting above." } : {}) })}
${c.askPassword ? field({ label: "Password", name: "password", type: "password", autocomplete: "current-password", autofocus: focus === "password", error: e.password, hint: "Your current password, to confirm it is you." }) : ""}
<button type="submit">Send confirmation link</button>
</form>
<p class="muted" style="margin-top:1rem">We email a link to the new address; your address changes only when it is opened. Your current address is told at once and can stop the change. Once it changes, your other browsers are signed out.</p>`;
  return personalPage(
    c,
    "Change email address",
    "Change email address",
    html`<div class="card"><h1>Change email address</h1>
${alert("ok", c.notice)}${alert("error", c.error)}
<p>Your email address is <strong>${c.email}</strong>. You sign in with it, and sign-in links and security notices go to it.</p>
${pending}${form}
<p class="muted" style="margin-top:1rem"><a href="${pathTo("profile")}">Back to your settings</a></p></div>`,
  );
}
