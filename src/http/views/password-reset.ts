import { html, type SafeHtml } from "../../html.js";
import { pathTo } from "../../paths.js";
import { alert, csrfField, field, layout } from "./layout.js";
import type { PageChrome } from "./message.js";

/** "Forgot your password?": one field, the address the person signs in with. */
export function forgotPasswordPage(
  o: PageChrome & { csrf: string; email?: string; emailError?: string | undefined; error?: string },
): SafeHtml {
  return layout({
    title: "Forgot your password?",
    productName: o.productName,
    body: html`<div class="card">
<h1>Forgot your password?</h1>
${alert("error", o.error)}
<p>Enter the email address you sign in with. If an account uses it, we email it a link to choose a new password.</p>
<form method="post" action="${pathTo("forgotPassword")}" novalidate>
${csrfField(o.csrf)}
${field({ label: "Email", name: "email", type: "email", value: o.email ?? "", autocomplete: "username", autofocus: true, maxlength: 254, error: o.emailError })}
<button type="submit">Send reset link</button>
</form>
<p class="muted" style="margin-top:1.5rem">Your company signs you in with SSO? Then your identity provider manages your password: <a href="${pathTo("loginSso")}">Sign in with SSO</a>.</p>
<p class="muted">Lost your authenticator app and your recovery codes? <a href="${pathTo("support")}">Ask support for a reset</a>.</p>
<p class="muted"><a href="${pathTo("login")}">Back to sign in</a></p>
</div>`,
  });
}

/** The one answer to a reset request, whether or not the address has a login. */
export function resetRequestedPage(o: PageChrome & { minutes: number }): SafeHtml {
  return layout({
    title: "Check your email",
    productName: o.productName,
    body: html`<div class="card">
<h1>Check your email</h1>
<p role="status">If an account uses this address, we sent a link to choose a new password. It works once, in any browser, for ${o.minutes} minutes.</p>
<p class="muted">Nothing arrived after a few minutes? Check your spam folder, check the address, or <a href="${pathTo("forgotPassword")}">ask again</a>: each new link voids the earlier ones.</p>
<p><a class="button" href="${pathTo("login")}">Back to sign in</a></p>
</div>`,
  });
}

export interface ResetFormErrors {
  password?: string | undefined;
  code?: string | undefined;
  recoveryCode?: string | undefined;
  /** A failure that belongs to no one field (e.g. code entry paused). */
  form?: string | undefined;
}

/**
 * "Choose a new password", drawn only for a link that was checked (routes/password-reset.ts): its form is aimed at
 * that same link, built from the route table. An auth-app user enters a code on the same form; the new password is set
 * only with a right one. The first field with an error takes the focus.
 */
export function resetPasswordPage(
  o: PageChrome & {
    csrf: string;
    token: string;
    email: string;
    needsCode: boolean;
    minLength: number;
    maxLength: number;
    errors?: ResetFormErrors;
  },
): SafeHtml {
  const e = o.errors ?? {};
  const focus = e.password ? "password" : e.code ? "code" : e.recoveryCode ? "recoveryCode" : "password";
  const codeFields = o.needsCode
    ? html`<p>Your login uses an authenticator app: enter the code it shows for ${o.productName} too. The new password is set only when the code is right.</p>
${field({ label: "Authentication code", name: "code", autocomplete: "one-time-code", inputmode: "numeric", maxlength: 7, required: false, autofocus: focus === "code", error: e.code })}
<details${e.recoveryCode ? html` open` : ""} style="margin-top:1rem">
<summary>Lost your phone? Use a recovery code instead</summary>
${field({ label: "Recovery code", name: "recoveryCode", autocomplete: "off", maxlength: 40, required: false, autofocus: focus === "recoveryCode", error: e.recoveryCode, hint: "Like abcde-12345-fghjk. It is used up when your password is set." })}
</details>`
    : "";
  return layout({
    title: "Choose a new password",
    productName: o.productName,
    body: html`<div class="card">
<h1>Choose a new password</h1>
${alert("error", e.form)}
<p>For <strong>${o.email}</strong>. Afterwards every browser signed in as you is signed out, and you sign in with the new password as usual.</p>
<form method="post" action="${pathTo("passwordReset", { token: o.token })}" novalidate>
${csrfField(o.csrf)}
<input type="email" autocomplete="username" value="${o.email}" hidden readonly>
${field({ label: "New password", name: "password", type: "password", autocomplete: "new-password", autofocus: focus === "password", error: e.password, hint: `${o.minLength} to ${o.maxLength} characters. Any characters, including spaces; a long phrase is best. Common passwords are refused.` })}
${codeFields}
<button type="submit">Set new password</button>
</form>
<p class="muted" style="margin-top:1.5rem"><a href="${pathTo("login")}">Back to sign in</a></p>
</div>`,
  });
}
