import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { freePort } from "../test/helpers/ports.js";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { FastifyInstance } from "fastify";
import jsQRModule from "jsqr";
import { generateSync } from "otplib";
import { chromium, type Browser, type BrowserContext, type Locator, type Page } from "playwright-core";
import { PNG } from "pngjs";
import { TestClock } from "../test/helpers/clock.js";
import { deliverMailBeforeAnswer, MemoryMailer, SHEDDING_OFF_MS, type Browser as HttpBrowser } from "../test/helpers/app.js";
import { loadConfig, type Config } from "../src/config.js";
import type { AppContext } from "../src/context.js";
import { openRuntime, type Runtime } from "../src/runtime.js";
import { buildApp } from "../src/server.js";

/** Keeps every message (the tests' MemoryMailer); tests read the newest link like a person reads their inbox. */
export class InboxMailer extends MemoryMailer {
  count(to: string): number {
    return this.sent.filter((m) => m.to === to).length;
  }
}

export interface E2eServer {
  app: FastifyInstance;
  ctx: AppContext;
  config: Config;
  clock: TestClock;
  mail: InboxMailer;
  /** http://127.0.0.1:<port>: the public URL, and the origin the browser uses. */
  baseUrl: string;
  close(): Promise<void>;
}

export interface E2eServerOptions {
  /** Serve `/dev/mail` from this outbox folder, as `latchkey serve` does without SMTP_URL. */
  outboxDir?: string;
}

async function startOnce(port: number, options: E2eServerOptions): Promise<E2eServer> {
  const dataDir = mkdtempSync(join(tmpdir(), "latchkey-e2e-"));
  const baseUrl = `http://127.0.0.1:${port}`;
  const config = loadConfig({
    PORT: String(port),
    HOST: "127.0.0.1",
    LATCHKEY_PUBLIC_URL: baseUrl,
    LATCHKEY_DATA_DIR: dataDir,
    LATCHKEY_SECRET_KEY: randomBytes(32).toString("base64"),
    LOG_LEVEL: "silent",
  });
  const clock = new TestClock();
  const mail = new InboxMailer();
  let runtime: Runtime | undefined;
  let app: FastifyInstance | undefined;
  const cleanup = async (): Promise<void> => {
    await app?.close();
    await runtime?.close();
    rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    // The runtime `latchkey serve` opens from this configuration (SQLite in the data dir), with the test's clock and inbox.
    config.limits.overloadEventLoopDelayMs = SHEDDING_OFF_MS;
    runtime = await openRuntime(config, { clock, mailer: mail, migrate: true });
    app = await buildApp(runtime.ctx, { logger: false, outboxDir: options.outboxDir });
    // A page that says "check your email" arrives after its email: the test reads the inbox at once.
    deliverMailBeforeAnswer(app, runtime.mailSender);
    await app.listen({ port, host: "127.0.0.1" });
  } catch (error) {
    await cleanup().catch(() => undefined);
    throw error;
  }
  return { app, ctx: runtime.ctx, config, clock, mail, baseUrl, close: cleanup };
}

/** A real Latchkey HTTP server on SQLite, on a free loopback port, with a test clock and a readable inbox. */
export async function startE2eServer(options: E2eServerOptions = {}): Promise<E2eServer> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(await freePort(), options);
    } catch (error) {
      // Another process may take the port between probing and listening: try another one.
      if ((error as NodeJS.ErrnoException).code !== "EADDRINUSE" || attempt >= 5) throw error;
    }
  }
}

export const CHROMIUM_PATH = process.env["CHROMIUM_PATH"] ?? "/usr/bin/chromium";

/** Debian chromium, headless, with everything that would reach the network switched off. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      "--disable-quic",
    ],
  });
}

export const SCREENSHOT_DIR = fileURLToPath(new URL("./screenshots", import.meta.url));

/** Saves a full-page screenshot as e2e/screenshots/<name>.png (gitignored), for people to look at. */
export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOT_DIR, `${name}.png`), fullPage: true });
}

/**
 * Gives a browser profile the cookies of an HTTP-level browser (test/helpers/app.ts `Browser`, over `app.inject`):
 * state a step needs (a signed-in person, a challenge) is set up over HTTP, fast, and the step goes on in Chromium.
 */
export async function adoptCookies(context: BrowserContext, from: HttpBrowser, baseUrl: string): Promise<void> {
  await context.addCookies([...from.cookies].map(([name, value]) => ({ name, value, url: baseUrl })));
}

/** What GET /api/v1/session answers for the cookies of a browser context. */
export async function sessionStatus(context: BrowserContext, baseUrl: string): Promise<{ status: number; body: unknown }> {
  const response = await context.request.get(`${baseUrl}/api/v1/session`, { failOnStatusCode: false });
  return { status: response.status(), body: await response.json().catch(() => null) };
}

// jsqr is CommonJS with an ES-style `default` in its types: under NodeNext the function is `.default` of the module.
const jsQR = jsQRModule.default;

/** Reads the QR code shown in `element` the way a phone does: from pixels (a screenshot), with a real decoder. */
export async function readQrCode(element: Locator): Promise<string> {
  const png = PNG.sync.read(await element.screenshot({ type: "png" }));
  const decoded = jsQR(new Uint8ClampedArray(png.data.buffer, png.data.byteOffset, png.data.byteLength), png.width, png.height);
  if (!decoded) throw new Error("no QR code in the screenshot");
  return decoded.data;
}

/** The code an authenticator app shows now for `secret` (base32), by the test clock (the phone's clock in real life). */
export function authenticatorCode(secret: string, clock: TestClock): string {
  return generateSync({ secret, epoch: Math.floor(clock.now() / 1000) });
}
