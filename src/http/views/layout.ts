import { html, raw, type SafeHtml } from "../../html.js";
import { pathTo } from "../../paths.js";

// One stylesheet, inline (the CSP allows inline styles, not inline scripts). No page may be wider than a 320-px phone
// (e2e/pages.e2e.test.ts checks every page): the header wraps, long words break, and the wide tables (`table.stack`)
// become one card per row below 64rem (a seven-column table needs about that much), each value under its column's name (`data-label`). The tables stay tables for
// screen readers: the name is drawn with empty alternative text (`content: … / ""`), so it is not read twice, and an
// empty cell is collapsed, not removed, so the cells after it keep their column.
const STYLE = `
:root{color-scheme:light dark;--fg:#16181d;--muted:#5b6270;--bg:#f6f7f9;--card:#fff;--line:#d9dce2;--accent:#1f4fd1;--accent-fg:#fff;--err:#b3261e;--err-bg:#fdecea;--ok:#1e6b35;--ok-bg:#e7f5eb}
@media (prefers-color-scheme:dark){:root{--fg:#eceef2;--muted:#a4abb8;--bg:#111318;--card:#1b1e25;--line:#343945;--accent:#8fb0ff;--accent-fg:#0b1020;--err:#ffb4ab;--err-bg:#3a1715;--ok:#9ad9a8;--ok-bg:#15301d}}
*{box-sizing:border-box}[hidden]{display:none!important}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);background:var(--bg);overflow-wrap:break-word}
header{display:flex;flex-wrap:wrap;gap:.5rem 1.5rem;align-items:center;justify-content:space-between;padding:.75rem 1.25rem;border-bottom:1px solid var(--line);background:var(--card)}
header .brand{font-weight:700;text-decoration:none;color:var(--fg)}header nav{display:flex;flex-wrap:wrap;gap:.25rem 1rem;align-items:center}
header nav .who{overflow-wrap:anywhere}header form{margin:0}
main{max-width:34rem;margin:2.5rem auto;padding:0 1rem}main.wide{max-width:64rem}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:1.5rem}.card+.card{margin-top:1.5rem}
h1{font-size:1.5rem;margin:0 0 1rem}h2{font-size:1.15rem;margin:1.5rem 0 .5rem}p{margin:.5rem 0 1rem}
label{display:block;font-weight:600;margin:1rem 0 .25rem}label.check{font-weight:400}.hint{color:var(--muted);font-size:.9rem;margin:.25rem 0 0}
input[type=text],input[type=email],input[type=password],select,textarea{width:100%;min-height:2.875rem;padding:.6rem .7rem;font:inherit;color:inherit;background:transparent;border:1px solid var(--line);border-radius:6px}
select{background:var(--card);max-width:100%}td select{width:auto}
input[aria-invalid=true]{border-color:var(--err)}
button,.button{display:inline-block;margin-top:1.25rem;padding:.6rem 1.1rem;font:inherit;font-weight:600;border:0;border-radius:6px;background:var(--accent);color:var(--accent-fg);cursor:pointer;text-decoration:none}
button:disabled{opacity:.5;cursor:not-allowed}button.small{margin:0;padding:.3rem .6rem;white-space:nowrap}
button.link{background:none;color:var(--accent);padding:0;margin:0;min-height:24px;font-weight:400;text-decoration:underline}
.actions{display:flex;flex-wrap:wrap;gap:.25rem 1rem;align-items:center}.actions form{margin:0}
:focus-visible{outline:3px solid var(--accent);outline-offset:2px}
.alert{padding:.75rem 1rem;border-radius:6px;margin:0 0 1rem}.alert.error{background:var(--err-bg);color:var(--err)}.alert.ok{background:var(--ok-bg);color:var(--ok)}
.field-error{color:var(--err);font-size:.9rem;margin:.25rem 0 0}.muted{color:var(--muted)}
a{color:var(--accent)}code{overflow-wrap:anywhere}td code{overflow-wrap:inherit}pre{white-space:pre-wrap;overflow-wrap:anywhere}
table{border-collapse:collapse;width:100%}th,td{text-align:left;vertical-align:top;padding:.5rem;border-bottom:1px solid var(--line)}
table.pairs td,table.pairs td code{overflow-wrap:anywhere}
.skip{position:absolute;left:-999px}.skip:focus{left:1rem;top:1rem;background:var(--card);padding:.5rem}
.visually-hidden{position:absolute;width:1px;height:1px;overflow:hidden;clip-path:inset(50%);white-space:nowrap}
.tabs{display:flex;flex-wrap:wrap;gap:.25rem 1.25rem;margin:0 0 1.25rem;border-bottom:1px solid var(--line)}
.tabs a{display:inline-block;padding:.4rem 0;margin-bottom:-1px;border-bottom:3px solid transparent;text-decoration:none}.tabs a:hover{text-decoration:underline}
.tabs a[aria-current=page]{color:var(--fg);font-weight:600;border-bottom-color:var(--accent)}
.crumbs ol{display:flex;flex-wrap:wrap;gap:.25rem .4rem;list-style:none;margin:0 0 1rem;padding:0;color:var(--muted)}
.crumbs li+li::before{content:"›";content:"›" / "";margin-right:.4rem}.crumbs [aria-current=page]{color:var(--fg)}
@media (max-width:64rem){
table.stack,table.stack tbody,table.stack tr,table.stack td{display:block}
table.stack thead{position:absolute;width:1px;height:1px;overflow:hidden;clip-path:inset(50%);white-space:nowrap}
table.stack tr{border:1px solid var(--line);border-radius:8px;padding:.5rem .75rem;margin:0 0 .75rem}
table.stack td{border:0;padding:.2rem 0;overflow-wrap:anywhere}
table.stack td[data-label]::before{content:attr(data-label);content:attr(data-label) / "";display:block;font-size:.8rem;font-weight:600;color:var(--muted)}
table.stack td:empty{padding:0}table.stack td:empty::before{content:none}
}
@media (max-width:30rem){header{padding:.5rem .75rem}main{margin:1.25rem auto;padding:0 .5rem}.card{padding:1rem}}
`;

export interface LayoutOptions {
  title: string;
  body: SafeHtml;
  /** Shown in the header when someone is signed in: their email and a sign-out button. */
  signedIn?: { email: string; accountName: string; csrf: string } | undefined;
  wide?: boolean;
  /** The configured name (`LATCHKEY_PRODUCT_NAME`): required, so no page can fall back to "Latchkey" by omission. */
  productName: string;
  /** Extra elements for <head> (e.g. the refresh of the SSO hand-over page). */
  head?: SafeHtml;
}

export function layout(options: LayoutOptions): SafeHtml {
  const product = options.productName;
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="same-origin">
<title>${options.title} · ${product}</title>
<style>${raw(STYLE)}</style>
${options.head ?? ""}
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header>
  <a class="brand" href="${pathTo("home")}">${product}</a>
  ${
    options.signedIn
      ? html`<nav aria-label="Account">
  <span class="muted who">${options.signedIn.email} · ${options.signedIn.accountName}</span>
  <a href="${pathTo("accounts")}">Switch account</a>
  <a href="${pathTo("settings")}">Settings</a>
  <form method="post" action="${pathTo("logout")}"><input type="hidden" name="_csrf" value="${options.signedIn.csrf}"><button class="link" type="submit">Sign out</button></form>
</nav>`
      : ""
  }
</header>
<main id="main" class="${options.wide ? "wide" : ""}">
${options.body}
</main>
</body>
</html>`;
}

export interface FieldOptions {
  label: string;
  name: string;
  type?: "text" | "email" | "password";
  value?: string;
  autocomplete?: string;
  error?: string | undefined;
  hint?: string;
  autofocus?: boolean;
  required?: boolean;
  inputmode?: string;
  maxlength?: number;
  minlength?: number;
}

/**
 * The field a form's page opens with the focus on: the first of `names` (in the form's order) that has an error, else
 * the first. After a mistake a keyboard or screen-reader user lands on what to fix and hears why (aria-describedby).
 */
export function focusedField<N extends string>(names: readonly [N, ...N[]], errors: Partial<Record<N, string | undefined>>): N {
  return names.find((name) => errors[name] !== undefined) ?? names[0];
}

/** A labelled input whose error is tied to it with aria-describedby, so screen readers read it with the field. */
export function field(o: FieldOptions): SafeHtml {
  const id = `f-${o.name}`;
  const describedBy = [o.hint ? `${id}-hint` : "", o.error ? `${id}-error` : ""].filter(Boolean).join(" ");
  return html`<label for="${id}">${o.label}</label>
<input id="${id}" name="${o.name}" type="${o.type ?? "text"}" ${o.value !== undefined ? html`value="${o.value}"` : ""} ${o.autocomplete ? html`autocomplete="${o.autocomplete}"` : ""} ${o.required === false ? "" : "required"} ${o.autofocus ? "autofocus" : ""} ${o.inputmode ? html`inputmode="${o.inputmode}"` : ""} ${o.maxlength ? html`maxlength="${o.maxlength}"` : ""} ${o.minlength ? html`minlength="${o.minlength}"` : ""} ${o.error ? html`aria-invalid="true"` : ""} ${describedBy ? html`aria-describedby="${describedBy}"` : ""}>
${o.hint ? html`<p class="hint" id="${id}-hint">${o.hint}</p>` : ""}
${o.error ? html`<p class="field-error" id="${id}-error">${o.error}</p>` : ""}`;
}

/** A message box; errors are announced (role=alert), notices are polite (role=status). */
export function alert(kind: "error" | "ok", message: string | undefined): SafeHtml | "" {
  if (!message) return "";
  return html`<div class="alert ${kind}" role="${kind === "error" ? "alert" : "status"}">${message}</div>`;
}

export function csrfField(token: string): SafeHtml {
  return html`<input type="hidden" name="_csrf" value="${token}">`;
}
