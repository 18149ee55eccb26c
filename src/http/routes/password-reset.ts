import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import type { AppContext } from "../../context.js";
import { checkPasswordReset, requestPasswordReset, resetPassword, type ResetFailure } from "../../auth/password-reset.js";
import { routes, pathTo } from "../../paths.js";
import { apiRoute } from "../api-operations.js";
import { csrfToken } from "../csrf.js";
import { formSchema, parseBody } from "../input.js";
import { rememberLoginEmail } from "../login-hint.js";
import { failureError, renderFailure, renderFailurePage, type Failure } from "../reply.js";
import { requestInfo } from "../request-info.js";
import { forgotPasswordPage, resetPasswordPage, resetRequestedPage, type ResetFormErrors } from "../views/password-reset.js";

// Generous bounds: the precise checks (and their messages) are the domain's; these only stop absurd input early.
const emailField = z.string().max(1024);
const passwordField = z.string().max(4096);
const codeField = z.string().max(256, "is too long: a code has at most a few dozen characters");

const apiRequestBody = z.object({ email: emailField.describe("The address the person signs in with") }).strict();
const apiConfirmBody = z
  .object({
    token: z.string().max(256).describe("The token of the emailed link: the last part of its path"),
    password: passwordField.describe("The new password (8–128 characters; common passwords are refused)"),
    code: codeField.optional().describe("Auth-app users: the code the app shows"),
    recoveryCode: codeField.optional().describe("Auth-app users, instead of `code`: a recovery code, used up when the reset succeeds"),
  })
  .strict();

/** Failures that end the link: answered as a page with no form (a link is never drawn into a form it does not name). */
const LINK_FAILURES = new Set<ResetFailure>(["link_invalid", "link_expired", "link_used"]);
/** Failures that belong at the code field (or the recovery-code field, when that was the one filled in). */
const CODE_FAILURES = new Set<string>(["invalid_code_format", "invalid_code", "code_reused", "auth_app_required"]);

/**
 * "Forgot your password?": the request form, its one answer, the emailed link's page and the JSON API. The link's page
 * is a form (the change happens on POST), so a mail scanner that fetches links changes nothing.
 */
export function passwordResetRoutes(app: FastifyInstance, ctx: AppContext): void {
  const { config } = ctx;
  const chrome = { productName: config.productName };
  const minutes = Math.round(config.limits.passwordResetTtlSeconds / 60);
  const newLink = { href: pathTo("forgotPassword"), label: "Ask for a new link" };

  app.get(routes.forgotPassword, async (request, reply) =>
    reply.html(forgotPasswordPage({ ...chrome, csrf: csrfToken(request, reply, config) })),
  );

  app.post(routes.forgotPassword, async (request, reply) => {
    const form = parseBody(formSchema({ email: emailField }), request.body);
    const result = await requestPasswordReset(ctx, { email: form.email, info: requestInfo(request) });
    if (!result.ok) {
      const errors = result.reason === "email_invalid" ? { emailError: result.message } : { error: result.message };
      return renderFailure(
        reply,
        result,
        forgotPasswordPage({ ...chrome, csrf: csrfToken(request, reply, config), email: form.email.slice(0, 254), ...errors }),
      );
    }
    // The same answer whether or not the address has a login, and the same work before it: the look-up and what
    // follows for a login run only once the answer has gone out.
    app.afterResponse.schedule(reply, "password reset request", result.value.afterAnswer);
    return reply.html(resetRequestedPage({ ...chrome, minutes }));
  });

  /** The "Choose a new password" form of a checked link, with the failure (if any) at its field and the failure's status. */
  async function renderResetForm(
    request: FastifyRequest,
    reply: FastifyReply,
    token: string,
    failure?: { failure: Failure; errors: ResetFormErrors },
  ): Promise<FastifyReply> {
    // Checked before anything is drawn: the page never shows a form for a token that names no live link.
    const found = await checkPasswordReset(ctx, token);
    if (!found.ok) return renderFailurePage(reply, config.productName, found, newLink);
    const page = resetPasswordPage({
      ...chrome,
      csrf: csrfToken(request, reply, config),
      token,
      email: found.value.email,
      needsCode: found.value.needsCode,
      minLength: config.limits.passwordMinLength,
      maxLength: config.limits.passwordMaxLength,
      ...(failure ? { errors: failure.errors } : {}),
    });
    return failure ? renderFailure(reply, failure.failure, page) : reply.html(page);
  }

  app.get<{ Params: { token: string } }>(routes.passwordReset, async (request, reply) =>
    renderResetForm(request, reply, request.params.token),
  );

  app.post<{ Params: { token: string } }>(routes.passwordReset, async (request, reply) => {
    const form = parseBody(
      formSchema({ password: passwordField, code: codeField.optional(), recoveryCode: codeField.optional() }),
      request.body,
    );
    const { token } = request.params;
    const result = await resetPassword(ctx, {
      token,
      password: form.password,
      code: form.code,
      recoveryCode: form.recoveryCode,
      info: requestInfo(request),
    });
    if (!result.ok) {
      if (LINK_FAILURES.has(result.reason)) return renderFailurePage(reply, config.productName, result, newLink);
      if (result.reason === "too_many_attempts")
        return renderFailurePage(reply, config.productName, result, { href: pathTo("login"), label: "Go to sign in" });
      return renderResetForm(request, reply, token, { failure: result, errors: fieldOf(result, form) });
    }
    // The applications signed in as this person are told now, not at the next periodic sweep.
    app.oidc.requestSweep();
    // Nobody is signed in by a reset: the person signs in with the new password and their second factor, the address
    // filled in (as after an invitation).
    rememberLoginEmail(reply, ctx, result.value.email);
    return reply.redirect(pathTo("login", {}, { notice: "password_reset" }), 303);
  });

  apiRoute(
    app,
    {
      method: "POST",
      route: "apiPasswordReset",
      operationId: "requestPasswordReset",
      tag: "Sign-in",
      summary: "Forgot password: emails a link to choose a new password, if an account uses the address.",
      description:
        "Always 202, in the same time, whether or not the address has a login: the look-up and the email happen after the answer. A login with a password gets a link (valid 30 minutes by default, once, in any browser; a newer request voids older links); a person who signs in only with SSO is told to use it; an unknown address gets nothing. Limited per address and per IP (429 with `Retry-After`).",
      access: "public",
      openDuringForcedSetup: true,
      body: apiRequestBody,
      ok: { status: 202, description: "Accepted: if an account uses the address, a link is on its way." },
      errors: ["email_invalid", "too_many_attempts"],
    },
    async (request, reply, { body }) => {
      const result = await requestPasswordReset(ctx, { email: body.email, info: requestInfo(request) });
      if (!result.ok) throw failureError(result);
      app.afterResponse.schedule(reply, "password reset request", result.value.afterAnswer);
      return reply.code(202).send();
    },
  );

  apiRoute(
    app,
    {
      method: "POST",
      route: "apiPasswordResetConfirm",
      operationId: "resetPassword",
      tag: "Sign-in",
      summary: "Sets a new password with the emailed link's token; an auth-app user also sends a code (or a recovery code).",
      description:
        "The link proves the inbox, not the second factor: an auth-app user sends `code` (or `recoveryCode`), counted like sign-in codes (5 per link, then the link ends; 10 in a row per user, then code entry pauses). On success every session, application sign-in and sign-in in progress of the person ends and the address is told; nobody is signed in: sign in with the new password as usual. The token works once (of parallel calls exactly one succeeds).",
      access: "public",
      openDuringForcedSetup: true,
      body: apiConfirmBody,
      ok: { status: 204, description: "The password is set. Sign in with it (`POST /api/v1/login`)." },
      errors: [
        "link_invalid",
        "link_expired",
        "link_used",
        "password_too_short",
        "password_too_long",
        "password_too_common",
        "auth_app_required",
        "auth_app_not_enabled",
        "invalid_code_format",
        "invalid_code",
        "code_reused",
        "too_many_attempts",
      ],
    },
    async (request, reply, { body }) => {
      const result = await resetPassword(ctx, {
        token: body.token,
        password: body.password,
        code: body.code,
        recoveryCode: body.recoveryCode,
        info: requestInfo(request),
      });
      if (!result.ok) throw failureError(result);
      app.oidc.requestSweep();
      return reply.code(204).send();
    },
  );
}

/** Which field of the form a failure belongs to. */
function fieldOf(failure: Failure, form: { code?: string | undefined }): ResetFormErrors {
  if (failure.reason.startsWith("password_")) return { password: failure.message };
  if (CODE_FAILURES.has(failure.reason))
    return form.code?.trim() || failure.reason === "auth_app_required" ? { code: failure.message } : { recoveryCode: failure.message };
  return { form: failure.message };
}
