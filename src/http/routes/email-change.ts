import { emailedLinkPage } from "../views/message.js";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import type { AppContext } from "../../context.js";
import {
  cancelEmailChange,
  checkEmailChangeLink,
  confirmEmailChange,
  emailChangeAllowed,
  pendingEmailChange,
  requestEmailChange,
  withdrawEmailChange,
} from "../../auth/email-change.js";
import { hasFreshProof } from "../../auth/fresh-proof.js";
import type { SignedIn } from "../../auth/sessions.js";
import { routes, pathTo } from "../../paths.js";
import { passwordLoginOnly, signedInOf, signedInOnly } from "../access.js";
import { apiRoute, isoTime } from "../api-operations.js";
import { settingsChrome } from "../chrome.js";
import { csrfToken } from "../csrf.js";
import { formSchema, noticeFrom, parseBody } from "../input.js";
import { failureError, renderFailure, renderFailurePage, type Failure } from "../reply.js";
import { requestInfo } from "../request-info.js";
import { changeEmailPage } from "../views/email-change.js";
import { messagePage } from "../views/message.js";

// After a request the page shows the pending change itself (`?notice=sent` adds nothing to it).
const notices = {
  withdrawn: "The change is withdrawn; your address stays as it is.",
} as const;

const pendingSchema = z.object({ newEmail: z.string(), expiresAt: isoTime.describe("When the confirmation link stops working") });

/** Failures that belong next to a field of the form. */
const emailFieldReasons = new Set(["email_invalid", "email_in_use"]);
const passwordFieldReasons = new Set(["invalid_credentials", "fresh_proof_required"]);

/** Settings → Change email address, the links emailed to the new and the old address, and the JSON API. */
export function emailChangeRoutes(app: FastifyInstance, ctx: AppContext): void {
  const { config } = ctx;
  const product = config.productName;
  // Opened from an inbox: reachable while "Require auth app" holds a signed-in person at setup (the session is not used for it).
  const linkPage = { config: { openDuringForcedSetup: true } } as const;

  async function renderForm(
    request: FastifyRequest,
    reply: FastifyReply,
    me: SignedIn,
    options: { failure?: Failure; value?: string } = {},
  ): Promise<FastifyReply> {
    const { failure } = options;
    const allowed = await emailChangeAllowed(ctx, me);
    const email = await ctx.db.selectFrom("users").select("email").where("id", "=", me.user.id).executeTakeFirstOrThrow();
    const errors = failure
      ? emailFieldReasons.has(failure.reason)
        ? { email: failure.message }
        : passwordFieldReasons.has(failure.reason)
          ? { password: failure.message }
          : {}
      : {};
    const page = changeEmailPage({
      ...settingsChrome(ctx, request, reply, me),
      email: email.email,
      pending: await pendingEmailChange(ctx, me.user.id),
      refused: allowed.ok ? undefined : allowed.message,
      askPassword: !hasFreshProof(ctx, me) || failure?.reason === "invalid_credentials",
      ...(options.value !== undefined ? { value: options.value.slice(0, 254) } : {}),
      errors,
      notice: failure ? undefined : noticeFrom(notices, request),
      error: failure && !errors.email && !errors.password ? failure.message : undefined,
    });
    return failure ? renderFailure(reply, failure, page) : reply.html(page);
  }

  app.get(routes.email, signedInOnly, async (request, reply) => renderForm(request, reply, signedInOf(request)));

  // Changing the address needs the password (fresh proof), which only a password login has: an SSO session is refused
  // by the one guard, like the factor routes (its address comes from its provider). The page itself says so.
  app.post(routes.email, passwordLoginOnly, async (request, reply) => {
    const me = signedInOf(request);
    const form = parseBody(formSchema({ email: z.string().max(4096), password: z.string().max(4096).optional() }), request.body);
    const result = await requestEmailChange(ctx, me, { email: form.email, password: form.password, info: requestInfo(request) });
    if (!result.ok) return renderForm(request, reply, me, { failure: result, value: form.email });
    return reply.redirect(pathTo("email", {}, { notice: "sent" }), 303);
  });

  app.post(routes.emailWithdraw, passwordLoginOnly, async (request, reply) => {
    const me = signedInOf(request);
    parseBody(formSchema({}), request.body);
    await withdrawEmailChange(ctx, me, requestInfo(request));
    return reply.redirect(pathTo("email", {}, { notice: "withdrawn" }), 303);
  });

  // Link pages check their token before drawing anything and build the form's target from the route table.
  const toSignIn = { href: pathTo("login"), label: "Go to sign in" };
  const toSettings = { href: pathTo("email"), label: "Go to your settings" };

  app.get<{ Params: { token: string } }>(routes.emailConfirm, linkPage, async (request, reply) => {
    const { token } = request.params;
    const found = await checkEmailChangeLink(ctx, "confirm", token);
    if (!found.ok) return renderFailurePage(reply, product, found, toSettings);
    return reply.html(
      emailedLinkPage({
        productName: product,
        csrf: csrfToken(request, reply, config),
        title: "Confirm your new email address",
        text: `Use ${found.value.newEmail} as the email address of your ${product} login? You sign in with it from now on, and your other browsers are signed out.`,
        action: pathTo("emailConfirm", { token }),
        button: "Confirm new address",
      }),
    );
  });

  app.post<{ Params: { token: string } }>(routes.emailConfirm, linkPage, async (request, reply) => {
    parseBody(formSchema({}), request.body);
    const result = await confirmEmailChange(ctx, request.params.token, { signedIn: request.signedIn, info: requestInfo(request) });
    if (!result.ok) return renderFailurePage(reply, product, result, toSettings);
    // The applications signed in through the ended sessions are told now, not at the next periodic sweep.
    app.oidc.requestSweep();
    return reply.html(
      messagePage({
        productName: product,
        title: "Your email address is changed",
        message: result.value.keptSession
          ? `Your email address is now ${result.value.newEmail}. Your other browsers were signed out.`
          : `Your email address is now ${result.value.newEmail}. Every browser signed in as you was signed out: sign in with the new address.`,
        action: result.value.keptSession ? { href: pathTo("profile"), label: "Back to your settings" } : toSignIn,
      }),
    );
  });

  app.get<{ Params: { token: string } }>(routes.emailCancel, linkPage, async (request, reply) => {
    const { token } = request.params;
    const found = await checkEmailChangeLink(ctx, "cancel", token);
    if (!found.ok) return renderFailurePage(reply, product, found, toSignIn);
    return reply.html(
      emailedLinkPage({
        productName: product,
        csrf: csrfToken(request, reply, config),
        title: "Stop the change of your email address?",
        text: `Someone signed in as you asked to change the email address of your login to ${found.value.newEmail}. If that was not you, stop it: the change is cancelled and every browser signed in as you is signed out. Then sign in and change your password.`,
        action: pathTo("emailCancel", { token }),
        button: "Stop this change",
      }),
    );
  });

  app.post<{ Params: { token: string } }>(routes.emailCancel, linkPage, async (request, reply) => {
    parseBody(formSchema({}), request.body);
    const result = await cancelEmailChange(ctx, request.params.token, requestInfo(request));
    if (!result.ok) return renderFailurePage(reply, product, result, toSignIn);
    app.oidc.requestSweep();
    return reply.html(
      messagePage({
        productName: product,
        title: "The change is stopped",
        message:
          "Your email address stays as it was, and every browser signed in as you was signed out. Sign in and change your password, and tell your Account Admin: someone was signed in as you.",
        action: toSignIn,
      }),
    );
  });

  apiRoute(
    app,
    {
      method: "GET",
      route: "apiEmailChange",
      operationId: "getEmailChange",
      tag: "Profile",
      summary: "The signed-in person's email address, and a change of it waiting for confirmation.",
      access: "signed_in",
      ok: {
        status: 200,
        description: "The address, the pending change (or null), and whether this person may change it here.",
        schema: z.object({
          email: z.string(),
          pending: pendingSchema.nullable(),
          changeable: z.boolean().describe("False for SSO members: their address comes from their identity provider"),
        }),
      },
      errors: [],
    },
    async (request, reply) => {
      const me = signedInOf(request);
      const user = await ctx.db.selectFrom("users").select("email").where("id", "=", me.user.id).executeTakeFirstOrThrow();
      const pending = await pendingEmailChange(ctx, me.user.id);
      return reply.send({
        email: user.email,
        pending: pending ? { newEmail: pending.newEmail, expiresAt: new Date(pending.expiresAt).toISOString() } : null,
        changeable: (await emailChangeAllowed(ctx, me)).ok,
      });
    },
  );

  apiRoute(
    app,
    {
      method: "POST",
      route: "apiEmailChange",
      operationId: "requestEmailChange",
      tag: "Profile",
      summary: "Asks to change the signed-in person's email address: a link goes to the new address, a notice to the old one.",
      description:
        "Needs a fresh proof: a session less than 10 minutes from its last proof, or `password`. The address changes when the link is opened; a newer request voids older ones. SSO members are refused (`email_managed_by_sso`).",
      access: "password_login",
      body: z.object({ email: z.string().max(4096), password: z.string().max(4096).optional() }).strict(),
      ok: { status: 200, description: "The link is on its way.", schema: z.object({ pending: pendingSchema }) },
      errors: ["email_managed_by_sso", "email_invalid", "email_in_use", "fresh_proof_required", "invalid_credentials", "too_many_attempts"],
    },
    async (request, reply, { body }) => {
      const result = await requestEmailChange(ctx, signedInOf(request), {
        email: body.email,
        password: body.password,
        info: requestInfo(request),
      });
      if (!result.ok) throw failureError(result);
      return reply.send({ pending: { newEmail: result.value.newEmail, expiresAt: new Date(result.value.expiresAt).toISOString() } });
    },
  );

  apiRoute(
    app,
    {
      method: "DELETE",
      route: "apiEmailChange",
      operationId: "withdrawEmailChange",
      tag: "Profile",
      summary: "Withdraws the signed-in person's pending change of email address (its links stop working).",
      access: "password_login",
      ok: { status: 204, description: "Withdrawn (also when there was none)." },
      errors: [],
    },
    async (request, reply) => {
      await withdrawEmailChange(ctx, signedInOf(request), requestInfo(request));
      return reply.code(204).send();
    },
  );
}
