import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import type { AxeResults, Result } from "axe-core";
import type { Page } from "playwright-core";

/** axe-core's own build (`require.resolve("axe-core/axe.min.js")`), read once. */
const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

/** The WCAG 2.2 AA rule set: every level A and AA rule of WCAG 2.0, 2.1 and 2.2. */
export const WCAG_22_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"] as const;

/** The narrowest phone the pages must fit: nothing wider than the viewport, no sideways scrolling. */
export const PHONE_WIDTH = 320;

/** One line per rule broken: the rule, its help text, and the elements (CSS selectors) that break it. */
export function describeViolations(violations: Result[]): string[] {
  return violations.map(
    (v) =>
      `${v.id} (${v.impact ?? "?"}): ${v.help} — ${v.nodes.map((n) => `${JSON.stringify(n.target)} ${n.failureSummary ?? ""}`).join("; ")}`,
  );
}

/** Runs axe-core with the WCAG 2.2 AA rules on the page as it is now; returns the violations, described. */
export async function axeViolations(page: Page): Promise<string[]> {
  // Evaluated through the DevTools protocol rather than added as a <script>: the pages' CSP (`script-src 'self'`, no
  // inline script) stays in force for the page, and does not apply to what the test runs.
  if (!(await page.evaluate(() => "axe" in window))) await page.evaluate(AXE_SOURCE);
  const results = await page.evaluate(
    async (tags) =>
      (window as unknown as { axe: { run(context: Document, options: object): Promise<AxeResults> } }).axe.run(document, {
        runOnly: { type: "tag", values: tags },
        resultTypes: ["violations"],
      }),
    [...WCAG_22_AA],
  );
  return describeViolations(results.violations);
}

/** How wide the page is laid out: wider than the viewport means the person scrolls sideways. */
export async function pageWidth(page: Page): Promise<number> {
  return page.evaluate(() => document.documentElement.scrollWidth);
}

/** The elements that stick out past the right edge of the viewport, to say what makes a page too wide. */
export async function widestElements(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    const width = document.documentElement.clientWidth;
    const out: string[] = [];
    for (const element of Array.from(document.querySelectorAll("body *"))) {
      const box = element.getBoundingClientRect();
      if (box.right > width + 0.5 && box.width > 0) {
        const id = element.id ? `#${element.id}` : "";
        const cls = typeof element.className === "string" && element.className ? `.${element.className.split(" ").join(".")}` : "";
        out.push(`${element.tagName.toLowerCase()}${id}${cls} (right edge ${Math.round(box.right)} px)`);
      }
    }
    return out.slice(0, 8);
  });
}
