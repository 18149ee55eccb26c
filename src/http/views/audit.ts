import { html, type SafeHtml } from "../../html.js";
import { pathTo } from "../../paths.js";
import type { AuditEntry } from "../../audit/log.js";
import type { TeamMember } from "../../team/members.js";
import { stackedDate } from "./format.js";
import { settingsPage, type SettingsChrome } from "./settings-chrome.js";

/** The table's columns; each cell repeats its column's name (`data-label`) for the card a row becomes on a phone. */
const COLUMNS = ["When (UTC)", "Event", "Who", "From", "Details"] as const;

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
<form method="get" action="${pathTo("audit")}" style="display:flex;gap:0 1rem;flex-wrap:wrap;align-items:end">
<div style="max-width:100%"><label for="a-member">Member</label><select id="a-member" name="member" style="width:auto"><option value="">Everyone</option>${c.members.map((m) => html`<option value="${m.userId}" ${f.member === m.userId ? "selected" : ""}>${m.email}</option>`)}</select></div>
<div><label for="a-event">Event</label><input id="a-event" name="event" type="text" value="${f.event}" placeholder="e.g. sign_in." style="width:12rem"></div>
<div><label for="a-from">From (UTC date)</label><input id="a-from" name="from" type="text" value="${f.from}" placeholder="2026-01-31" style="width:9rem"></div>
<div><label for="a-to">Until</label><input id="a-to" name="to" type="text" value="${f.to}" placeholder="2026-12-31" style="width:9rem"></div>
<button type="submit" style="margin:1rem 0 0">Filter</button></form>
${
  c.entries.length === 0
    ? html`<p style="margin-top:1rem">No events match. Sign-ins, factor changes, invitations and policy changes appear here as they happen.</p>`
    : html`<table class="stack" style="font-size:.9rem;margin-top:1rem"><thead><tr>${COLUMNS.map((name) => html`<th scope="col">${name}</th>`)}</tr></thead><tbody>
${c.entries.map(
  (
    e,
  ) => html`<tr><td data-label="When (UTC)">${stackedDate(e.at)}</td><td data-label="Event"><code>${e.type}</code></td><td data-label="Who">${e.userEmail ?? (typeof e.detail["email"] === "string" ? e.detail["email"] : "—")}${
    e.actorEmail && e.actorUserId !== e.userId ? html`<br><span class="muted">by ${e.actorEmail}</span>` : ""
  }</td>
<td data-label="From">${e.ip ?? ""}<br><span class="muted" style="font-size:.8rem;overflow-wrap:anywhere" title="${e.userAgent ?? ""}">${(e.userAgent ?? "").length > 60 ? `${(e.userAgent ?? "").slice(0, 59)}…` : (e.userAgent ?? "")}</span></td><td data-label="Details" style="font-size:.85rem">${Object.entries(
    e.detail,
  )
    .filter(([k]) => k !== "email")
    .map(([k, v]) => `${k}: ${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join(", ")}</td></tr>`,
)}</tbody></table>`
}
${c.nextHref ? html`<p><a href="${c.nextHref}">Older events</a></p>` : ""}
</div>`,
  );
}
