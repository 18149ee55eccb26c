import { html, type SafeHtml } from "../../html.js";
import type { TeamMember } from "../../team/members.js";
import type { PendingInvitation } from "../../team/invitations.js";
import type { PolicyOverview } from "../../team/policy.js";
import type { AuditEntry } from "../../audit/log.js";
import type { AccountChoice } from "../../team/switch-account.js";
import { alert, csrfField, field, layout } from "./layout.js";
import type { SettingsChrome } from "./settings.js";
import type { SsoConnectionView } from "../../team/sso.js";
import { pathTo } from "../../paths.js";

const methodLabel = { email_link: "Email link", auth_app: "Auth app", sso: "SSO" } as const;
const date = (ms: number | null): string => (ms === null ? "never" : new Date(ms).toISOString().replace("T", " ").slice(0, 16) + " UTC");
/** The date over the time, so narrow table columns do not break it mid-way. */
const stackedDate = (ms: number | null): SafeHtml | string => (ms === null ? "never" : html`<span style="white-space:nowrap">${date(ms).slice(0, 10)}</span><br><span style="white-space:nowrap">${date(ms).slice(11)}</span>`);

function settingsNav(c: SettingsChrome, current: string): SafeHtml {
  const link = (href: string, label: string): SafeHtml => html`<a href="${href}" ${current === href ? html`aria-current="page"` : ""}>${label}</a>`;
  return html`<nav aria-label="Account settings" style="display:flex;gap:1rem;margin-bottom:1rem">${link(pathTo("team"), "Team Members")}${c.isAdmin ? [link(pathTo("security"), "Security"), link(pathTo("audit"), "Audit log")] : ""}</nav>`;
}

export function settingsPage(c: SettingsChrome, title: string, current: string, body: SafeHtml, wide = true): SafeHtml {
  const nav = c.setupOnly ? "" : html`<p class="muted"><a href="${pathTo("settings")}">Account Settings</a></p>${settingsNav(c, current)}`;
  return layout({ title, productName: c.productName, signedIn: c.signedIn, wide, body: html`${nav}${body}` });
}

export function teamPage(
  c: SettingsChrome & { members: TeamMember[]; invitations: PendingInvitation[]; youId: string; notice?: string | undefined; error?: string | undefined; inviteEmail?: string; inviteError?: string | undefined },
): SafeHtml {
  const csrf = csrfField(c.signedIn.csrf);
  const adminCount = c.members.filter((m) => m.role === "admin").length;
  const rows = c.members.map((m) => {
    const you = m.userId === c.youId;
    const lastAdmin = m.role === "admin" && adminCount <= 1;
    return html`<tr>
<td>${m.name}${you ? " (you)" : ""}</td><td>${m.email}</td>
<td>${
      c.isAdmin && !lastAdmin
        ? html`<form method="post" action="${pathTo("teamMemberRole", { userId: m.userId })}" style="display:flex;flex-wrap:wrap;gap:.5rem;align-items:center">${csrf}
<label class="skip" for="role-${m.userId}">Role of ${m.email}</label>
<select id="role-${m.userId}" name="role"><option value="member" ${m.role === "member" ? "selected" : ""}>Member</option><option value="admin" ${m.role === "admin" ? "selected" : ""}>Account Admin</option></select>
<button type="submit" style="margin:0;padding:.3rem .6rem;white-space:nowrap">Change role</button></form>`
        : m.role === "admin"
          ? "Account Admin"
          : "Member"
    }</td>
<td>${methodLabel[m.method]}</td><td>Active</td><td>${stackedDate(m.lastSignInAt)}</td>
<td>${you ? html`<a href="${pathTo("profile")}">Edit your settings</a>` : ""}${c.isAdmin && !you && !lastAdmin ? html`<a href="${pathTo("teamMemberRemove", { userId: m.userId })}">Remove</a>` : ""}</td>
</tr>`;
  });
  const invitationRows = c.invitations.map(
    (i) => html`<tr><td>—</td><td>${i.email}</td><td>${i.role === "admin" ? "Account Admin" : "Member"}</td><td>—</td><td>${i.expired ? "Invitation expired" : "Invited"}</td><td>expires ${date(i.expiresAt)}</td>
<td>${
      c.isAdmin
        ? html`<form method="post" action="${pathTo("teamInvitationResend", { id: i.id })}" style="display:inline">${csrf}<button class="link" type="submit">Resend</button></form>
<form method="post" action="${pathTo("teamInvitationRevoke", { id: i.id })}" style="display:inline;margin-left:.5rem">${csrf}<button class="link" type="submit">Revoke</button></form>`
        : ""
    }</td></tr>`,
  );
  return settingsPage(
    c,
    "Team Members",
    pathTo("team"),
    html`<div class="card"><h1>Team Members</h1>
${alert("ok", c.notice)}${alert("error", c.error)}
<div style="overflow-x:auto"><table style="font-size:.95rem"><caption class="skip">Members of this account</caption><thead><tr><th scope="col">Name</th><th scope="col">Email</th><th scope="col">Role</th><th scope="col">Two-factor authentication</th><th scope="col">Status</th><th scope="col">Last sign-in</th><th scope="col">Actions</th></tr></thead>
<tbody>${rows}${invitationRows}</tbody></table></div>
<p class="muted">Each member's two-factor method is shown here; there is no per-member switch.${c.isAdmin ? " To require the auth app for everyone, use Security." : ""}</p>
</div>
${
  c.isAdmin
    ? html`<div class="card" style="margin-top:1.5rem"><h2 style="font-size:1.15rem;margin-top:0">Invite a team member</h2>
<form method="post" action="${pathTo("teamInvitations")}" novalidate>${csrf}
${field({ label: "Email", name: "email", type: "email", value: c.inviteEmail ?? "", autocomplete: "off", error: c.inviteError, maxlength: 254 })}
<label for="f-role">Role</label>
<select id="f-role" name="role"><option value="member">Member</option><option value="admin">Account Admin</option></select>
<br><button type="submit">Send invitation</button></form>
<p class="muted">Locked-out member? Remove them and invite them again: they set a new password and two-factor authentication.</p></div>`
    : ""
}`,
  );
}

export function removeMemberPage(c: SettingsChrome & { member: TeamMember; otherAccounts: boolean }): SafeHtml {
  return settingsPage(
    c,
    `Remove ${c.member.name}`,
    pathTo("team"),
    html`<div class="card"><h1>Remove ${c.member.name}?</h1>
<p><strong>${c.member.email}</strong> will be signed out of this account at once and lose access to it.</p>
<p>${
      c.otherAccounts
        ? "They belong to other team accounts too, so their login (password and two-factor authentication) stays for those."
        : "This is their only team account, so their login — password, auth app and recovery codes — is deleted. If you invite them again, they set a new password and two-factor authentication."
    }</p>
<form method="post" action="${pathTo("teamMemberRemove", { userId: c.member.userId })}">${csrfField(c.signedIn.csrf)}<button type="submit">Remove ${c.member.name}</button></form>
<p><a href="${pathTo("team")}">Cancel</a></p></div>`,
    false,
  );
}

/** The account's single sign-on, read-only: an operator connects it (`latchkey sso connect`). */
function ssoSection(sso: SsoConnectionView | null): SafeHtml {
  return html`<h2 style="font-size:1.15rem;margin-top:2rem" id="sso">Single sign-on</h2>
${
  sso
    ? html`<p><strong>Connected.</strong> People with a verified email at ${sso.domains.join(", ")} sign in through your identity provider and are added as SSO members (${sso.ssoMembers} now). Your provider handles their second factor; the auth-app requirement does not apply to them.</p>
<table><tbody>
<tr><th scope="row">Issuer</th><td>${sso.issuer}</td></tr>
<tr><th scope="row">Client id</th><td>${sso.clientId}</td></tr>
<tr><th scope="row">Domains</th><td>${sso.domains.join(", ")}</td></tr>
<tr><th scope="row">Redirect URI</th><td><code>${sso.redirectUri}</code></td></tr>
</tbody></table>`
    : html`<p>Not connected. Your operator can connect an OpenID Connect provider with <code>latchkey sso connect</code>; register <code>/sso/callback</code> on this server's address as its redirect URI.</p>`
}`;
}

export function securityPage(c: SettingsChrome & { overview: PolicyOverview; sso?: SsoConnectionView | null; notice?: string | undefined; error?: string | undefined }): SafeHtml {
  const o = c.overview;
  const csrf = csrfField(c.signedIn.csrf);
  const on = o.policy === "auth_app_required";
  return settingsPage(
    c,
    "Security",
    pathTo("security"),
    html`<div class="card"><h1>Security</h1>
${alert("ok", c.notice)}${alert("error", c.error)}
<h2 style="font-size:1.15rem">Require auth app for all team members</h2>
<p>By default every member finishes signing in with an <strong>email link</strong>. Email is the weaker second factor: anyone who can read a member's inbox can use it, and NIST SP 800-63B does not accept email as a second factor. We recommend requiring an <strong>authenticator app</strong>.</p>
${
  on
    ? html`<p><strong>On.</strong> Every member who signs in with a password must use an auth app. ${o.membersWithoutAuthApp > 0 ? `${o.membersWithoutAuthApp} of them still have to set it up and are sent to do so on their next request.` : "All of them have."} SSO members are exempt (${o.ssoMembers}).</p>
<form method="post" action="${pathTo("securityPolicy")}">${csrf}<input type="hidden" name="policy" value="email_link"><button type="submit">Stop requiring the auth app</button></form>`
    : o.canRequire
      ? html`<p>Turning this on sends <strong>${o.membersWithoutAuthApp}</strong> member${o.membersWithoutAuthApp === 1 ? "" : "s"} without an auth app to set one up on their next request (they are emailed now); they can do nothing else until they finish. ${o.ssoMembers} SSO member${o.ssoMembers === 1 ? " is" : "s are"} exempt.</p>
<form method="post" action="${pathTo("securityPolicy")}">${csrf}<input type="hidden" name="policy" value="auth_app_required"><button type="submit">Enable Auth App</button></form>`
      : html`<p id="policy-unavailable"><strong>Unavailable:</strong> set up the auth app on your own login first, so you cannot lock yourself out. <a href="${pathTo("twoFactor")}">Set up your auth app</a></p>
<button type="button" disabled aria-disabled="true" aria-describedby="policy-unavailable">Enable Auth App</button>`
}
${ssoSection(c.sso ?? null)}
</div>`,
    false,
  );
}

export function auditPage(
  c: SettingsChrome & { entries: AuditEntry[]; nextHref: string | null; filters: { member: string; event: string; from: string; to: string }; members: TeamMember[] },
): SafeHtml {
  const f = c.filters;
  return settingsPage(
    c,
    "Audit log",
    pathTo("audit"),
    html`<div class="card"><h1>Audit log</h1>
<form method="get" action="${pathTo("audit")}" style="display:flex;gap:1rem;flex-wrap:wrap;align-items:end">
<div><label for="a-member">Member</label><select id="a-member" name="member"><option value="">Everyone</option>${c.members.map((m) => html`<option value="${m.userId}" ${f.member === m.userId ? "selected" : ""}>${m.email}</option>`)}</select></div>
<div><label for="a-event">Event</label><input id="a-event" name="event" type="text" value="${f.event}" placeholder="e.g. sign_in." style="width:12rem"></div>
<div><label for="a-from">From (UTC date)</label><input id="a-from" name="from" type="text" value="${f.from}" placeholder="2026-01-31" style="width:9rem"></div>
<div><label for="a-to">Until</label><input id="a-to" name="to" type="text" value="${f.to}" placeholder="2026-12-31" style="width:9rem"></div>
<button type="submit" style="margin:0">Filter</button></form>
${
  c.entries.length === 0
    ? html`<p style="margin-top:1rem">No events match. Sign-ins, factor changes, invitations and policy changes appear here as they happen.</p>`
    : html`<div style="overflow-x:auto;margin-top:1rem"><table style="font-size:.9rem"><thead><tr><th scope="col">When (UTC)</th><th scope="col">Event</th><th scope="col">Who</th><th scope="col">From</th><th scope="col">Details</th></tr></thead><tbody>
${c.entries.map(
  (e) => html`<tr><td>${stackedDate(e.at)}</td><td><code>${e.type}</code></td><td>${e.userEmail ?? (typeof e.detail["email"] === "string" ? e.detail["email"] : "—")}${
    e.actorEmail && e.actorUserId !== e.userId ? html`<br><span class="muted">by ${e.actorEmail}</span>` : ""
  }</td>
<td>${e.ip ?? ""}<br><span class="muted" style="font-size:.8rem;overflow-wrap:anywhere" title="${e.userAgent ?? ""}">${(e.userAgent ?? "").length > 60 ? `${(e.userAgent ?? "").slice(0, 59)}…` : (e.userAgent ?? "")}</span></td><td style="font-size:.85rem;overflow-wrap:anywhere">${Object.entries(e.detail)
    .filter(([k]) => k !== "email")
    .map(([k, v]) => `${k}: ${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join(", ")}</td></tr>`,
)}</tbody></table></div>`
}
${c.nextHref ? html`<p><a href="${c.nextHref}">Older events</a></p>` : ""}
</div>`,
  );
}

export function accountPickerPage(o: { productName: string; signedIn: { email: string; accountName: string; csrf: string }; accounts: AccountChoice[] }): SafeHtml {
  return layout({
    title: "Choose an account",
    productName: o.productName,
    signedIn: o.signedIn,
    body: html`<div class="card"><h1>Choose an account</h1><p>You are a member of several team accounts. Which one do you want to use?</p>
<ul style="list-style:none;padding:0">${o.accounts.map(
      (a) => html`<li style="margin:.5rem 0"><form method="post" action="${pathTo("accountsSwitch")}">${csrfField(o.signedIn.csrf)}<input type="hidden" name="accountId" value="${a.id}">
<button type="submit" style="margin:0">${a.name}</button> <span class="muted">${a.role === "admin" ? "Account Admin" : "Member"}${a.current ? " · current" : ""}</span></form></li>`,
    )}</ul></div>`,
  });
}

export function helpPage(o: { productName: string; signedIn?: { email: string; accountName: string; csrf: string } | undefined }): SafeHtml {
  return layout({
    title: "Help",
    productName: o.productName,
    signedIn: o.signedIn,
    body: html`<div class="card"><h1>Two-factor authentication help</h1>
<p>${o.productName} asks for a second factor after your password: by default a link emailed to you (open it in the same browser), or a 6-digit code from an authenticator app.</p>
<h2 style="font-size:1.15rem">Authenticator apps</h2>
<p>Any app for time-based one-time passwords (TOTP) works: Google Authenticator, Microsoft Authenticator, Authy, Duo Mobile, 1Password.</p>
<h2 style="font-size:1.15rem">Locked out?</h2>
<ol><li>Use one of your recovery codes instead of the app code ("Use a recovery code" on the sign-in page). Each works once.</li>
<li>Ask another Account Admin to remove you and invite you again: you set a new password and two-factor authentication.</li>
<li>No codes and no other admin? <a href="${pathTo("support")}">Ask support for a reset</a> with the email address of your login: support verifies your identity, and the reset happens after a waiting period you can cancel from your inbox.</li></ol>
<p><a href="${pathTo("home")}">Back</a></p></div>`,
  });
}
