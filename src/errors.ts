/**
 * The one error type of Latchkey. `code` is stable snake_case: clients, tests and the HTTP layer rely on it;
 * `http/errors.ts` maps each code to a status once. Expected outcomes of a domain call (a wrong code, a used link)
 * are returned as results instead; this is thrown only when the caller cannot go on.
 */
export const errorCodes = [
  "invalid_request",
  "invalid_json",
  "payload_too_large",
  "unsupported_media_type",
  "not_found",
  "method_not_allowed",
  "invalid_credentials",
  "too_many_attempts",
  "rate_limited",
  "unauthenticated",
  "forbidden",
  "csrf_invalid",
  "challenge_missing",
  "challenge_expired",
  "wrong_browser",
  "link_invalid",
  "link_expired",
  "link_used",
  "invitation_invalid",
  "invitation_expired",
  "invitation_used",
  "setup_unavailable",
  "password_too_short",
  "password_too_long",
  "password_too_common",
  "email_invalid",
  "already_member",
  "last_admin",
  "member_not_found",
  "invitation_not_found",
  "policy_requires_auth_app",
  "name_invalid",
  "account_name_invalid",
  "fresh_proof_required",
  "invalid_code_format",
  "invalid_code",
  "code_reused",
  "auth_app_required",
  "auth_app_not_enabled",
  "auth_app_already_enabled",
  "setup_not_started",
  "recovery_codes_not_saved",
  "recovery_codes_unavailable",
  "two_factor_setup_required",
  "mail_unavailable",
  "sso_not_configured",
  "sso_domain_taken",
  "sso_state_invalid",
  "sso_state_used",
  "sso_state_expired",
  "sso_failed",
  "sso_password_member",
  "sso_unavailable",
  "invalid_token",
  "account_not_found",
  "session_not_found",
  "email_in_use",
  "email_managed_by_sso",
  "oidc_interaction_expired",
  "service_unavailable",
  "database_unavailable",
  "throttle_unavailable",
  "not_ready",
  "internal_error",
] as const;

export type ErrorCode = (typeof errorCodes)[number];

export class LatchkeyError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** Extra facts a client may show, e.g. `{ retryAfterSeconds: 30 }`. Never secrets. */
    readonly details?: Record<string, unknown>,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "LatchkeyError";
  }
}

/** A domain result: success with a value, or an expected failure with a stable code. */
export type Result<T, C extends ErrorCode = ErrorCode> =
  { ok: true; value: T } | { ok: false; reason: C; message: string; details?: Record<string, unknown> };

export function ok<T>(value: T): { ok: true; value: T } {
  return { ok: true, value };
}

export function fail<C extends ErrorCode>(
  reason: C,
  message: string,
  details?: Record<string, unknown>,
): { ok: false; reason: C; message: string; details?: Record<string, unknown> } {
  return details === undefined ? { ok: false, reason, message } : { ok: false, reason, message, details };
}
