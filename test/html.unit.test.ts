import { expect, it } from "vitest";
import { html, raw } from "../src/html.js";

/** Every page is built with `html`: each interpolated value escaped unless it is already safe markup. */
it("escapes each of & < > \" ' in interpolated text, wherever it stands in the value, and leaves other text as it is", () => {
  const value = `a&b<c>d"e'f & <script>alert("x")</script>`;
  expect(html`<p title="${value}">${value}</p>`.value).toBe(
    '<p title="a&amp;b&lt;c&gt;d&quot;e&#39;f &amp; &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;">a&amp;b&lt;c&gt;d&quot;e&#39;f &amp; &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;</p>',
  );
  expect(html`<p>${"plain text, ü and – only"}</p>`.value).toBe("<p>plain text, ü and – only</p>");
  // The same value twice in a row: the test before the replace keeps no state between calls.
  expect(html`${"<"}${"<"}${"ok"}${"<"}`.value).toBe("&lt;&lt;ok&lt;");
});

it("renders numbers, nested lists and safe markup; null, undefined and false render nothing", () => {
  expect(html`${1}|${0}|${true}|${null}|${undefined}|${false}|${["<a>", raw("<b>"), [html`<i>${"&"}</i>`]]}`.value).toBe(
    "1|0|true||||&lt;a&gt;<b><i>&amp;</i>",
  );
  expect(html``.value).toBe("");
  expect(html`${"x"}`.value).toBe("x");
});
