import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import type { AppContext } from "../../context.js";
import { hasFreshProof, passwordLoginFactors, reauthenticate, type PasswordLogin } from "../../auth/fresh-proof.js";
import { changePassword } from "../../auth/password-change.js";
import {
  acknowledgeRecoveryCodes,
  confirmAuthAppSetup,
  disableAuthApp,
  dismissRecoveryCodes,
  regenerateRecoveryCodes,
  revealedRecoveryCodes,
  setupKey,
  startAuthAppSetup,
  twoFactorStatus,
} from "../../auth/auth-app.js";
import { passwordLoginOf, passwordLoginOnly, signedInOf, signedInOnly } from "../access.js";
import { apiRoute, isoTime } from "../api-operations.js";
import { settingsChrome } from "../chrome.js";
import { setDeviceCookie } from "../cookies.js";
import { formSchema, parseBody } from "../input.js";
import { renderFailure, type Failure } from "../reply.js";
import { hasReturnTo, rememberReturnTo, returnToFromQuery } from "../return-to.js";
import { requestInfo } from "../request-info.js";
import { routes, pathTo } from "../../paths.js";
import {
  accountSettingsPage,
  changePasswordPage,
  confirmPasswordPage,
  manageTwoFactorPage,
  printCodesPage,
  profilePage,
  recoveryCodesPage,
  scanPage,
  SET_UP_AUTH_APP,
  setupDonePage,
} from "../views/settings.js";

const MANAGE = routes.twoFactor;
const SETUP = routes.twoFactorSetup;
/** Where "Confirm your password" may send the person back to: our own settings pages only (no open redirect). */
const SAFE_NEXT = /^\/settings(\/[a-z0-9-]+)*$/;

const notices = {
  confirmed: "Password confirmed. You can make changes for the next 10 minutes.",
  disabled: "The auth app is off. You sign in with the emailed link again.",
  codes_done: "Your new recovery codes are in force.",
} as const;

/** Settings: Account Settings, Team Members, Edit your settings, and Manage two-factor authentication. */
export function settingsRoutes(app: FastifyInstance, ctx: AppContext): void {
  const { config } = ctx;

  const chrome = (request: FastifyRequest, reply: FastifyReply, me: PasswordLogin["session"]): ReturnType<typeof settingsChrome> =>
    settingsChrome(ctx, request, reply, me);

  /** Sensitive steps need a fresh proof: if it is stale, ask for the password and come back to `next`. */
  function askForPassword(
    request: FastifyRequest,
    reply: FastifyReply,
    login: PasswordLogin,
    failure: Failure,
    next: string,
  ): FastifyReply {
    return renderFailure(reply, failure, confirmPasswordPage({ ...chrome(request, reply, login.session), next, reason: failure.message }));
  }

  app.get(routes.settings, signedInOnly, async (request, reply) => {
    const me = signedInOf(request);
    return reply.html(accountSettingsPage({ ...chrome(request, reply, me), accountName: me.account.name }));
  });

  app.get(routes.profile, signedInOnly, async (request, reply) => {
    const me = signedInOf(request);
    // An SSO session sees its method, "sso", and nothing of the password login's factors.
    const login = passwordLoginFactors(me);
    const status = login.ok ? await twoFactorStatus(ctx, login.value) : null;
    return reply.html(
      profilePage({
        ...chrome(request, reply, me),
        name: me.user.name,
        email: me.user.email,
        method: status?.method ?? "sso",
        recoveryCodesRemaining: status?.recoveryCodesRemaining ?? 0,
      }),
    );
  });

  const passwordChrome = { minLength: config.limits.passwordMinLength, maxLength: config.limits.passwordMaxLength };

  app.get(routes.password, passwordLoginOnly, async (request, reply) => {
    const login = passwordLoginOf(request);
    const me = login.session;
    const done = (request.query as Record<string, unknown>)["notice"] === "changed";
    return reply.html(changePasswordPage({ ...chrome(request, reply, me), ...passwordChrome, done }));
  });

  app.post(routes.password, passwordLoginOnly, async (request, reply) => {
    const login = passwordLoginOf(request);
    const me = login.session;
    const form = parseBody(formSchema({ currentPassword: z.string().max(4096), newPassword: z.string().max(4096) }), request.body);
    const result = await changePassword(ctx, login, {
      currentPassword: form.currentPassword,
      newPassword: form.newPassword,
      info: requestInfo(request),
    });
    if (!result.ok) {
      const errors = result.reason.startsWith("password_") ? { next: result.message } : { current: result.message };
      return renderFailure(reply, result, changePasswordPage({ ...chrome(request, reply, me), ...passwordChrome, errors }));
    }
    setDeviceCookie(reply, config, result.value.deviceToken);
    return reply.redirect(pathTo("password", {}, { notice: "changed" }), 303);
  });

  app.post(routes.confirmPassword, passwordLoginOnly, async (request, reply) => {
    const login = passwordLoginOf(request);
    const me = login.session;
    const form = parseBody(formSchema({ password: z.string().max(4096), next: z.string().max(200).optional() }), request.body);
    const next = form.next && SAFE_NEXT.test(form.next) ? form.next : MANAGE;
    const result = await reauthenticate(ctx, login, form.password, requestInfo(request));
    if (!result.ok) {
      return renderFailure(
        reply,
        result,
        confirmPasswordPage({ ...chrome(request, reply, me), next, error: result.message, reason: "Confirm your password to continue." }),
      );
    }
    return reply.redirect(next === MANAGE ? `${MANAGE}?notice=confirmed` : next, 303);
  });

  /** The Manage page; with a failure, drawn with its message and the failure's status. */
  async function renderManage(
    request: FastifyRequest,
    reply: FastifyReply,
    login: PasswordLogin,
    failure?: Failure,
    notice?: string,
  ): Promise<FastifyReply> {
    const s = await twoFactorStatus(ctx, login);
    const page = manageTwoFactorPage({
      ...chrome(request, reply, login.session),
      method: s.method,
      enabledAt: s.enabledAt,
      recoveryCodesRemaining: s.recoveryCodesRemaining,
      setupInProgress: s.setup !== null,
      requiredBy: s.requiredBy,
      lowWarning: config.limits.recoveryCodesLowWarning,
      ...(failure ? { error: failure.message } : {}),
      ...(notice ? { notice } : {}),
    });
    return failure ? renderFailure(reply, failure, page) : reply.html(page);
  }

  app.get(MANAGE, passwordLoginOnly, async (request, reply) => {
    const login = passwordLoginOf(request);
    const code = (request.query as Record<string, unknown>)["notice"];
    const notice = typeof code === "string" && code in notices ? notices[code as keyof typeof notices] : undefined;
    // Sent here to set up the app before going on (an application asking for acr urn:latchkey:loa:app): keep where.
    const returnTo = await returnToFromQuery(request, ctx);
    if (returnTo !== null) rememberReturnTo(reply, ctx, returnTo);
    return renderManage(request, reply, login, undefined, notice);
  });

  app.post(SETUP, passwordLoginOnly, async (request, reply) => {
    const login = passwordLoginOf(request);
    parseBody(formSchema({}), request.body);
    const result = await startAuthAppSetup(ctx, login);
    if (!result.ok) {
      if (result.reason === "fresh_proof_required") return askForPassword(request, reply, login, result, MANAGE);
      return renderManage(request, reply, login, result);
    }
    return reply.redirect(SETUP, 303);
  });

  const setupExpired: Failure = {
    reason: "setup_not_started",
    message: `Your setup has expired or was not started. Press “${SET_UP_AUTH_APP}” to start again.`,
  };

  /** The setup step the person is on; with a failure, drawn with its message and the failure's status. */
  async function renderSetup(request: FastifyRequest, reply: FastifyReply, login: PasswordLogin, failure?: Failure): Promise<FastifyReply> {
    const s = await twoFactorStatus(ctx, login);
    if (s.method === "auth_app") return reply.redirect(MANAGE, 303);
    if (s.setup === null) return renderManage(request, reply, login, failure ?? setupExpired);
    const error = failure?.message;
    let page;
    if (s.setup.step === "recovery_codes") {
      const reveal = await revealedRecoveryCodes(ctx, login);
      if (!reveal) return renderManage(request, reply, login, setupExpired);
      page = recoveryCodesPage({ ...chrome(request, reply, login.session), codes: reveal.codes, duringSetup: true, error });
    } else {
      const key = await setupKey(ctx, login);
      if (!key.ok) return renderManage(request, reply, login, key);
      // qrcode is loaded here, where the auth app is set up, not at start (memory, issue 10).
      const { default: QRCode } = await import("qrcode");
      const qrSvg = await QRCode.toString(key.value.uri, { type: "svg", errorCorrectionLevel: "M", margin: 2 });
      page = scanPage({ ...chrome(request, reply, login.session), qrSvg, manualKey: key.value.manualKey, uri: key.value.uri, error });
    }
    return failure ? renderFailure(reply, failure, page) : reply.html(page);
  }

  app.get(SETUP, passwordLoginOnly, async (request, reply) => {
    const login = passwordLoginOf(request);
    return renderSetup(request, reply, login);
  });

  app.post(`${SETUP}/codes-saved`, passwordLoginOnly, async (request, reply) => {
    const login = passwordLoginOf(request);
    const form = parseBody(formSchema({ saved: z.string().max(10).optional() }), request.body);
    const result = await acknowledgeRecoveryCodes(ctx, login, form.saved === "yes");
    if (!result.ok) return renderSetup(request, reply, login, result);
    return reply.redirect(SETUP, 303);
  });

  app.post(`${SETUP}/confirm`, passwordLoginOnly, async (request, reply) => {
    const login = passwordLoginOf(request);
    const form = parseBody(formSchema({ code: z.string().max(256) }), request.body);
    const result = await confirmAuthAppSetup(ctx, login, form.code, requestInfo(request));
    if (!result.ok) {
      if (result.reason === "fresh_proof_required") return askForPassword(request, reply, login, result, SETUP);
      return renderSetup(request, reply, login, result);
    }
    // A forced setup right after a sign-in asked for with return_to: "Continue" goes on to it.
    const next = pathTo(hasReturnTo(request, config) ? "loginContinue" : "home");
    return reply.html(setupDonePage({ ...chrome(request, reply, login.session), next }));
  });

  app.post(`${MANAGE}/recovery-codes`, passwordLoginOnly, async (request, reply) => {
    const login = passwordLoginOf(request);
    parseBody(formSchema({}), request.body);
    const result = await regenerateRecoveryCodes(ctx, login, requestInfo(request));
    if (!result.ok) {
      if (result.reason === "fresh_proof_required") return askForPassword(request, reply, login, result, MANAGE);
      return renderManage(request, reply, login, result);
    }
    return reply.redirect(`${MANAGE}/recovery-codes`, 303);
  });

  app.get(`${MANAGE}/recovery-codes`, passwordLoginOnly, async (request, reply) => {
    const login = passwordLoginOf(request);
    const reveal = await revealedRecoveryCodes(ctx, login);
    if (!reveal) return reply.redirect(MANAGE, 303);
    const s = await twoFactorStatus(ctx, login);
    return reply.html(
      recoveryCodesPage({ ...chrome(request, reply, login.session), codes: reveal.codes, duringSetup: s.method !== "auth_app" }),
    );
  });

  app.post(`${MANAGE}/recovery-codes/done`, passwordLoginOnly, async (request, reply) => {
    const login = passwordLoginOf(request);
    parseBody(formSchema({}), request.body);
    await dismissRecoveryCodes(ctx, login);
    return reply.redirect(`${MANAGE}?notice=codes_done`, 303);
  });

  // Download and print read the codes just issued; once the person moves on they are gone for good.
  app.get(`${MANAGE}/recovery-codes.txt`, passwordLoginOnly, async (request, reply) => {
    const login = passwordLoginOf(request);
    const me = login.session;
    const reveal = await revealedRecoveryCodes(ctx, login);
    if (!reveal)
      return renderManage(request, reply, login, {
        reason: "recovery_codes_unavailable",
        message: "Those recovery codes can no longer be shown. Generate new ones if you did not save them.",
      });
    const product = config.productName.toLowerCase().replace(/[^a-z0-9]+/g, "-");
    const who = me.user.email.replace(/[^a-zA-Z0-9@._-]/g, "_");
    const text = [
      `${config.productName} recovery codes for ${me.user.email}`,
      `Generated ${new Date(ctx.clock.now()).toUTCString()}. Each code works once; generating new codes voids these.`,
      "",
      ...reveal.codes,
      "",
    ].join("\r\n");
    return reply
      .type("text/plain; charset=utf-8")
      .header("Content-Disposition", `attachment; filename="${product}-recovery-codes-${who}.txt"`)
      .send(text);
  });

  app.get(`${MANAGE}/recovery-codes/print`, passwordLoginOnly, async (request, reply) => {
    const login = passwordLoginOf(request);
    const reveal = await revealedRecoveryCodes(ctx, login);
    if (!reveal) return reply.redirect(MANAGE, 303);
    return reply.html(printCodesPage({ productName: config.productName, email: login.session.user.email, codes: reveal.codes }));
  });

  app.post(`${MANAGE}/disable`, passwordLoginOnly, async (request, reply) => {
    const login = passwordLoginOf(request);
    parseBody(formSchema({}), request.body);
    const result = await disableAuthApp(ctx, login, requestInfo(request));
    if (!result.ok) {
      if (result.reason === "fresh_proof_required") return askForPassword(request, reply, login, result, MANAGE);
      return renderManage(request, reply, login, result);
    }
    return reply.redirect(`${MANAGE}?notice=disabled`, 303);
  });

  // Readable by an SSO session too (a client asks "what is my method?"), but then only the method: "sso", and the same
  // shape with nothing of the password login's factors in it. No fresh proof: nothing it could allow is open to it.
  apiRoute(
    app,
    {
      method: "GET",
      route: "apiTwoFactor",
      operationId: "getTwoFactorStatus",
      tag: "Two-factor",
      summary: "The signed-in person's two-factor status: method, remaining recovery codes, accounts that require the app.",
      description: 'A session opened by single sign-on gets method "sso" and nothing of the password login\'s factors.',
      access: "signed_in",
      openDuringForcedSetup: true,
      ok: {
        status: 200,
        description: "Status.",
        schema: z.object({
          method: z.enum(["email_link", "auth_app", "sso"]),
          enabledAt: isoTime.nullable().describe("When the auth app was turned on"),
          recoveryCodesRemaining: z.number().int(),
          requiredBy: z.array(z.string()).describe("Names of the accounts that require the auth app"),
          freshProof: z.boolean().describe("Whether sensitive changes are allowed without confirming the password again"),
        }),
      },
      errors: [],
    },
    async (request, reply) => {
      const me = signedInOf(request);
      const login = passwordLoginFactors(me);
      if (!login.ok) return reply.send({ method: "sso", enabledAt: null, recoveryCodesRemaining: 0, requiredBy: [], freshProof: false });
      const s = await twoFactorStatus(ctx, login.value);
      return reply.send({
        method: s.method,
        enabledAt: s.enabledAt === null ? null : new Date(s.enabledAt).toISOString(),
        recoveryCodesRemaining: s.recoveryCodesRemaining,
        requiredBy: s.requiredBy,
        freshProof: hasFreshProof(ctx, me),
      });
    },
  );
}
