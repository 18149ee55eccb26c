import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { axeViolations, pageWidth, PHONE_WIDTH, widestElements } from "./page-checks.js";
import { PAGES } from "./page-list.js";
import { startWorld, type World } from "./page-world.js";

/**
 * Every page people see, in each of its states (e2e/page-list.ts), in Debian chromium against a real Latchkey server:
 * axe-core's WCAG 2.2 AA rules (wcag2a, wcag2aa, wcag21a, wcag21aa, wcag22aa) find nothing, on a desktop screen in the
 * light colour scheme and again on a 320-px phone in the dark one; and on that phone the page is no wider than the
 * screen (nothing to scroll sideways). Where fields are marked invalid, the focus is on the first of them. The same page is looked at in both: it is resized, not loaded again, since some
 * states can be reached once (a recovery code shown, a link spent).
 */
describe("every page and state: WCAG 2.2 AA by axe-core, and no wider than a 320-px phone", () => {
  let world: World;

  beforeAll(async () => {
    world = await startWorld();
  }, 180_000);

  afterAll(async () => {
    await world?.close();
  });

  async function h1(page: Page): Promise<string> {
    const headings = await page.getByRole("heading", { level: 1 }).allInnerTexts();
    return headings.map((h) => h.trim()).join(" | ");
  }

  for (const pageCase of PAGES) {
    it(pageCase.name, async () => {
      const page = await world.newPage(pageCase.as !== undefined ? { as: pageCase.as } : {});
      if (pageCase.path !== undefined) await page.goto(pageCase.path);
      if (pageCase.open) await pageCase.open(page, world);
      await page.waitForLoadState();
      const heading = await h1(page);
      if (typeof pageCase.heading === "string") expect(heading, `the page at ${page.url()}`).toBe(pageCase.heading);
      else expect(heading, `the page at ${page.url()}`).toMatch(pageCase.heading);

      expect.soft(await axeViolations(page), "WCAG 2.2 AA at 1280 px, light colours").toEqual([]);
      // After a mistake the focus is on the first field marked invalid: a keyboard or screen-reader user lands on what
      // to fix and hears its message (tied to it with aria-describedby), instead of starting again at the top.
      const focus = await page.evaluate(() => {
        const first = document.querySelector('[aria-invalid="true"]');
        return first === null ? null : { first: first.id, focused: document.activeElement?.id ?? "" };
      });
      if (focus !== null) expect.soft(focus.focused, "the field focused after a mistake").toBe(focus.first);

      await page.setViewportSize({ width: PHONE_WIDTH, height: 640 });
      await page.emulateMedia({ colorScheme: "dark" });
      const width = await pageWidth(page);
      expect
        .soft(width, `laid out wider than ${PHONE_WIDTH} px by: ${(await widestElements(page)).join(", ")}`)
        .toBeLessThanOrEqual(PHONE_WIDTH);
      expect.soft(await axeViolations(page), `WCAG 2.2 AA at ${PHONE_WIDTH} px, dark colours`).toEqual([]);
      await page.context().close();
    });
  }
});
