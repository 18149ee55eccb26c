import { html, type SafeHtml } from "../../html.js";
import { pathTo } from "../../paths.js";
import type { SessionSummary } from "../../auth/session-list.js";
import type { SignInProof } from "../../db/schema.js";
import { alert, csrfField } from "./layout.js";
import { stackedDate } from "./format.js";
import { personalPage, yourSettings, type SettingsChrome } from "./settings-chrome.js";

const methodLabel: Record<SignInProof, string> = {
  email_link: "Password and email link",
  auth_app: "Password and auth app",
  recovery_code: "Password and recovery code",
  sso: "Single sign-on",
};

/** "Where you're signed in": every live session of the person, this browser first. */
export function sessionsPage(
  c: SettingsChrome & { sessions: SessionSummary[]; notice?: string | undefined; error?: string | undefined },
): SafeHtml {
  const csrf = csrfField(c.signedIn.csrf);
  // The account column only matters to people in several accounts.
  const accounts = new Set(c.sessions.map((s) => s.accountId));
  const showAccount = accounts.size > 1;
  const others = c.sessions.filter((s) => !s.current);
  // "an unknown browser" is written to follow "from" in emails; here it starts a cell.
  const capitalised = (text: string): string => text.charAt(0).toUpperCase() + text.slice(1);
  const rows = c.sessions.map(
    (s) => html`<tr>
<td data-label="Device">${capitalised(s.device)}${s.current ? html`<br><strong>This browser</strong>` : ""}</td><td data-label="IP address">${s.ip ?? "unknown"}</td><td data-label="Signed in with">${methodLabel[s.method]}</td>${showAccount ? html`<td data-label="Account">${s.accountName}</td>` : ""}
<td data-label="Started (UTC)">${stackedDate(s.createdAt)}</td><td data-label="Last active (UTC)">${s.current ? "Now" : stackedDate(s.lastSeenAt)}</td>
<td data-label="Actions">${
      s.current
        ? ""
        : html`<form method="post" action="${pathTo("sessionSignOut", { id: s.id })}">${csrf}<button type="submit" class="small" aria-label="Sign out ${s.device}${s.ip ? `, ${s.ip}` : ""}">Sign out</button></form>`
    }</td></tr>`,
  );
  return personalPage(
    c,
    "Where you're signed in",
    "Where you're signed in",
    html`<div class="card"><h1>Where you're signed in</h1>
${alert("ok", c.notice)}${alert("error", c.error)}
<p>These browsers are signed in as you. If you do not recognise one, sign it out, then change your password.</p>
<table class="stack" style="font-size:.95rem"><caption class="visually-hidden">Your sessions</caption><thead><tr><th scope="col">Device</th><th scope="col">IP address</th><th scope="col">Signed in with</th>${showAccount ? html`<th scope="col">Account</th>` : ""}<th scope="col">Started (UTC)</th><th scope="col">Last active (UTC)</th><th scope="col">Actions</th></tr></thead>
<tbody>${rows}</tbody></table>
${
  others.length > 0
    ? html`<h2>Sign out everywhere else</h2>
<p>Ends every session above except this browser's. Applications you signed in to through these sessions are signed out too.</p>
<form method="post" action="${pathTo("sessionsSignOutOthers")}">${csrf}<button type="submit">Sign out all other sessions</button></form>`
    : html`<p class="muted">You are signed in nowhere else.</p>`
}
</div>`,
    [yourSettings],
    true,
  );
}
