import { html, type SafeHtml } from "../../html.js";

/** A time as people read it in tables: "2026-01-31 14:05 UTC", or "never". */
export const date = (ms: number | null): string =>
  ms === null ? "never" : new Date(ms).toISOString().replace("T", " ").slice(0, 16) + " UTC";
/** The date over the time, so narrow table columns do not break it mid-way. */
export const stackedDate = (ms: number | null): SafeHtml | string => {
  if (ms === null) return "never";
  const text = date(ms);
  return html`<span style="white-space:nowrap">${text.slice(0, 10)}</span><br><span style="white-space:nowrap">${text.slice(11)}</span>`;
};

/** `count` with the noun (or verb phrase) that agrees with it: plural(1, "code", "codes") → "1 code". */
export const plural = (count: number, one: string, many: string): string => `${count} ${count === 1 ? one : many}`;
