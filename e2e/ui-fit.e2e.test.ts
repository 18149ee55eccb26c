import type { CDPSession, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { enableAuthApp } from "../test/helpers/auth-app.js";
import { adoptCookies } from "./helpers.js";
import { PHONE_WIDTH } from "./page-checks.js";
import { startWorld, type World } from "./page-world.js";

interface AxNode {
  nodeId: string;
  ignored: boolean;
  role?: { value: string };
  name?: { value: string };
  childIds?: string[];
}

/**
 * What Chromium's accessibility tree (the one screen readers read, through the DevTools protocol) makes of the first
 * table on the page: its column headers, and the names of the cells of each body row, in order.
 */
async function tableAsScreenReadersGetIt(page: Page): Promise<{ headers: string[]; rows: string[][] }> {
  const cdp: CDPSession = await page.context().newCDPSession(page);
  const { nodes } = (await cdp.send("Accessibility.getFullAXTree")) as { nodes: AxNode[] };
  await cdp.detach();
  const byId = new Map(nodes.map((n) => [n.nodeId, n]));
  /** The node's descendants that are not ignored, in order (ignored ones are looked through). */
  const children = (node: AxNode): AxNode[] =>
    (node.childIds ?? []).flatMap((id) => {
      const child = byId.get(id);
      if (!child) return [];
      return child.ignored ? children(child) : [child];
    });
  const descendants = (node: AxNode, role: string): AxNode[] =>
    children(node).flatMap((c) => (c.role?.value === role ? [c] : descendants(c, role)));
  const table = nodes.find((n) => !n.ignored && n.role?.value === "table");
  if (!table) throw new Error("no table in the accessibility tree");
  const rows = descendants(table, "row");
  const headers = rows.flatMap((r) => descendants(r, "columnheader")).map((h) => h.name?.value ?? "");
  const bodyRows = rows.filter((r) => descendants(r, "columnheader").length === 0);
  return { headers, rows: bodyRows.map((r) => descendants(r, "cell").map((c) => (c.name?.value ?? "").trim())) };
}

/**
 * The UI fixes of issue 12 that a browser shows and plain HTML does not: the tables that become cards on a phone (and
 * stay tables to a screen reader), the current tab's look, the Role field's look, the Copy button without JavaScript,
 * and the HTML part of a message at /dev/mail. The world is e2e/page-world.ts's (the same teams as the page checks).
 */
describe("UI that fits a phone and reads right, in a browser", () => {
  let world: World;

  beforeAll(async () => {
    world = await startWorld();
  }, 180_000);

  afterAll(async () => {
    await world?.close();
  });

  for (const table of [
    {
      page: "Team Members",
      path: "/settings/team",
      columns: ["Name", "Email", "Role", "Two-factor authentication", "Status", "Last sign-in", "Actions"],
    },
    { page: "Audit log", path: "/settings/audit", columns: ["When (UTC)", "Event", "Who", "From", "Details"] },
  ]) {
    it(`${table.page} on a phone: one card per row, each value under its column's name; to a screen reader still a table`, async () => {
      const page = await world.newPage({ as: "admin", width: PHONE_WIDTH });
      await page.goto(table.path);
      await page.getByRole("heading", { name: table.page, level: 1 }).waitFor();

      // Drawn as cards: each row a block as wide as the page allows, the header row out of sight, the column's name
      // drawn before each value.
      const layout = await page.evaluate(() => {
        const t = document.querySelector("table")!;
        const firstRow = t.querySelector("tbody tr")!;
        const cells = Array.from(firstRow.querySelectorAll("td"));
        return {
          rowDisplay: getComputedStyle(firstRow).display,
          headerHeight: t.querySelector("thead")!.getBoundingClientRect().height,
          rowRight: firstRow.getBoundingClientRect().right,
          labels: cells.filter((c) => c.innerHTML !== "").map((c) => getComputedStyle(c, "::before").content),
        };
      });
      expect(layout.rowDisplay).toBe("block");
      expect(layout.headerHeight).toBeLessThanOrEqual(1);
      expect(layout.rowRight).toBeLessThanOrEqual(PHONE_WIDTH);
      expect(layout.labels.length).toBeGreaterThan(2);
      for (const label of layout.labels) expect(table.columns.map((c) => `"${c}" / ""`)).toContain(label);

      // Read out: the same table as on a wide screen. Every row has a cell for every column (empty ones too, so
      // nothing moves to the wrong column), and no cell's name repeats its column's name (that is drawn, not read).
      const read = await tableAsScreenReadersGetIt(page);
      expect(read.headers).toEqual(table.columns);
      expect(read.rows.length).toBeGreaterThan(1);
      for (const cells of read.rows) {
        expect(cells).toHaveLength(table.columns.length);
        cells.forEach((name, i) => expect(name.startsWith(table.columns[i]!), `cell "${name}"`).toBe(false));
      }

      // On a wide screen it is a plain table again.
      await page.setViewportSize({ width: 1280, height: 800 });
      expect(await page.evaluate(() => getComputedStyle(document.querySelector("tbody tr")!).display)).toBe("table-row");
      expect(await page.evaluate(() => getComputedStyle(document.querySelector("td")!, "::before").content)).toBe("none");
      await page.context().close();
    });
  }

  it("the team's tabs show which one is open, by aria-current and by their look; personal pages have a trail instead", async () => {
    const page = await world.newPage({ as: "admin" });
    for (const [path, current] of [
      ["/settings/team", "Team Members"],
      ["/settings/security", "Security"],
      ["/settings/audit", "Audit log"],
    ] as const) {
      await page.goto(path);
      const tabs = page.getByRole("navigation", { name: "Account settings" }).getByRole("link");
      expect(await tabs.allInnerTexts()).toEqual(["Team Members", "Security", "Audit log"]);
      const looks = await tabs.evaluateAll((links) =>
        links.map((a) => ({
          text: a.textContent,
          current: a.getAttribute("aria-current"),
          weight: getComputedStyle(a).fontWeight,
          underline: getComputedStyle(a).borderBottomColor,
        })),
      );
      const open = looks.filter((l) => l.current === "page");
      expect(open.map((l) => l.text)).toEqual([current]);
      for (const other of looks.filter((l) => l.current === null)) {
        expect(other.weight).not.toBe(open[0]!.weight);
        expect(other.underline).not.toBe(open[0]!.underline);
      }
    }
    // Your own two-factor authentication is not one of the team's tabs: a trail back to Your settings instead.
    await page.goto("/settings/two-factor");
    expect(await page.getByRole("navigation", { name: "Account settings" }).count()).toBe(0);
    const trail = page.getByRole("navigation", { name: "Breadcrumb" });
    expect(await trail.getByRole("listitem").allInnerTexts()).toEqual(["Account Settings", "Your settings", "Two-factor authentication"]);
    expect(await trail.locator('[aria-current="page"]').innerText()).toBe("Two-factor authentication");
    // The separators are drawn between the crumbs, and not read out (empty alternative text).
    const separators = await trail
      .getByRole("listitem")
      .evaluateAll((items) => items.map((li) => getComputedStyle(li, "::before").content));
    expect(separators).toEqual(["none", '"›" / ""', '"›" / ""']);
    await page.context().close();
  });

  it("the Role field of the invitation form looks like the Email field above it", async () => {
    const page = await world.newPage({ as: "admin" });
    await page.goto("/settings/team");
    const look = (label: string) =>
      page.getByLabel(label, { exact: true }).evaluate((field) => {
        const s = getComputedStyle(field);
        const box = field.getBoundingClientRect();
        const size = { width: Math.round(box.width), height: Math.round(box.height) };
        return { ...size, padding: s.padding, border: s.border, radius: s.borderRadius, font: `${s.fontSize} ${s.fontFamily}` };
      });
    expect(await look("Role")).toEqual(await look("Email"));
    await page.context().close();
  });

  it("the recovery codes' Copy button is hidden without JavaScript (it needs it) and offered with it", async () => {
    const person = await world.freshPerson();
    world.later();
    const { browser: http } = await enableAuthApp(world.server, person);
    world.later();
    const manage = await http.get("/settings/two-factor");
    const csrf = /name="_csrf" value="([^"]+)"/.exec(manage.body)?.[1] ?? "";
    expect((await http.request("POST", "/settings/two-factor/recovery-codes", { form: { _csrf: csrf } })).statusCode).toBe(303);

    for (const javaScriptEnabled of [false, true]) {
      const page = await world.newPage({ javaScriptEnabled });
      await adoptCookies(page.context(), http, world.server.baseUrl);
      await page.goto("/settings/two-factor/recovery-codes");
      await page.getByRole("heading", { name: "Your new recovery codes" }).waitFor();
      await page.getByRole("link", { name: "Download" }).waitFor();
      const copy = page.locator("#copy-codes");
      if (javaScriptEnabled) await copy.waitFor({ state: "visible" });
      expect(await copy.isVisible(), `with JavaScript ${javaScriptEnabled ? "on" : "off"}`).toBe(javaScriptEnabled);
      expect(await page.getByRole("button", { name: "Copy" }).count()).toBe(javaScriptEnabled ? 1 : 0);
      await page.context().close();
    }
  });

  it("/dev/mail shows a message's HTML part in a sandboxed frame, within the page's CSP, above its text", async () => {
    const page = await world.newPage();
    const blocked: string[] = [];
    page.on("console", (message) => {
      if (/Content Security Policy|sandbox/i.test(message.text())) blocked.push(message.text());
    });
    await page.goto("/dev/mail");
    await page.getByRole("link", { name: "Your Latchkey sign-in link" }).click();
    await page.getByRole("heading", { name: "Your Latchkey sign-in link", level: 1 }).waitFor();
    const frame = page.frameLocator('iframe[title="The HTML part of the message"]');
    await frame.getByRole("link", { name: "Finish signing in" }).waitFor();
    expect(await frame.locator("body").innerText()).toContain("Open the link below in the same browser");
    // The frame is an opaque origin with no scripts: it cannot read Latchkey's cookies or pages.
    expect(await page.locator("iframe").getAttribute("sandbox")).toBe("allow-top-navigation-by-user-activation");
    const frameOrigin = await page
      .frames()[1]!
      .evaluate(() => window.origin)
      .catch((error: unknown) => String(error));
    expect(frameOrigin).not.toBe(world.server.baseUrl);
    expect(await page.getByRole("main").innerText()).toContain("If this was not you, do not open the link");
    expect(blocked).toEqual([]);
    await page.context().close();
  });
});
