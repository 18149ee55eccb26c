import { html, type SafeHtml } from "../../html.js";
import { alert, csrfField, field, layout } from "./layout.js";
import { pathTo } from "../../paths.js";

export function codePage(o: { productName: string; csrf: string; error?: string | undefined }): SafeHtml {
  return layout({
    title: "Authentication code",
    productName: o.productName,
    body: html`<div class="card">
<h1>Enter your authentication code</h1>
${alert("error", o.error)}
<p>Open your authenticator app and enter the 6-digit code it shows for ${o.productName}.</p>
<form method="post" action="${pathTo("loginCode")}" novalidate>
${csrfField(o.csrf)}
${field({ label: "Authentication code", name: "code", autocomplete: "one-time-code", inputmode: "numeric", autofocus: true, maxlength: 7, error: undefined })}
<button type="submit">Verify</button>
</form>
<p style="margin-top:1.5rem"><a href="${pathTo("loginRecovery")}">Use a recovery code</a> if you do not have your phone.</p>
<p class="muted"><a href="${pathTo("login")}">Start over</a></p>
</div>`,
  });
}

export function recoveryCodePage(o: { productName: string; csrf: string; error?: string | undefined }): SafeHtml {
  return layout({
    title: "Recovery code",
    productName: o.productName,
    body: html`<div class="card">
<h1>Use a recovery code</h1>
${alert("error", o.error)}
<p>Enter one of the recovery codes you saved when you set up your authenticator app. Each code works once.</p>
<form method="post" action="${pathTo("loginRecovery")}" novalidate>
${csrfField(o.csrf)}
${field({ label: "Recovery code", name: "code", autocomplete: "off", autofocus: true, maxlength: 40, hint: "Like abcde-12345-fghjk. Capitals and dashes do not matter." })}
<button type="submit">Verify</button>
</form>
<p style="margin-top:1.5rem"><a href="${pathTo("loginCode")}">Use your authenticator app instead</a></p>
<p class="muted">No codes and no phone? Ask an Account Admin to remove and re-add you, or <a href="${pathTo("support")}">ask support for a reset</a>.</p>
</div>`,
  });
}
