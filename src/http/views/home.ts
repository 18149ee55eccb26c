import { html, type SafeHtml } from "../../html.js";
import { pathTo } from "../../paths.js";
import { layout } from "./layout.js";
import type { PageChrome } from "./message.js";

export function homePage(
  o: PageChrome & { name: string; email: string; accountName: string; role: string; method: string; lowRecoveryCodes: number | null },
): SafeHtml {
  return layout({
    title: "Signed in",
    productName: o.productName,
    signedIn: o.signedIn,
    body: html`<div class="card">
<h1>Welcome, ${o.name}</h1>
${o.lowRecoveryCodes !== null ? html`<div class="alert error" role="alert">You have only ${o.lowRecoveryCodes} recovery code${o.lowRecoveryCodes === 1 ? "" : "s"} left. <a href="${pathTo("twoFactor")}">Generate new recovery codes</a> so you cannot be locked out.</div>` : ""}
<p>You are signed in as <strong>${o.email}</strong> to the account <strong>${o.accountName}</strong> (${o.role === "admin" ? "Account Admin" : "Member"}).</p>
<p class="muted">Two-factor authentication: ${o.method}. <a href="${pathTo("profile")}">Edit your settings</a></p>
</div>`,
  });
}
