import { html, type SafeHtml } from "../../html.js";
import { csrfField, layout } from "./layout.js";

/** What every page outside the settings draws around its content. */
export interface PageChrome {
  productName: string;
  signedIn?: { email: string; accountName: string; csrf: string } | undefined;
}

/** A page that says one thing and offers one way on: errors, confirmations, dead links. */
export function messagePage(o: {
  title: string;
  message: string;
  action?: { href: string; label: string };
  productName: string;
}): SafeHtml {
  return layout({
    title: o.title,
    productName: o.productName,
    body: html`<div class="card">
<h1>${o.title}</h1>
<p>${o.message}</p>
${o.action ? html`<p><a class="button" href="${o.action.href}">${o.action.label}</a></p>` : ""}
</div>`,
  });
}

/**
 * The page an emailed link opens (support confirmation and cancellation, email change confirmation and stop): what
 * its one button will do. The change itself happens on POST, because mail scanners fetch links.
 */
export function emailedLinkPage(o: {
  productName: string;
  csrf: string;
  title: string;
  text: string;
  action: string;
  button: string;
}): SafeHtml {
  return layout({
    title: o.title,
    productName: o.productName,
    body: html`<div class="card"><h1>${o.title}</h1><p>${o.text}</p>
<form method="post" action="${o.action}">${csrfField(o.csrf)}<button type="submit">${o.button}</button></form></div>`,
  });
}
