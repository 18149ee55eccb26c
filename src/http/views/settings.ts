import { html, raw, type SafeHtml } from "../../html.js";
import { alert, csrfField, field, layout } from "./layout.js";
import { personalPage, twoFactorCrumb, yourSettings, type SettingsChrome } from "./settings-chrome.js";
import { plural } from "./format.js";
import { pathTo } from "../../paths.js";

const methodLabel = { email_link: "Email link", auth_app: "Auth app", sso: "SSO" } as const;
export type MethodLabelKey = keyof typeof methodLabel;

/**
 * The button that starts the person's own auth-app setup. It starts with the seed's word ("Manage", then "Enable"), and
 * says what it does, so it cannot be mistaken for Security's "Enable Auth App", which requires the app of everyone.
 */
export const SET_UP_AUTH_APP = "Enable: set up the auth app";

/** Where the setup steps sit: Your settings › Two-factor authentication. */
const underTwoFactor = [yourSettings, twoFactorCrumb];

export function accountSettingsPage(c: SettingsChrome & { accountName: string }): SafeHtml {
  return layout({
    title: "Account Settings",
    productName: c.productName,
    signedIn: c.signedIn,
    body: html`<div class="card"><h1>Account Settings</h1>
<p>Settings of the team account <strong>${c.accountName}</strong>.</p>
<ul>
<li><a href="${pathTo("team")}">Team Members</a>: who is on the team and how each signs in. Your own settings are under "Edit your settings".</li>
<li><a href="${pathTo("sessions")}">Sessions</a>: where you are signed in, and signing out other browsers.</li>
${c.isAdmin ? html`<li><a href="${pathTo("security")}">Security</a>: the account's two-factor policy.</li><li><a href="${pathTo("audit")}">Audit log</a>: every security event of the account.</li>` : ""}
</ul></div>`,
  });
}

export function profilePage(
  c: SettingsChrome & { name: string; email: string; method: MethodLabelKey; recoveryCodesRemaining: number },
): SafeHtml {
  return personalPage(
    c,
    "Your settings",
    "Your settings",
    html`<div class="card"><h1>Your settings</h1>
<p><strong>${c.name}</strong> · ${c.email}</p>
${c.method === "sso" ? "" : html`<p><a href="${pathTo("password")}">Change password</a> · <a href="${pathTo("email")}">Change email address</a></p>`}
<p><a href="${pathTo("sessions")}">Where you're signed in</a></p>
<h2>Two-factor authentication</h2>
<p>Method: <strong>${methodLabel[c.method]}</strong>${c.method === "auth_app" ? html` · ${plural(c.recoveryCodesRemaining, "recovery code", "recovery codes")} left` : ""}</p>
${c.method === "sso" ? html`<p class="muted">You sign in with your company's SSO provider, which handles two-factor authentication.</p>` : html`<p><a class="button" href="${pathTo("twoFactor")}">Manage</a></p>`}
</div>`,
    [],
  );
}

export function confirmPasswordPage(c: SettingsChrome & { next: string; error?: string | undefined; reason: string }): SafeHtml {
  return personalPage(
    c,
    "Confirm your password",
    "Confirm your password",
    html`<div class="card"><h1>Confirm your password</h1>
${alert("error", c.error)}
<p>${c.reason}</p>
<form method="post" action="${pathTo("confirmPassword")}" novalidate>
${csrfField(c.signedIn.csrf)}
<input type="hidden" name="next" value="${c.next}">
${field({ label: "Password", name: "password", type: "password", autocomplete: "current-password", autofocus: true })}
<button type="submit">Confirm</button>
</form></div>`,
    underTwoFactor,
  );
}

export function manageTwoFactorPage(
  c: SettingsChrome & {
    method: "email_link" | "auth_app";
    enabledAt: number | null;
    recoveryCodesRemaining: number;
    setupInProgress: boolean;
    requiredBy: string[];
    notice?: string | undefined;
    error?: string | undefined;
    lowWarning: number;
  },
): SafeHtml {
  const csrf = csrfField(c.signedIn.csrf);
  const body =
    c.method === "email_link"
      ? html`<p>You finish signing in with a <strong>link emailed to you</strong>. That protects you if someone learns your password, but email is the weaker second factor: anyone who can read your inbox can use it.</p>
<h2>Auth app (recommended)</h2>
<p>Use an authenticator app (Google Authenticator, Microsoft Authenticator, Authy, Duo Mobile, 1Password…) for a 6-digit code at sign-in. Have the app ready: you will first save ten recovery codes, then scan a QR code, then enter a code to confirm.</p>
${c.requiredBy.length ? html`<p class="alert error" role="note">${c.requiredBy.join(", ")} require${c.requiredBy.length === 1 ? "s" : ""} the auth app for every team member: set it up to continue.</p>` : ""}
${
  c.setupInProgress
    ? html`<p><a class="button" href="${pathTo("twoFactorSetup")}">Continue setup</a></p>`
    : html`<form method="post" action="${pathTo("twoFactorSetup")}">${csrf}<button type="submit">${SET_UP_AUTH_APP}</button></form>`
}`
      : html`<p>The <strong>auth app</strong> is on${c.enabledAt ? html` since ${new Date(c.enabledAt).toUTCString()}` : ""}. You sign in with your password and a code from the app.</p>
<h2>Recovery codes</h2>
<p><strong>${c.recoveryCodesRemaining}</strong> of your recovery codes ${c.recoveryCodesRemaining === 1 ? "is" : "are"} unused. ${c.recoveryCodesRemaining <= c.lowWarning ? html`<strong>That is few: generate new ones.</strong>` : ""} For your security we never show the codes again; generating new ones voids all the old ones at once.</p>
<form method="post" action="${pathTo("recoveryCodes")}">${csrf}<button type="submit">Generate new recovery codes</button></form>
<h2>Turn off the auth app</h2>
${
  c.requiredBy.length
    ? html`<p class="muted">You cannot turn it off: ${c.requiredBy.join(", ")} require${c.requiredBy.length === 1 ? "s" : ""} the auth app for every team member.</p><button type="button" disabled aria-disabled="true">Turn off auth app</button>`
    : html`<p>You would go back to the emailed sign-in link, the weaker method.</p><form method="post" action="${pathTo("twoFactorDisable")}">${csrf}<button type="submit">Turn off auth app</button></form>`
}`;
  return personalPage(
    c,
    "Two-factor authentication",
    "Two-factor authentication",
    html`<div class="card"><h1>Two-factor authentication</h1>${alert("ok", c.notice)}${alert("error", c.error)}${body}</div>`,
  );
}

export function recoveryCodesPage(c: SettingsChrome & { codes: string[]; duringSetup: boolean; error?: string | undefined }): SafeHtml {
  const csrf = csrfField(c.signedIn.csrf);
  return personalPage(
    c,
    "Your recovery codes",
    c.duringSetup ? "Set up the auth app" : "New recovery codes",
    html`<div class="card">
<h1>${c.duringSetup ? "Step 1 of 3: save your recovery codes" : "Your new recovery codes"}</h1>
${alert("error", c.error)}
<p>If you lose your phone, each of these codes lets you sign in once instead of an app code. Keep them somewhere safe, like a password manager. <strong>This is the only time we show them.</strong>${c.duringSetup ? "" : " Your old codes no longer work."}</p>
<ol id="recovery-codes" style="font-family:ui-monospace,monospace;font-size:1rem;columns:2 11rem;column-gap:3rem">${c.codes.map((code) => html`<li>${code}</li>`)}</ol>
<p style="display:flex;gap:.75rem;flex-wrap:wrap">
<a class="button" href="${pathTo("recoveryCodesText")}" download>Download</a>
<a class="button" href="${pathTo("recoveryCodesPrint")}" target="_blank" rel="noopener">Print</a>
<button type="button" id="copy-codes" data-codes="${c.codes.join("\n")}" hidden>Copy</button>
<span id="copy-status" role="status" class="muted"></span>
</p>
${
  c.duringSetup
    ? html`<form method="post" action="${pathTo("twoFactorSetupCodesSaved")}" novalidate>${csrf}
<p><label class="check"><input type="checkbox" name="saved" value="yes" required> I have saved my recovery codes</label></p>
<button type="submit">Next</button></form>`
    : html`<form method="post" action="${pathTo("recoveryCodesDone")}">${csrf}<button type="submit">Done</button></form>`
}
<script src="${pathTo("assetCopyCodes")}"></script>
</div>`,
    underTwoFactor,
  );
}

export function printCodesPage(o: { productName: string; email: string; codes: string[] }): SafeHtml {
  return html`<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${o.productName} recovery codes</title>
<style>body{font:14pt/1.6 system-ui,sans-serif;margin:2rem;color:#000;background:#fff}ol{font-family:ui-monospace,monospace;font-size:14pt}a{color:#1f4fd1}@media print{a{display:none}}</style></head>
<body><main><h1>${o.productName} recovery codes</h1><p>For ${o.email}. Each code works once. Keep this page safe.</p>
<ol>${o.codes.map((c) => html`<li>${c}</li>`)}</ol><p><a href="${pathTo("twoFactorSetup")}">Back</a></p></main>
<script src="${pathTo("assetPrint")}"></script></body></html>`;
}

export function scanPage(c: SettingsChrome & { qrSvg: string; manualKey: string; uri: string; error?: string | undefined }): SafeHtml {
  return personalPage(
    c,
    "Scan the QR code",
    "Set up the auth app",
    html`<div class="card">
<h1>Step 2 of 3: scan the QR code</h1>
${alert("error", c.error)}
<p>Scan this code with your authenticator app.</p>
<figure style="margin:0;max-width:240px;background:#fff;padding:8px;border-radius:6px" aria-label="QR code for your authenticator app">${raw(c.qrSvg)}</figure>
<p>Can't scan it? Enter this key in your app by hand (time-based):</p>
<p><code id="manual-key" style="font-size:1.15rem;letter-spacing:.05em">${c.manualKey}</code></p>
<h2>Step 3 of 3: enter the code</h2>
<form method="post" action="${pathTo("twoFactorSetupConfirm")}" novalidate>
${csrfField(c.signedIn.csrf)}
${field({ label: "Authentication code", name: "code", autocomplete: "one-time-code", inputmode: "numeric", autofocus: true, maxlength: 7, hint: "The 6-digit code your app now shows for this account." })}
<button type="submit">Verify</button>
</form>
<p class="muted" style="margin-top:1.5rem">Until you enter a correct code, nothing changes: you still sign in with the email link.</p>
</div>`,
    underTwoFactor,
  );
}

/** `next`: where "Continue" leads (home, or on to the `return_to` of the sign-in that led here). */
export function setupDonePage(c: SettingsChrome & { next: string }): SafeHtml {
  return personalPage(
    c,
    "Two-factor authentication is set up",
    "Set up the auth app",
    html`<div class="card"><h1>Success!</h1>
<p>Two-factor authentication with your auth app is set up. Next time you sign in, enter the code from your app after your password.</p>
<p>You can generate new recovery codes any time from Edit your settings → Manage.</p>
<p><a class="button" href="${c.next}">Continue</a></p></div>`,
    underTwoFactor,
  );
}

export function changePasswordPage(
  c: SettingsChrome & {
    errors?: { current?: string | undefined; next?: string | undefined };
    minLength: number;
    maxLength: number;
    done?: boolean;
  },
): SafeHtml {
  const e = c.errors ?? {};
  return personalPage(
    c,
    "Change password",
    "Change password",
    html`<div class="card"><h1>Change password</h1>
${c.done ? alert("ok", "Your password is changed. Other browsers signed in as you were signed out.") : ""}
<form method="post" action="${pathTo("password")}" novalidate>
${csrfField(c.signedIn.csrf)}
${field({ label: "Current password", name: "currentPassword", type: "password", autocomplete: "current-password", autofocus: !e.next, error: e.current })}
${field({ label: "New password", name: "newPassword", type: "password", autocomplete: "new-password", autofocus: Boolean(e.next), error: e.next, hint: `${c.minLength} to ${c.maxLength} characters. Any characters, including spaces; a long phrase is best. Common passwords are refused.` })}
<button type="submit">Change password</button>
</form>
<p class="muted" style="margin-top:1rem"><a href="${pathTo("profile")}">Back to your settings</a></p></div>`,
  );
}

/** A session opened by single sign-on asked for the password login's factors (403): says why, and where to go. */
export function passwordLoginOnlyPage(c: SettingsChrome & { message: string }): SafeHtml {
  return personalPage(
    c,
    "Signed in with single sign-on",
    "Signed in with single sign-on",
    html`<div class="card"><h1>Signed in with single sign-on</h1>
${alert("error", c.message)}
<p class="muted" style="margin-top:1rem"><a href="${pathTo("profile")}">Back to your settings</a></p></div>`,
  );
}
