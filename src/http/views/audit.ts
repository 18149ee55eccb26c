import { html, type SafeHtml } from "../../html.js";
import { pathTo } from "../../paths.js";
import type { AuditEntry } from "../../audit/log.js";
import type { TeamMember } from "../../team/members.js";
import { stackedDate } from "./format.js";
import { settingsPage, type SettingsChrome } from "./settings-chrome.js";

export function auditPage(
  c: SettingsChrome & {
    entries: AuditEntry[];
    nextHref: string | null;
    filters: { member: string; event: string; from: string; to: string };
    members: TeamMember[];
  },
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
  (
    e,
  ) => html`<tr><td>${stackedDate(e.at)}</td><td><code>${e.type}</code></td><td>${e.userEmail ?? (typeof e.detail["email"] === "string" ? e.detail["email"] : "—")}${
    e.actorEmail && e.actorUserId !== e.userId ? html`<br><span class="muted">by ${e.actorEmail}</span>` : ""
  }</td>
<td>${e.ip ?? ""}<br><span class="muted" style="font-size:.8rem;overflow-wrap:anywhere" title="${e.userAgent ?? ""}">${(e.userAgent ?? "").length > 60 ? `${(e.userAgent ?? "").slice(0, 59)}…` : (e.userAgent ?? "")}</span></td><td style="font-size:.85rem;overflow-wrap:anywhere">${Object.entries(
    e.detail,
  )
    .filter(([k]) => k !== "email")
    .map(([k, v]) => `${k}: ${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join(", ")}</td></tr>`,
)}</tbody></table></div>`
}
${c.nextHref ? html`<p><a href="${c.nextHref}">Older events</a></p>` : ""}
</div>`,
  );
}
