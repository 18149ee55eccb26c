import { emailedLinkPage } from "../views/message.js";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import type { AppContext } from "../../context.js";
import {
  cancelSupportReset,
  checkSupportCancellation,
  checkSupportConfirmation,
  confirmSupportRequest,
  requestSupportReset,
} from "../../team/support-recovery.js";
import { csrfToken } from "../csrf.js";
import { formSchema, parseBody } from "../input.js";
import { requestInfo } from "../request-info.js";
import { renderFailure, renderFailurePage } from "../reply.js";
import { messagePage } from "../views/message.js";
import { supportRequestPage } from "../views/support.js";
import { routes, pathTo } from "../../paths.js";

/**
 * Support recovery pages. The emailed links open a page with a button: the change happens on POST, so a mail
 * scanner that fetches links cannot confirm or cancel anything.
 */
export function supportRoutes(app: FastifyInstance, ctx: AppContext): void {
  const { config } = ctx;
  const product = config.productName;
  const toSignIn = { href: pathTo("login"), label: "Go to sign in" };
  const newRequest = { href: pathTo("support"), label: "Send a new request" };

  app.get(routes.support, async (request, reply) =>
    reply.html(supportRequestPage({ productName: product, csrf: csrfToken(request, reply, config) })),
  );

  app.post(routes.support, async (request, reply) => {
    const form = parseBody(formSchema({ email: z.string().max(4096), message: z.string().max(8192).optional().default("") }), request.body);
    const result = await requestSupportReset(ctx, { email: form.email, message: form.message, info: requestInfo(request) });
    if (!result.ok) {
      const errors = result.reason === "email_invalid" ? { emailError: result.message } : { error: result.message };
      return renderFailure(
        reply,
        result,
        supportRequestPage({
          productName: product,
          csrf: csrfToken(request, reply, config),
          email: form.email.slice(0, 254),
          message: form.message.slice(0, 2000),
          ...errors,
        }),
      );
    }
    // The same answer whether or not the address has a login, and the same work before it: the look-up and what
    // follows for a registered address run only once the answer has gone out.
    app.afterResponse.schedule(reply, "support request", result.value.afterAnswer);
    return reply.html(
      messagePage({
        productName: product,
        title: "Check your email",
        message:
          "If this address belongs to a login, we sent it an email. Open it and confirm the request; support will then contact you to verify your identity.",
        action: { href: pathTo("login"), label: "Back to sign in" },
      }),
    );
  });

  // Token pages check their token before drawing anything, and build the form's target from the route table: the
  // page must never become a signed form aimed at another route (a token like "..%2F..%2Fsettings%2F…").
  app.get<{ Params: { token: string } }>(routes.supportConfirm, async (request, reply) => {
    const { token } = request.params;
    const found = await checkSupportConfirmation(ctx, token);
    if (!found.ok) return renderFailurePage(reply, product, found, newRequest);
    return reply.html(
      emailedLinkPage({
        productName: product,
        csrf: csrfToken(request, reply, config),
        title: "Confirm your reset request",
        text: "Confirm that you asked for your two-factor authentication to be reset. Support will verify your identity before anything changes.",
        action: pathTo("supportConfirm", { token }),
        button: "Confirm my request",
      }),
    );
  });

  app.post<{ Params: { token: string } }>(routes.supportConfirm, async (request, reply) => {
    parseBody(formSchema({}), request.body);
    const result = await confirmSupportRequest(ctx, request.params.token, requestInfo(request));
    if (!result.ok) return renderFailurePage(reply, product, result, newRequest);
    return reply.html(
      messagePage({
        productName: product,
        title: "Request confirmed",
        message: `Support will contact you to verify your identity. Your reference: ${result.value.requestId}.`,
        action: { href: pathTo("login"), label: "Back to sign in" },
      }),
    );
  });

  app.get<{ Params: { token: string } }>(routes.supportCancel, async (request, reply) => {
    const found = await checkSupportCancellation(ctx, request.params.token);
    if (!found.ok) return renderFailurePage(reply, product, found, toSignIn);
    return reply.html(
      emailedLinkPage({
        productName: product,
        csrf: csrfToken(request, reply, config),
        title: "Cancel the two-factor reset?",
        text: "If you did not ask for your two-factor authentication to be reset, cancel it now. Then change your password: someone may know it.",
        action: pathTo("supportCancel", { token: request.params.token }),
        button: "Cancel the reset",
      }),
    );
  });

  app.post<{ Params: { token: string } }>(routes.supportCancel, async (request, reply) => {
    parseBody(formSchema({}), request.body);
    const result = await cancelSupportReset(ctx, request.params.token, requestInfo(request));
    if (!result.ok) return renderFailurePage(reply, product, result, toSignIn);
    return reply.html(
      messagePage({
        productName: product,
        title: "Reset cancelled",
        message: "Nothing about your login changed. If you did not ask for the reset, change your password.",
        action: { href: pathTo("login"), label: "Go to sign in" },
      }),
    );
  });
}
