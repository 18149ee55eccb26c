import { html, type SafeHtml } from "../../html.js";
import { pathTo } from "../../paths.js";
import type { TeamMember } from "../../team/members.js";
import type { PendingInvitation } from "../../team/invitations.js";
import { alert, csrfField, field } from "./layout.js";
import { date, stackedDate } from "./format.js";
import { settingsPage, type SettingsChrome } from "./settings-chrome.js";

const methodLabel = { email_link: "Email link", auth_app: "Auth app", sso: "SSO" } as const;
const roleLabel = { admin: "Account Admin", member: "Member" } as const;

/** The table's columns. Each cell repeats its column's name (`data-label`): on a phone a row is a card that shows it. */
const COLUMNS = ["Name", "Email", "Role", "Two-factor authentication", "Status", "Last sign-in", "Actions"] as const;

/** A cell of column `label`. Empty cells stay empty (no label is drawn for them on a phone). */
function cell(label: (typeof COLUMNS)[number], content: SafeHtml | string | (SafeHtml | string)[]): SafeHtml {
  return html`<td data-label="${label}">${content}</td>`;
}

/** Where this page is in the list, and links to the pages before and after it (only when there is more than one). */
function pager(list: { page: number; pages: number; total: number; first: number }, shown: number): SafeHtml | string {
  if (list.pages <= 1) return "";
  const link = (page: number, label: string, rel: string): SafeHtml =>
    html`<a href="${pathTo("team", {}, page === 1 ? {} : { page: String(page) })}" rel="${rel}">${label}</a>`;
  const last = list.first + shown - 1;
  return html`<nav aria-label="Pages of members" class="actions"><p>Members ${count(list.first)}–${count(last)} of ${count(list.total)}, by name: page ${list.page} of ${list.pages}.</p>
${list.page > 1 ? link(list.page - 1, "Previous page", "prev") : ""}${list.page < list.pages ? link(list.page + 1, "Next page", "next") : ""}</nav>`;
}

/** A count with thousands separated, as people read it: 1,000. */
const count = (n: number): string => n.toLocaleString("en-US");

export function teamPage(
  c: SettingsChrome & {
    /** This page of the members (by name). */
    members: TeamMember[];
    /** Admins of the whole account (the last one cannot be demoted or removed, whichever page shows them). */
    adminCount: number;
    /** Which page this is: its number, how many there are, all members, the position of its first member. */
    list: { page: number; pages: number; total: number; first: number };
    invitations: PendingInvitation[];
    youId: string;
    notice?: string | undefined;
    error?: string | undefined;
    inviteEmail?: string;
    inviteError?: string | undefined;
  },
): SafeHtml {
  const csrf = csrfField(c.signedIn.csrf);
  const adminCount = c.adminCount;
  const rows = c.members.map((m) => {
    const you = m.userId === c.youId;
    const lastAdmin = m.role === "admin" && adminCount <= 1;
    const role =
      c.isAdmin && !lastAdmin
        ? html`<form method="post" action="${pathTo("teamMemberRole", { userId: m.userId })}" class="actions">${csrf}
<label class="visually-hidden" for="role-${m.userId}">Role of ${m.email}</label>
<select id="role-${m.userId}" name="role"><option value="member" ${m.role === "member" ? "selected" : ""}>Member</option><option value="admin" ${m.role === "admin" ? "selected" : ""}>Account Admin</option></select>
<button type="submit" class="small">Change role</button></form>`
        : roleLabel[m.role];
    const actions = [
      you ? html`<a href="${pathTo("profile")}">Edit your settings</a>` : "",
      c.isAdmin && !you && !lastAdmin ? html`<a href="${pathTo("teamMemberRemove", { userId: m.userId })}">Remove</a>` : "",
    ];
    return html`<tr>${cell("Name", html`${m.name}${you ? " (you)" : ""}`)}${cell("Email", html`${m.email}${m.emailChangedAt !== null ? html`<br><span class="muted" style="font-size:.85rem">changed ${date(m.emailChangedAt)}</span>` : ""}`)}${cell("Role", role)}${cell("Two-factor authentication", methodLabel[m.method])}${cell("Status", "Active")}${cell("Last sign-in", stackedDate(m.lastSignInAt))}${cell("Actions", actions)}</tr>`;
  });
  // An invitation is not a member yet: no name, method or sign-in; its state (and when it runs out) is its status.
  const invitationRows = c.invitations.map((i) => {
    const status = i.expired
      ? html`Invitation expired<br><span class="muted">on ${stackedDate(i.expiresAt)}</span>`
      : html`Invited<br><span class="muted">expires ${stackedDate(i.expiresAt)}</span>`;
    const actions = c.isAdmin
      ? html`<div class="actions"><form method="post" action="${pathTo("teamInvitationResend", { id: i.id })}">${csrf}<button class="link" type="submit">Resend</button></form>
<form method="post" action="${pathTo("teamInvitationRevoke", { id: i.id })}">${csrf}<button class="link" type="submit">Revoke</button></form></div>`
      : "";
    return html`<tr>${cell("Name", "")}${cell("Email", i.email)}${cell("Role", roleLabel[i.role])}${cell("Two-factor authentication", "")}${cell("Status", status)}${cell("Last sign-in", "")}${cell("Actions", actions)}</tr>`;
  });
  return settingsPage(
    c,
    "Team Members",
    pathTo("team"),
    html`<div class="card"><h1>Team Members</h1>
${alert("ok", c.notice)}${alert("error", c.error)}
<table class="stack" style="font-size:.95rem"><caption class="visually-hidden">Members of this account</caption><thead><tr>${COLUMNS.map((name) => html`<th scope="col">${name}</th>`)}</tr></thead>
<tbody>${rows}${invitationRows}</tbody></table>
${pager(c.list, c.members.length)}
<p class="muted">Each member's two-factor method is shown here; there is no per-member switch.${c.isAdmin ? " To require the auth app for everyone, use Security." : ""}</p>
</div>
${
  c.isAdmin
    ? html`<div class="card"><h2 style="margin-top:0">Invite a team member</h2>
<form method="post" action="${pathTo("teamInvitations")}" novalidate>${csrf}
${field({ label: "Email", name: "email", type: "email", value: c.inviteEmail ?? "", autocomplete: "off", error: c.inviteError, autofocus: c.inviteError !== undefined, maxlength: 254 })}
<label for="f-role">Role</label>
<select id="f-role" name="role"><option value="member">Member</option><option value="admin">Account Admin</option></select>
<button type="submit">Send invitation</button></form>
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
