import { html, type SafeHtml } from "../../html.js";
import { pathTo } from "../../paths.js";
import type { TeamMember } from "../../team/members.js";
import type { PendingInvitation } from "../../team/invitations.js";
import { alert, csrfField, field } from "./layout.js";
import { date, stackedDate } from "./format.js";
import { settingsPage, type SettingsChrome } from "./settings-chrome.js";

const methodLabel = { email_link: "Email link", auth_app: "Auth app", sso: "SSO" } as const;

export function teamPage(
  c: SettingsChrome & {
    members: TeamMember[];
    invitations: PendingInvitation[];
    youId: string;
    notice?: string | undefined;
    error?: string | undefined;
    inviteEmail?: string;
    inviteError?: string | undefined;
  },
): SafeHtml {
  const csrf = csrfField(c.signedIn.csrf);
  const adminCount = c.members.filter((m) => m.role === "admin").length;
  const rows = c.members.map((m) => {
    const you = m.userId === c.youId;
    const lastAdmin = m.role === "admin" && adminCount <= 1;
    return html`<tr>
<td>${m.name}${you ? " (you)" : ""}</td><td>${m.email}${m.emailChangedAt !== null ? html`<br><span class="muted" style="font-size:.85rem">changed ${date(m.emailChangedAt)}</span>` : ""}</td>
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
    (
      i,
    ) => html`<tr><td>—</td><td>${i.email}</td><td>${i.role === "admin" ? "Account Admin" : "Member"}</td><td>—</td><td>${i.expired ? "Invitation expired" : "Invited"}</td><td>expires ${date(i.expiresAt)}</td>
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
