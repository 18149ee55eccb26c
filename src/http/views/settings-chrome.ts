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

/** The account's tabs (Team Members, and for admins Security and Audit log); the one shown is marked as the current page. */
function accountTabs(c: SettingsChrome, current: string): SafeHtml {
  const tab = (href: string, label: string): SafeHtml =>
    html`<a href="${href}" ${current === href ? html`aria-current="page"` : ""}>${label}</a>`;
  return html`<nav aria-label="Account settings" class="tabs">${tab(pathTo("team"), "Team Members")}${c.isAdmin ? [tab(pathTo("security"), "Security"), tab(pathTo("audit"), "Audit log")] : ""}</nav>`;
}

/** A page of the team account's settings: under "Account Settings", with the account's tabs. */
export function settingsPage(c: SettingsChrome, title: string, current: string, body: SafeHtml, wide = true): SafeHtml {
  const nav = c.setupOnly ? "" : html`<p class="muted"><a href="${pathTo("settings")}">Account Settings</a></p>${accountTabs(c, current)}`;
  return layout({ title, productName: c.productName, signedIn: c.signedIn, wide, body: html`${nav}${body}` });
}

export interface Crumb {
  href: string;
  label: string;
}

/** "Your settings" and "Two-factor authentication", the pages the person's own settings pages sit under. */
export const yourSettings: Crumb = { href: pathTo("profile"), label: "Your settings" };
export const twoFactorCrumb: Crumb = { href: pathTo("twoFactor"), label: "Two-factor authentication" };

/**
 * A page of the person's own settings (their password, their two-factor authentication): a breadcrumb trail back
 * through "Your settings" instead of the account's tabs, which are about the team, not about them. `here` names this
 * page (marked as the current one); `trail` the pages above it, after "Account Settings"; `wide` for a table.
 */
export function personalPage(
  c: SettingsChrome,
  title: string,
  here: string,
  body: SafeHtml,
  trail: Crumb[] = [yourSettings],
  wide = false,
): SafeHtml {
  const links = [{ href: pathTo("settings"), label: "Account Settings" }, ...trail];
  const nav = c.setupOnly
    ? ""
    : html`<nav aria-label="Breadcrumb" class="crumbs"><ol>${links.map((l) => html`<li><a href="${l.href}">${l.label}</a></li>`)}<li><span aria-current="page">${here}</span></li></ol></nav>`;
  return layout({ title, productName: c.productName, signedIn: c.signedIn, wide, body: html`${nav}${body}` });
}
