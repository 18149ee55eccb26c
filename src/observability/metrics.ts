import type { ErrorCode } from "../errors.js";

/**
 * What Latchkey reports for its metrics, as the domain and the HTTP layer see it: a narrow interface on `AppContext`
 * (`ctx.metrics`), so nothing but src/observability/prometheus.ts knows prom-client. With `LATCHKEY_METRICS_ADDR`
 * unset it is `noMetrics`: every call does nothing, prom-client is never loaded and no hook is registered.
 *
 * Every label value passed here comes from a small fixed set (a method, an error code, a route pattern), never from
 * request text: each distinct value is a time series kept forever.
 */
export interface Metrics {
  /** Whether anything is recorded (false for `noMetrics`): the HTTP layer registers its hooks only then. */
  readonly enabled: boolean;
  /** One attempt at a sign-in step, with its outcome: `success`, the refusal's error code, or `error` (it threw). */
  signIn(method: SignInMetricMethod, result: SignInMetricResult): void;
  /** A wrong second-factor code (after the format check): `invalid_code` or `code_reused`. */
  secondFactorFailure(method: "auth_app" | "recovery_code", reason: "invalid_code" | "code_reused"): void;
  /** Code entry locked for a person after too many wrong codes. */
  secondFactorLock(): void;
  /** A throttle's refusal answered (`rate_limited` or `too_many_attempts`), by the route pattern it answered. */
  throttled(code: "rate_limited" | "too_many_attempts", route: string): void;
  /**
   * A mail delivery event. The mail sender's `onEvent(kind)` callback is meant to be this function (it is an arrow
   * function, safe to pass around unbound): `onEvent: ctx.metrics.mailEvent`.
   */
  readonly mailEvent: (kind: MailEventKind) => void;
  /**
   * A recorder of request durations for one route pattern, made once per route when the route is registered; the
   * returned function runs on every answer of that route, so it must stay cheap (no label building per call).
   */
  requestRecorder(route: string): RequestRecorder;
}

/**
 * How a sign-in step was done: `password` (the first step), the second factors (`email_link`, `auth_app`,
 * `recovery_code`), `sso` (the account's identity provider) and `oidc` (an application's authorization through
 * Latchkey's OpenID Provider).
 */
export type SignInMetricMethod = "password" | "email_link" | "auth_app" | "recovery_code" | "sso" | "oidc";

/** `success`, a Latchkey error code, an OAuth error code of the OpenID Provider (`login_required` …), or `error`. */
export type SignInMetricResult = "success" | "error" | ErrorCode | OAuthErrorName;

/** An OAuth 2.0 / OpenID Connect error code (RFC 6749 §4.1.2.1 style: lower-case letters and underscores). */
export type OAuthErrorName = string & { readonly __oauthError?: never };

/** What the mail sender reports: a message queued, delivered, failed for good, or put back for a retry. */
export type MailEventKind = "queued" | "sent" | "failed" | "retried";

export const mailEventKinds: readonly MailEventKind[] = ["queued", "sent", "failed", "retried"];

/** Records one answer: its HTTP method, status code and duration in seconds. */
export type RequestRecorder = (method: string, statusCode: number, seconds: number) => void;

const ignoreRequest: RequestRecorder = () => undefined;

/** Metrics off (`LATCHKEY_METRICS_ADDR` unset): nothing is recorded. */
export const noMetrics: Metrics = {
  enabled: false,
  signIn: () => undefined,
  secondFactorFailure: () => undefined,
  secondFactorLock: () => undefined,
  throttled: () => undefined,
  mailEvent: () => undefined,
  requestRecorder: () => ignoreRequest,
};

/**
 * Awaits a domain call's result and reports it as one sign-in attempt of `method`: `success`, the failure's code, or
 * `error` when it throws (rethrown). Counted after the call returns, so only committed sign-ins count as a success.
 */
export async function countSignIn<R extends { ok: true } | { ok: false; reason: ErrorCode }>(
  metrics: Metrics,
  method: SignInMetricMethod,
  attempt: Promise<R>,
): Promise<R> {
  let result: R;
  try {
    result = await attempt;
  } catch (error) {
    metrics.signIn(method, "error");
    throw error;
  }
  metrics.signIn(method, result.ok ? "success" : result.reason);
  return result;
}
