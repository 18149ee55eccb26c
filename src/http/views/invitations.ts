import { html, type SafeHtml } from "../../html.js";
import { pathTo } from "../../paths.js";
import { alert, csrfField, field, focusedField, layout } from "./layout.js";
import type { PageChrome } from "./message.js";

export interface PasswordFormErrors {
  name?: string | undefined;
  password?: string | undefined;
  email?: string | undefined;
  accountName?: string | undefined;
  form?: string | undefined;
}

export function invitationPage(
  o: PageChrome & {
    csrf: string;
    token: string;
    accountName: string;
    email: string;
    existingUserName: string | null;
    name?: string;
    errors?: PasswordFormErrors;
    minLength: number;
    maxLength: number;
  },
): SafeHtml {
  const errors = o.errors ?? {};
  const joinFocus = focusedField(["name", "password"], errors);
  const body = o.existingUserName
    ? html`<div class="card">
<h1>Join ${o.accountName}</h1>
${alert("error", errors.form)}
<p>You already have a login as <strong>${o.email}</strong>. Enter your password to join <strong>${o.accountName}</strong>.</p>
<form method="post" action="${pathTo("invitation", { token: o.token })}" novalidate>
${csrfField(o.csrf)}
${field({ label: "Password", name: "password", type: "password", autocomplete: "current-password", autofocus: true, error: errors.password })}
<button type="submit">Join account</button>
</form>
</div>`
    : html`<div class="card">
<h1>Join ${o.accountName}</h1>
${alert("error", errors.form)}
<p>You were invited as <strong>${o.email}</strong>. Choose your name and a password.</p>
<form method="post" action="${pathTo("invitation", { token: o.token })}" novalidate>
${csrfField(o.csrf)}
${field({ label: "Name", name: "name", autocomplete: "name", value: o.name ?? "", autofocus: joinFocus === "name", error: errors.name, maxlength: 100 })}
${field({ label: "Password", name: "password", type: "password", autocomplete: "new-password", autofocus: joinFocus === "password", error: errors.password, hint: `${o.minLength} to ${o.maxLength} characters. Any characters, including spaces; a long phrase is best. Common passwords are refused.` })}
<button type="submit">Set password and join</button>
</form>
</div>`;
  return layout({ title: `Join ${o.accountName}`, productName: o.productName, body });
}

export function setupPage(
  o: PageChrome & {
    csrf: string;
    token: string;
    values?: { accountName?: string; name?: string; email?: string };
    errors?: PasswordFormErrors;
    minLength: number;
    maxLength: number;
  },
): SafeHtml {
  const errors = o.errors ?? {};
  const v = o.values ?? {};
  const focus = focusedField(["accountName", "name", "email", "password"], errors);
  return layout({
    title: "Set up",
    productName: o.productName,
    body: html`<div class="card">
<h1>Set up ${o.productName}</h1>
<p>Create the first team account and its Account Admin. This link works once.</p>
${alert("error", errors.form)}
<form method="post" action="${pathTo("setup", { token: o.token })}" novalidate>
${csrfField(o.csrf)}
${field({ label: "Account name", name: "accountName", value: v.accountName ?? "", autofocus: focus === "accountName", error: errors.accountName, hint: "Your team or company, e.g. Acme Inc.", maxlength: 100 })}
${field({ label: "Your name", name: "name", autocomplete: "name", value: v.name ?? "", autofocus: focus === "name", error: errors.name, maxlength: 100 })}
${field({ label: "Email", name: "email", type: "email", autocomplete: "username", value: v.email ?? "", autofocus: focus === "email", error: errors.email, maxlength: 254 })}
${field({ label: "Password", name: "password", type: "password", autocomplete: "new-password", autofocus: focus === "password", error: errors.password, hint: `${o.minLength} to ${o.maxLength} characters. Any characters, including spaces; a long phrase is best. Common passwords are refused.` })}
<button type="submit">Create account</button>
</form>
</div>`,
  });
}
