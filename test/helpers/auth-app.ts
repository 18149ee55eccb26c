import type { LightMyRequestResponse } from "fastify";
import { generateSync } from "otplib";
import { defaultLimits } from "../../src/config.js";
import { Browser, csrfFrom, signedInBrowser, type TestApp } from "./app.js";

export const STEP_SECONDS = defaultLimits.totpStepSeconds;

/** The app's code for the test clock's current time, `offsetSteps` time steps away (−1 = the previous code). */
export function totpCode(t: Pick<TestApp, "clock">, secret: string, offsetSteps = 0): string {
  return generateSync({ secret, epoch: Math.floor(t.clock.now() / 1000) + offsetSteps * STEP_SECONDS });
}

/** The recovery codes listed on a "Your recovery codes" page. */
export function codesOnPage(body: string): string[] {
  return [...body.matchAll(/<li>([0-9a-z]{5}-[0-9a-z]{5}-[0-9a-z]{5})<\/li>/g)].map((m) => m[1] as string);
}

export interface EnabledAuthApp {
  /** Signed in (by email link), and the browser that set the app up: its session stays, with a fresh proof. */
  browser: Browser;
  /** The base32 key as shown for manual entry. */
  secret: string;
  /** The ten recovery codes shown at step 1. */
  codes: string[];
  /** The "set up" page that answered the confirming code (its Continue link says where the person goes next). */
  done: LightMyRequestResponse;
}

function expectStatus(response: LightMyRequestResponse, status: number, what: string): void {
  if (response.statusCode !== status)
    throw new Error(`${what}: expected ${status}, got ${response.statusCode} ${response.body.slice(0, 300)}`);
}

/**
 * Sets up the auth app through the web pages as a person would (Manage → Enable → save codes → scan → confirm).
 * The confirming code's time step is spent: advance the clock one step before signing in with a code.
 */
export async function enableAuthApp(
  t: Pick<TestApp, "app" | "mail" | "clock">,
  member: { email: string; password: string },
  browser?: Browser,
): Promise<EnabledAuthApp> {
  const b = browser ?? (await signedInBrowser(t, member));
  const manage = await b.get("/settings/two-factor");
  expectStatus(manage, 200, "manage page");
  expectStatus(await b.request("POST", "/settings/two-factor/setup", { form: { _csrf: csrfFrom(manage.body) } }), 303, "start setup");
  const codesPage = await b.get("/settings/two-factor/setup");
  const codes = codesOnPage(codesPage.body);
  if (codes.length !== 10) throw new Error(`expected 10 recovery codes, got ${codes.length}`);
  expectStatus(
    await b.request("POST", "/settings/two-factor/setup/codes-saved", { form: { _csrf: csrfFrom(codesPage.body), saved: "yes" } }),
    303,
    "codes saved",
  );
  const scan = await b.get("/settings/two-factor/setup");
  const secret = /id="manual-key"[^>]*>([A-Z2-7 ]+)</.exec(scan.body)?.[1]?.replace(/ /g, "");
  if (!secret) throw new Error("no manual key on the scan page");
  const done = await b.request("POST", "/settings/two-factor/setup/confirm", {
    form: { _csrf: csrfFrom(scan.body), code: totpCode(t, secret) },
  });
  expectStatus(done, 200, "confirm setup");
  return { browser: b, secret, codes, done };
}

/** The password step over the API: a new browser holding a challenge cookie for an auth-app user. */
export async function passwordStep(t: Pick<TestApp, "app">, member: { email: string; password: string }): Promise<Browser> {
  const browser = new Browser(t.app);
  const response = await browser.request("POST", "/api/v1/login", { json: { email: member.email, password: member.password } });
  expectStatus(response, 200, "password step");
  const next = (response.json() as { next: string }).next;
  if (next !== "auth_app") throw new Error(`expected next auth_app, got ${next}`);
  return browser;
}

/** POST /api/v1/login/code. */
export function submitCode(browser: Browser, code: unknown): Promise<LightMyRequestResponse> {
  return browser.request("POST", "/api/v1/login/code", { json: { code } });
}

/** POST /api/v1/login/recovery-code. */
export function submitRecoveryCode(browser: Browser, code: unknown): Promise<LightMyRequestResponse> {
  return browser.request("POST", "/api/v1/login/recovery-code", { json: { code } });
}

/** A code that is surely wrong now: differs from the codes of the whole accepted window. */
export function wrongCode(t: Pick<TestApp, "clock">, secret: string): string {
  const near = new Set([-2, -1, 0, 1, 2].map((o) => totpCode(t, secret, o)));
  for (let n = 0; ; n++) {
    const candidate = String(n * 111_111 + 13)
      .padStart(6, "0")
      .slice(-6);
    if (!near.has(candidate)) return candidate;
  }
}

/** A well-formed recovery code that was never issued. */
export const UNISSUED_RECOVERY_CODE = "zzzzz-zzzzz-zzzzz";
