import { html, type SafeHtml } from "../../html.js";
import { layout } from "./layout.js";

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
