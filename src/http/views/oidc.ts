import { html, raw, type SafeHtml } from "../../html.js";
import { layout } from "./layout.js";
import type { PageChrome } from "./message.js";

/** Pages of the OpenID Provider: the ones Latchkey's sign-in adds, and the few the provider itself shows. */

const REASONS = {
  prompt_login: "asks you to sign in again before it continues.",
  max_age: "asks for a recent sign-in, and yours is older than it accepts.",
  auth_app: "asks you to sign in with your authenticator app. This session was opened without it.",
} as const;

export function oidcSignInAgainPage(
  o: PageChrome & { clientName: string; reason: keyof typeof REASONS; action: string; csrf: string },
): SafeHtml {
  return layout({
    title: "Sign in again",
    productName: o.productName,
    signedIn: o.signedIn,
    body: html`<div class="card">
      <h1>Sign in again</h1>
      <p>${o.clientName} ${REASONS[o.reason]}</p>
      <p class="muted">You will be signed out here first, then come back to ${o.clientName} after signing in.</p>
      <form method="post" action="${o.action}">
        <input type="hidden" name="_csrf" value="${o.csrf}" />
        <button type="submit">Sign out and sign in again</button>
      </form>
    </div>`,
  });
}

/**
 * "Sign out?", asked when an application sends someone to log out. `form` is the provider's own hidden form (its
 * action and one-time token), which the buttons submit: "Sign out" ends the Latchkey session too.
 */
export function oidcLogoutPage(o: { productName: string; clientName: string | undefined; form: string }): SafeHtml {
  const from = o.clientName ? html` from ${o.clientName}` : "";
  return layout({
    title: "Sign out",
    productName: o.productName,
    body: html`<div class="card">
      <h1>Sign out of ${o.productName}?</h1>
      <p>You asked to sign out${from}. This signs you out of ${o.productName} and of every application you use with it in this browser.</p>
      ${raw(o.form)}
      <button autofocus type="submit" form="op.logoutForm" name="logout" value="yes">Sign out</button>
      <p><button class="link" type="submit" form="op.logoutForm">Stay signed in</button></p>
    </div>`,
  });
}

export function oidcLoggedOutPage(o: { productName: string; clientName: string | undefined }): SafeHtml {
  return layout({
    title: "Signed out",
    productName: o.productName,
    body: html`<div class="card">
      <h1>You are signed out</h1>
      <p>${o.clientName ? html`You signed out of ${o.clientName}.` : "You are signed out."} You can close this window.</p>
    </div>`,
  });
}

export function oidcErrorPage(o: { productName: string; error: string; description: string | undefined }): SafeHtml {
  return layout({
    title: "This sign-in request did not work",
    productName: o.productName,
    body: html`<div class="card">
      <h1>This sign-in request did not work</h1>
      <p>
        The application that sent you here made a request ${o.productName} cannot answer. Go back to it and try again; if it keeps
        happening, tell the application's administrator.
      </p>
      <p class="muted"><code>${o.error}</code>${o.description ? html`: ${o.description}` : ""}</p>
    </div>`,
  });
}
