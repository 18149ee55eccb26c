import { html, type SafeHtml } from "../../html.js";
import { pathTo } from "../../paths.js";
import type { PolicyOverview } from "../../team/policy.js";
import type { SsoConnectionView } from "../../team/sso.js";
import { alert, csrfField } from "./layout.js";
import { settingsPage, type SettingsChrome } from "./settings-chrome.js";

function ssoSection(sso: SsoConnectionView | null): SafeHtml {
  return html`<h2 id="sso">Single sign-on</h2>
${
  sso
    ? html`<p><strong>Connected.</strong> People with a verified email at ${sso.domains.join(", ")} sign in through your identity provider and are added as SSO members (${sso.ssoMembers} now). Your provider handles their second factor; the auth-app requirement does not apply to them.</p>
<table class="pairs"><tbody>
<tr><th scope="row">Issuer</th><td>${sso.issuer}</td></tr>
<tr><th scope="row">Client id</th><td>${sso.clientId}</td></tr>
<tr><th scope="row">Domains</th><td>${sso.domains.join(", ")}</td></tr>
<tr><th scope="row">Redirect URI</th><td><code>${sso.redirectUri}</code></td></tr>
</tbody></table>`
    : html`<p>Not connected. Your operator can connect an OpenID Connect provider with <code>latchkey sso connect</code>; register <code>/sso/callback</code> on this server's address as its redirect URI.</p>`
}`;
}

export function securityPage(
  c: SettingsChrome & { overview: PolicyOverview; sso?: SsoConnectionView | null; notice?: string | undefined; error?: string | undefined },
): SafeHtml {
  const o = c.overview;
  const csrf = csrfField(c.signedIn.csrf);
  const on = o.policy === "auth_app_required";
  return settingsPage(
    c,
    "Security",
    pathTo("security"),
    html`<div class="card"><h1>Security</h1>
${alert("ok", c.notice)}${alert("error", c.error)}
<h2>Require auth app for all team members</h2>
<p>By default every member finishes signing in with an <strong>email link</strong>. Email is the weaker second factor: anyone who can read a member's inbox can use it, and NIST SP 800-63B does not accept email as a second factor. We recommend requiring an <strong>authenticator app</strong>.</p>
${
  on
    ? html`<p><strong>On.</strong> Every member who signs in with a password must use an auth app. ${o.membersWithoutAuthApp > 0 ? `${o.membersWithoutAuthApp} of them still ${o.membersWithoutAuthApp === 1 ? "has to set it up and is" : "have to set it up and are"} sent to do so on their next request.` : "All of them have."} SSO members are exempt (${o.ssoMembers}).</p>
<form method="post" action="${pathTo("securityPolicy")}">${csrf}<input type="hidden" name="policy" value="email_link"><button type="submit">Stop requiring the auth app</button></form>`
    : o.canRequire
      ? html`<p>Turning this on sends <strong>${o.membersWithoutAuthApp}</strong> member${o.membersWithoutAuthApp === 1 ? "" : "s"} without an auth app to set one up on their next request (they are emailed now); they can do nothing else until they finish. ${o.ssoMembers} SSO member${o.ssoMembers === 1 ? " is" : "s are"} exempt.</p>
<form method="post" action="${pathTo("securityPolicy")}">${csrf}<input type="hidden" name="policy" value="auth_app_required"><button type="submit">Enable Auth App</button></form>`
      : html`<p id="policy-unavailable"><strong>Unavailable:</strong> set up the auth app on your own login first, so you cannot lock yourself out. <a href="${pathTo("twoFactor")}">Set up your auth app</a></p>
<button type="button" disabled aria-disabled="true" aria-describedby="policy-unavailable">Enable Auth App</button>`
}
${ssoSection(c.sso ?? null)}
</div>`,
    false,
  );
}
