import { html, type SafeHtml } from "../../html.js";
import { pathTo } from "../../paths.js";
import { layout } from "./layout.js";

/** What every signed-in settings page draws around its content (built by http/chrome.ts). */
export interface SettingsChrome {
  productName: string;
  signedIn: { email: string; accountName: string; csrf: string };
  isAdmin: boolean;
  /** The account requires the auth app and this member has not set it up: no way out but setup, so no settings navigation. */
  setupOnly?: boolean;
}

function settingsNav(c: SettingsChrome, current: string): SafeHtml {
  const link = (href: string, label: string): SafeHtml =>
    html`<a href="${href}" ${current === href ? html`aria-current="page"` : ""}>${label}</a>`;
  return html`<nav aria-label="Account settings" style="display:flex;gap:1rem;margin-bottom:1rem">${link(pathTo("team"), "Team Members")}${link(pathTo("sessions"), "Sessions")}${c.isAdmin ? [link(pathTo("security"), "Security"), link(pathTo("audit"), "Audit log")] : ""}</nav>`;
}

export function settingsPage(c: SettingsChrome, title: string, current: string, body: SafeHtml, wide = true): SafeHtml {
  const nav = c.setupOnly ? "" : html`<p class="muted"><a href="${pathTo("settings")}">Account Settings</a></p>${settingsNav(c, current)}`;
  return layout({ title, productName: c.productName, signedIn: c.signedIn, wide, body: html`${nav}${body}` });
}
