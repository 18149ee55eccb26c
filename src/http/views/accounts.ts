import { html, type SafeHtml } from "../../html.js";
import { pathTo } from "../../paths.js";
import type { AccountChoice } from "../../team/switch-account.js";
import { csrfField, layout } from "./layout.js";

export function accountPickerPage(o: {
  productName: string;
  signedIn: { email: string; accountName: string; csrf: string };
  accounts: AccountChoice[];
}): SafeHtml {
  return layout({
    title: "Choose an account",
    productName: o.productName,
    signedIn: o.signedIn,
    body: html`<div class="card"><h1>Choose an account</h1><p>You are a member of several team accounts. Which one do you want to use?</p>
<ul style="list-style:none;padding:0">${o.accounts.map(
      (
        a,
      ) => html`<li style="margin:.5rem 0"><form method="post" action="${pathTo("accountsSwitch")}">${csrfField(o.signedIn.csrf)}<input type="hidden" name="accountId" value="${a.id}">
<button type="submit" style="margin:0">${a.name}</button> <span class="muted">${a.role === "admin" ? "Account Admin" : "Member"}${a.current ? " · current" : ""}</span></form></li>`,
    )}</ul></div>`,
  });
}

export function helpPage(o: {
  productName: string;
  signedIn?: { email: string; accountName: string; csrf: string } | undefined;
}): SafeHtml {
  return layout({
    title: "Help",
    productName: o.productName,
    signedIn: o.signedIn,
    body: html`<div class="card"><h1>Two-factor authentication help</h1>
<p>${o.productName} asks for a second factor after your password: by default a link emailed to you (open it in the same browser), or a 6-digit code from an authenticator app.</p>
<h2>Authenticator apps</h2>
<p>Any app for time-based one-time passwords (TOTP) works: Google Authenticator, Microsoft Authenticator, Authy, Duo Mobile, 1Password.</p>
<h2>Locked out?</h2>
<ol><li>Use one of your recovery codes instead of the app code ("Use a recovery code" on the sign-in page). Each works once.</li>
<li>Ask another Account Admin to remove you and invite you again: you set a new password and two-factor authentication.</li>
<li>No codes and no other admin? <a href="${pathTo("support")}">Ask support for a reset</a> with the email address of your login: support verifies your identity, and the reset happens after a waiting period you can cancel from your inbox.</li></ol>
<p><a href="${pathTo("home")}">Back</a></p></div>`,
  });
}
