import { html, type SafeHtml } from "../../html.js";
import { pathTo } from "../../paths.js";
import { alert, csrfField, field, layout } from "./layout.js";
import type { PageChrome } from "./message.js";

/** Fixed notices picked by a code in the query string: never free text from the URL. */
export const notices = {
  signed_out: "You are signed out.",
  password_set: "Your password is set. Sign in to continue.",
  setup_done: "Your account is ready. Sign in to continue.",
  joined: "You joined the account. Sign in to continue.",
  challenge_expired: "Your sign-in took too long and has ended. Please sign in again.",
  session_expired: "Your session has ended. Please sign in again.",
  password_reset: "Your new password is set, and every browser signed in as you was signed out. Sign in with it as usual.",
} as const;

/** The hidden field that carries a checked `return_to` from the sign-in page to its form's submission. */
function returnToField(returnTo: string | undefined): SafeHtml | "" {
  return returnTo === undefined ? "" : html`<input type="hidden" name="return_to" value="${returnTo}">`;
}

/** `returnTo`: a checked target (src/return-to.ts) the sign-in ends on; the form and the SSO link carry it. */
export function loginPage(o: PageChrome & { csrf: string; email?: string; error?: string; notice?: string; returnTo?: string }): SafeHtml {
  return layout({
    title: "Sign in",
    productName: o.productName,
    body: html`<div class="card">
<h1>Sign in to ${o.productName}</h1>
${alert("ok", o.notice)}
${alert("error", o.error)}
<form method="post" action="${pathTo("login")}" novalidate>
${csrfField(o.csrf)}${returnToField(o.returnTo)}
${field({ label: "Email", name: "email", type: "email", value: o.email ?? "", autocomplete: "username", autofocus: !o.email, maxlength: 254 })}
${field({ label: "Password", name: "password", type: "password", autocomplete: "current-password", autofocus: Boolean(o.email) })}
<button type="submit">Sign in</button>
</form>
<p style="margin-top:1rem"><a href="${pathTo("forgotPassword")}">Forgot your password?</a></p>
<p class="muted" style="margin-top:1.5rem">Does your company sign in through its identity provider? <a href="${pathTo("loginSso", {}, { return_to: o.returnTo })}">Sign in with SSO</a></p>
</div>`,
  });
}

/** "Sign in with SSO": one field, the work email or its domain (only the domain is used). */
export function ssoLoginPage(o: PageChrome & { csrf: string; value?: string; error?: string; returnTo?: string }): SafeHtml {
  return layout({
    title: "Sign in with SSO",
    productName: o.productName,
    body: html`<div class="card">
<h1>Sign in with SSO</h1>
${alert("error", o.error)}
<form method="post" action="${pathTo("loginSso")}" novalidate>
${csrfField(o.csrf)}${returnToField(o.returnTo)}
${field({ label: "Work email or domain", name: "domain", value: o.value ?? "", autocomplete: "username", autofocus: true, maxlength: 254, hint: "For example you@example.com or example.com. We use only the domain to find your company's identity provider." })}
<button type="submit">Continue with SSO</button>
</form>
<p class="muted" style="margin-top:1.5rem"><a href="${pathTo("login", {}, { return_to: o.returnTo })}">Sign in with email and password</a></p>
</div>`,
  });
}

/**
 * The hand-over to the identity provider. A page (refreshing at once, with a link), not a redirect of the form POST:
 * the CSP's form-action 'self' would stop a form submission from being redirected to another origin.
 */
export function ssoContinuePage(o: PageChrome & { url: string; domain: string }): SafeHtml {
  return layout({
    title: "Continue to your identity provider",
    productName: o.productName,
    head: html`<meta http-equiv="refresh" content="0;url=${o.url}">`,
    body: html`<div class="card">
<h1>Continue to your identity provider</h1>
<p>Single sign-on for <strong>${o.domain}</strong> continues at your company's identity provider.</p>
<p><a class="button" href="${o.url}">Continue to sign in</a></p>
</div>`,
  });
}

/**
 * The end of a sign-in that goes back to another origin (`return_to`): a page that moves on at once, with a link. Not a
 * redirect: after one of our forms (the code step, the account picker) the CSP's form-action 'self' would block a
 * redirect to another origin.
 */
export function continueToPage(o: PageChrome & { url: string; destination: string }): SafeHtml {
  return layout({
    title: "You are signed in",
    productName: o.productName,
    head: html`<meta http-equiv="refresh" content="0;url=${o.url}">`,
    body: html`<div class="card">
<h1>You are signed in</h1>
<p>Taking you back to <strong>${o.destination}</strong>.</p>
<p><a class="button" href="${o.url}">Continue</a></p>
</div>`,
  });
}

/** `unsent`: the first link could not be sent (mail is down); the page offers "Send a new link" to try again. */

export function checkEmailPage(
  o: PageChrome & { csrf: string; email: string; error?: string; notice?: string; minutes: number; unsent?: boolean },
): SafeHtml {
  const title = o.unsent ? "We could not send the email" : "Check your email";
  return layout({
    title,
    productName: o.productName,
    body: html`<div class="card">
<h1>${title}</h1>
${alert("ok", o.notice)}
${alert("error", o.error)}
<p>${o.unsent ? "Your sign-in link goes to" : "We sent a sign-in link to"} <strong>${o.email}</strong>. Open it <strong>in this browser</strong> to finish signing in: the link does not work on another device or in another browser.</p>
<p class="muted">The link works once and expires in ${o.minutes} minutes. Keep this page open.</p>
<form method="post" action="${pathTo("loginEmailResend")}">
${csrfField(o.csrf)}
<button type="submit">Send a new link</button>
</form>
<p class="muted" style="margin-top:1.5rem">Not you, or wrong address? <a href="${pathTo("login")}">Start over</a></p>
</div>`,
  });
}
