import { isDatabaseUnavailable } from "../db/unavailable.js";
import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import { LatchkeyError, type ErrorCode } from "../errors.js";
import { messagePage } from "./views/message.js";
import { pathTo } from "../paths.js";

/** The one map from error code to HTTP status. */
export const statusByCode: Record<ErrorCode, number> = {
  invalid_request: 400,
  invalid_json: 400,
  payload_too_large: 413,
  unsupported_media_type: 415,
  not_found: 404,
  method_not_allowed: 405,
  invalid_credentials: 401,
  too_many_attempts: 429,
  rate_limited: 429,
  unauthenticated: 401,
  forbidden: 403,
  csrf_invalid: 403,
  challenge_missing: 401,
  challenge_expired: 401,
  wrong_browser: 403,
  link_invalid: 400,
  link_expired: 410,
  link_used: 410,
  invitation_invalid: 404,
  invitation_expired: 410,
  invitation_used: 410,
  setup_unavailable: 410,
  password_too_short: 422,
  password_too_long: 422,
  password_too_common: 422,
  email_invalid: 422,
  already_member: 409,
  last_admin: 409,
  member_not_found: 404,
  invitation_not_found: 404,
  policy_requires_auth_app: 409,
  name_invalid: 422,
  account_name_invalid: 422,
  fresh_proof_required: 403,
  invalid_code_format: 400,
  invalid_code: 401,
  code_reused: 401,
  auth_app_required: 409,
  auth_app_not_enabled: 409,
  auth_app_already_enabled: 409,
  setup_not_started: 409,
  recovery_codes_not_saved: 400,
  recovery_codes_unavailable: 410,
  two_factor_setup_required: 403,
  mail_unavailable: 503,
  sso_not_configured: 404,
  sso_domain_taken: 409,
  sso_state_invalid: 400,
  sso_state_used: 410,
  sso_state_expired: 410,
  sso_failed: 401,
  sso_password_member: 409,
  sso_unavailable: 503,
  invalid_token: 401,
  account_not_found: 404,
  session_not_found: 404,
  email_in_use: 409,
  email_managed_by_sso: 403,
  oidc_interaction_expired: 410,
  service_unavailable: 503,
  database_unavailable: 503,
  throttle_unavailable: 503,
  not_ready: 503,
  internal_error: 500,
};

/** The one table of page titles for failures drawn as a message page (anything else: "That did not work"). */
export const failureTitles: Partial<Record<ErrorCode, string>> = {
  not_found: "Page not found",
  method_not_allowed: "This page does not take that request",
  csrf_invalid: "This form has expired",
  payload_too_large: "That was too much data",
  unauthenticated: "Please sign in",
  forbidden: "Not allowed",
  too_many_attempts: "Too many attempts",
  rate_limited: "Please wait a moment",
  mail_unavailable: "We could not send the email",
  challenge_expired: "This sign-in has ended",
  wrong_browser: "Open this in the browser where you started",
  link_invalid: "This link does not work",
  link_expired: "This link has expired",
  link_used: "This link was already used",
  invitation_invalid: "This invitation does not work",
  invitation_expired: "This invitation does not work",
  invitation_used: "This invitation does not work",
  setup_unavailable: "This setup link does not work",
  sso_state_invalid: "This single sign-on answer is not valid",
  sso_state_used: "This single sign-on answer was already used",
  sso_state_expired: "This single sign-on has expired",
  sso_not_configured: "No single sign-on for this domain",
  sso_failed: "Single sign-on did not work",
  sso_password_member: "You sign in to this account with a password",
  sso_unavailable: "Your identity provider did not answer",
  oidc_interaction_expired: "This sign-in request has expired",
  session_not_found: "No such session",
  email_in_use: "That address is already in use",
  email_managed_by_sso: "Your address comes from single sign-on",
  service_unavailable: "Too busy right now",
  database_unavailable: "Briefly unavailable",
  throttle_unavailable: "Sign-in is briefly unavailable",
  not_ready: "Not ready to serve",
  internal_error: "Something went wrong",
};

/** The `route` label of requests no route takes (404, 405, the router's refusals): one series for all of them. */
export const UNMATCHED_ROUTE = "unmatched";

/** Counts a throttle's refusal (`rate_limited`, `too_many_attempts`) in the metrics, by the route that answered it. */
export function countRefusal(request: FastifyRequest, code: ErrorCode): void {
  if (code === "rate_limited" || code === "too_many_attempts") {
    request.server.latchkeyMetrics.throttled(code, request.routeOptions.url ?? UNMATCHED_ROUTE);
  }
}

export function isApiRequest(request: FastifyRequest): boolean {
  return request.url.startsWith("/api/");
}

/** Answers an error as JSON `{error, message}` for the API, or as a friendly page for people. */
export function sendError(
  request: FastifyRequest,
  reply: FastifyReply,
  code: ErrorCode,
  message: string,
  details?: Record<string, unknown>,
): FastifyReply {
  const status = statusByCode[code];
  countRefusal(request, code);
  const retryAfter = details?.["retryAfterSeconds"];
  if (typeof retryAfter === "number") reply.header("Retry-After", String(retryAfter));
  if (isApiRequest(request)) {
    return reply
      .status(status)
      .type("application/json; charset=utf-8")
      .send({ error: code, message, ...(details ? { details } : {}) });
  }
  return reply
    .status(status)
    .type("text/html; charset=utf-8")
    .send(
      messagePage({
        productName: request.server.latchkeyProductName,
        title: failureTitles[code] ?? "That did not work",
        message,
        action: { href: pathTo("home"), label: "Go to the start page" },
      }).value,
    );
}

/** Maps Fastify's own errors (bad JSON, big bodies, wrong media types) to our codes; anything unknown is a 500 and logged. */
export function errorHandler(error: FastifyError | LatchkeyError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  if (error instanceof LatchkeyError) {
    if (statusByCode[error.code] >= 500) request.log.error({ err: error, cause: error.cause }, error.message);
    return sendError(request, reply, error.code, error.message, error.details);
  }
  switch (error.code) {
    case "FST_ERR_CTP_INVALID_JSON_BODY":
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
      return sendError(request, reply, "invalid_json", "The request body is not valid JSON.");
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return sendError(request, reply, "payload_too_large", "The request body is too large.");
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
    case "FST_ERR_CTP_INVALID_CONTENT_LENGTH":
      return sendError(
        request,
        reply,
        "unsupported_media_type",
        "Send JSON (Content-Type: application/json) or a form (application/x-www-form-urlencoded).",
      );
    default:
      break;
  }
  if (typeof error.statusCode === "number" && error.statusCode >= 400 && error.statusCode < 500) {
    if (error instanceof SyntaxError) return sendError(request, reply, "invalid_json", "The request body is not valid JSON.");
    return sendError(request, reply, error.statusCode === 413 ? "payload_too_large" : "invalid_request", error.message);
  }
  if (isDatabaseUnavailable(error)) {
    // An outage, not a bug: the pool reconnects by itself when the database is back.
    request.log.error({ err: error }, "database unavailable");
    return sendError(
      request,
      reply,
      "database_unavailable",
      "The service cannot reach its database right now. Try again in a few seconds.",
      {
        retryAfterSeconds: request.server.latchkeyDependencyRetryAfterSeconds,
      },
    );
  }
  request.log.error({ err: error }, "unhandled error");
  return sendError(
    request,
    reply,
    "internal_error",
    "Something went wrong on our side. Please try again; if it keeps happening, tell your administrator.",
  );
}
