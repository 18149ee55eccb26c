import { html, type SafeHtml } from "../../html.js";
import { alert, csrfField, field, layout } from "./layout.js";
import { pathTo } from "../../paths.js";

export function supportRequestPage(o: {
  productName: string;
  csrf: string;
  email?: string;
  message?: string;
  error?: string | undefined;
  emailError?: string | undefined;
}): SafeHtml {
  return layout({
    title: "Ask for a two-factor reset",
    productName: o.productName,
    body: html`<div class="card"><h1>Locked out? Ask support</h1>
${alert("error", o.error)}
<p>Try these first: a <a href="${pathTo("login")}">recovery code</a> at sign-in, or ask another Account Admin of your team to remove you and invite you again.</p>
<p>If neither works, ask for a reset of your two-factor authentication. We email the address of your login to confirm it is you asking; support then verifies your identity, and the reset happens only after a waiting period, which you can cancel from your inbox. This takes time on purpose: it protects you from people pretending to be you.</p>
<form method="post" action="${pathTo("support")}" novalidate>
${csrfField(o.csrf)}
${field({ label: "Email", name: "email", type: "email", autocomplete: "username", value: o.email ?? "", autofocus: true, error: o.emailError, maxlength: 254, hint: "The address you sign in with." })}
<label for="f-message">What happened? (optional)</label>
<textarea id="f-message" name="message" rows="4" maxlength="2000">${o.message ?? ""}</textarea>
<button type="submit">Send request</button>
</form></div>`,
  });
}
