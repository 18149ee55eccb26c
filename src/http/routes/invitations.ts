import type { FastifyInstance } from "fastify";
import { z } from "zod";
import type { AppContext } from "../../context.js";
import { acceptInvitation, findOpenInvitation } from "../../team/invitations.js";
import { completeSetup, isSetupLinkOpen } from "../../team/setup.js";
import { readCookie } from "../cookies.js";
import { csrfToken } from "../csrf.js";
import { formSchema, parseBody } from "../input.js";
import { rememberLoginEmail } from "../login-hint.js";
import { requestInfo } from "../request-info.js";
import { renderFailure, renderFailurePage } from "../reply.js";
import { invitationPage, setupPage, type PasswordFormErrors } from "../views/invitations.js";
import type { ErrorCode } from "../../errors.js";
import { routes, pathTo } from "../../paths.js";

const acceptForm = formSchema({ name: z.string().max(4096).optional().default(""), password: z.string().max(4096) });
const setupForm = formSchema({
  accountName: z.string().max(4096),
  name: z.string().max(4096),
  email: z.string().max(4096),
  password: z.string().max(4096),
});

/** Which form field a domain failure belongs to, so the message appears next to it. */
function errorsFor(reason: ErrorCode, message: string): PasswordFormErrors {
  if (reason.startsWith("password_") || reason === "invalid_credentials") return { password: message };
  if (reason === "email_invalid") return { email: message };
  if (reason === "account_name_invalid") return { accountName: message };
  if (reason === "name_invalid") return { name: message };
  return { form: message };
}

/** Invitation acceptance and first-run setup: the two ways a person gets a password. */
export function invitationRoutes(app: FastifyInstance, ctx: AppContext): void {
  const { config } = ctx;
  const toSignIn = { href: pathTo("login"), label: "Go to sign in" };
  const base = { productName: config.productName, minLength: config.limits.passwordMinLength, maxLength: config.limits.passwordMaxLength };

  app.get<{ Params: { token: string } }>(routes.invitation, async (request, reply) => {
    const found = await findOpenInvitation(ctx, request.params.token);
    if (!found.ok) return renderFailurePage(reply, config.productName, found, toSignIn);
    const inv = found.value;
    return reply.html(
      invitationPage({
        ...base,
        csrf: csrfToken(request, reply, config),
        token: request.params.token,
        accountName: inv.accountName,
        email: inv.email,
        existingUserName: inv.existingUser?.name ?? null,
      }),
    );
  });

  app.post<{ Params: { token: string } }>(routes.invitation, async (request, reply) => {
    const form = parseBody(acceptForm, request.body);
    const result = await acceptInvitation(ctx, {
      token: request.params.token,
      name: form.name,
      password: form.password,
      info: requestInfo(request),
      deviceToken: readCookie(request, config, "device"),
    });
    if (result.ok) {
      rememberLoginEmail(reply, ctx, result.value.email);
      return reply.redirect(pathTo("login", {}, { notice: result.value.joinedWithExistingLogin ? "joined" : "password_set" }), 303);
    }
    const found = await findOpenInvitation(ctx, request.params.token);
    if (!found.ok) return renderFailurePage(reply, config.productName, result, toSignIn);
    return renderFailure(
      reply,
      result,
      invitationPage({
        ...base,
        csrf: csrfToken(request, reply, config),
        token: request.params.token,
        accountName: found.value.accountName,
        email: found.value.email,
        existingUserName: found.value.existingUser?.name ?? null,
        name: form.name,
        errors: errorsFor(result.reason, result.message),
      }),
    );
  });

  app.get<{ Params: { token: string } }>(routes.setup, async (request, reply) => {
    if (!(await isSetupLinkOpen(ctx, request.params.token))) {
      const message =
        "It was already used or has expired. Restart Latchkey on an empty database to print a new one, or create an account with `latchkey account create`.";
      return renderFailurePage(reply, config.productName, { reason: "setup_unavailable", message }, toSignIn);
    }
    return reply.html(setupPage({ ...base, csrf: csrfToken(request, reply, config), token: request.params.token }));
  });

  app.post<{ Params: { token: string } }>(routes.setup, async (request, reply) => {
    const form = parseBody(setupForm, request.body);
    const result = await completeSetup(ctx, { token: request.params.token, ...form, info: requestInfo(request) });
    if (result.ok) {
      rememberLoginEmail(reply, ctx, result.value.email);
      return reply.redirect(pathTo("login", {}, { notice: "setup_done" }), 303);
    }
    if (result.reason === "setup_unavailable") return renderFailurePage(reply, config.productName, result, toSignIn);
    return renderFailure(
      reply,
      result,
      setupPage({
        ...base,
        csrf: csrfToken(request, reply, config),
        token: request.params.token,
        values: { accountName: form.accountName, name: form.name, email: form.email },
        errors: errorsFor(result.reason, result.message),
      }),
    );
  });
}
