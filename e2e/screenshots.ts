// `npm run screenshots`: the README's gallery, docs/screenshots/<page>-desktop.png and -phone.png, taken in Debian
// chromium from the pages of e2e/page-list.ts marked with `screenshot`, in the world of e2e/page-world.ts. Not part of
// `npm test` (it writes files); type-checked and linted with the rest.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { PAGES } from "./page-list.js";
import { startWorld } from "./page-world.js";

const OUT = fileURLToPath(new URL("../docs/screenshots/", import.meta.url));

/** The viewport only, not the whole page: small files that show what a person sees first. */
const SIZES = [
  { device: "desktop", width: 1280, height: 800 },
  { device: "phone", width: 390, height: 844 },
] as const;

async function main(): Promise<void> {
  mkdirSync(OUT, { recursive: true });
  const world = await startWorld();
  try {
    for (const pageCase of PAGES.filter((p) => p.screenshot !== undefined)) {
      const page = await world.newPage(pageCase.as !== undefined ? { as: pageCase.as } : {});
      if (pageCase.path !== undefined) await page.goto(pageCase.path);
      if (pageCase.open) await pageCase.open(page, world);
      await page.waitForLoadState();
      for (const size of SIZES) {
        await page.setViewportSize({ width: size.width, height: size.height });
        const file = join(OUT, `${pageCase.screenshot}-${size.device}.png`);
        await page.screenshot({ path: file, animations: "disabled", caret: "hide" });
        console.log(file);
      }
      await page.context().close();
    }
  } finally {
    await world.close();
  }
}

await main();
