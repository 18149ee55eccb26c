import type { FastifyInstance } from "fastify";
import { routes } from "../../paths.js";

// Tiny progressive enhancements; every page works without them. Served from our origin so the CSP can stay
// `script-src 'self'` with no inline script.
const COPY_CODES = `(() => {
  const button = document.getElementById("copy-codes");
  const status = document.getElementById("copy-status");
  if (!button || !navigator.clipboard) return;
  button.hidden = false;
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(button.dataset.codes || "");
      if (status) status.textContent = "Copied to the clipboard.";
    } catch {
      if (status) status.textContent = "Could not copy: select the codes and copy them by hand.";
    }
  });
})();
`;
const PRINT = `window.addEventListener("load", () => window.print());\n`;

export function assetRoutes(app: FastifyInstance): void {
  app.get(routes.assetCopyCodes, async (_request, reply) => reply.type("text/javascript; charset=utf-8").send(COPY_CODES));
  app.get(routes.assetPrint, async (_request, reply) => reply.type("text/javascript; charset=utf-8").send(PRINT));
}
