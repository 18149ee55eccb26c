import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import QRCode from "qrcode";
import { z } from "zod";
import type { AppContext } from "../../context.js";
import type { SignedIn } from "../../auth/sessions.js";
import { hasFreshProof, passwordLoginFactors, reauthenticate, type PasswordLogin } from "../../auth/fresh-proof.js";
import { changePassword } from "../../auth/password-change.js";
import { mustSetUpAuthApp } from "../../team/policy.js";
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
import { setDeviceCookie } from "../cookies.js";
import { csrfToken } from "../csrf.js";
import { formSchema, parseBody } from "../input.js";
import { requestInfo } from "../request-info.js";
import { requireSignedIn } from "../session-guard.js";
import { routes, pathTo } from "../../paths.js";
import { isApiRequest, statusByCode } from "../errors.js";
import { LatchkeyError } from "../../errors.js";
import {
  accountSettingsPage,
  changePasswordPage,
  confirmPasswordPage,
  manageTwoFactorPage,
  passwordLoginOnlyPage,
  printCodesPage,
  profilePage,
  recoveryCodesPage,
  scanPage,
  setupDonePage,
  type SettingsChrome,
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

  function chrome(request: FastifyRequest, reply: FastifyReply, me: SignedIn): SettingsChrome {
    return {
      productName: config.productName,
      signedIn: { email: me.user.email, accountName: me.account.name, csrf: csrfToken(request, reply, config) },
      isAdmin: me.role === "admin",
      setupOnly: mustSetUpAuthApp(me),
    };
  }

  function html(reply: FastifyReply, body: { value: string }, status = 200): FastifyReply {
    return reply.status(status).type("text/html; charset=utf-8").send(body.value);
  }

  /** Sensitive steps need a fresh proof: if it is stale, ask for the password and come back to `next`. */
  function askForPassword(request: FastifyRequest, reply: FastifyReply, me: SignedIn, next: string): FastifyReply {
    return html(reply, confirmPasswordPage({ ...chrome(request, reply, me), next, reason: "For your security, confirm your password before changing two-factor authentication." }), 403);
  }

  /**
   * Every route that reads or changes the person's own password, auth app or recovery codes starts here: the
   * signed-in person's password login (what the factor functions demand), or the sign-in redirect, or a 403 page for
   * a session opened by single sign-on — the refusal of `passwordLoginFactors`, the one guard.
   */
  function requirePasswordLogin(request: FastifyRequest, reply: FastifyReply): PasswordLogin | null {
    const me = requireSignedIn(request, reply);
    if (!me) return null;
    const login = passwordLoginFactors(me);
    if (login.ok) return login.value;
    if (isApiRequest(request)) throw new LatchkeyError(login.reason, login.message);
    html(reply, passwordLoginOnlyPage({ ...chrome(request, reply, me), message: login.message }), statusByCode[login.reason]);
    return null;
  }

  app.get(routes.settings, async (request, reply) => {
    const me = requireSignedIn(request, reply);
    if (!me) return reply;
    return html(reply, accountSettingsPage({ ...chrome(request, reply, me), accountName: me.account.name }));
  });

  app.get(routes.profile, async (request, reply) => {
    const me = requireSignedIn(request, reply);
    if (!me) return reply;
    // An SSO session sees its method, "sso", and nothing of the password login's factors.
    const login = passwordLoginFactors(me);
    const status = login.ok ? await twoFactorStatus(ctx, login.value) : null;
    return html(
      reply,
      profilePage({ ...chrome(request, reply, me), name: me.user.name, email: me.user.email, method: status?.method ?? "sso", recoveryCodesRemaining: status?.recoveryCodesRemaining ?? 0 }),
    );
  });

  const passwordChrome = { minLength: config.limits.passwordMinLength, maxLength: config.limits.passwordMaxLength };

  app.get(routes.password, async (request, reply) => {
    const login = requirePasswordLogin(request, reply);
    if (!login) return reply;
    const me = login.session;
    const done = (request.query as Record<string, unknown>)["notice"] === "changed";
    return html(reply, changePasswordPage({ ...chrome(request, reply, me), ...passwordChrome, done }));
  });

  app.post(routes.password, async (request, reply) => {
    const login = requirePasswordLogin(request, reply);
    if (!login) return reply;
    const me = login.session;
    const form = parseBody(formSchema({ currentPassword: z.string().max(4096), newPassword: z.string().max(4096) }), request.body);
    const result = await changePassword(ctx, login, { currentPassword: form.currentPassword, newPassword: form.newPassword, info: requestInfo(request) });
    if (!result.ok) {
      if (typeof result.details?.["retryAfterSeconds"] === "number") reply.header("Retry-After", String(result.details["retryAfterSeconds"]));
      const errors = result.reason.startsWith("password_") ? { next: result.message } : { current: result.message };
      return html(reply, changePasswordPage({ ...chrome(request, reply, me), ...passwordChrome, errors }), statusByCode[result.reason]);
    }
    setDeviceCookie(reply, config, result.value.deviceToken);
    return reply.redirect(pathTo("password", {}, { notice: "changed" }), 303);
  });

  app.post(routes.confirmPassword, async (request, reply) => {
    const login = requirePasswordLogin(request, reply);
    if (!login) return reply;
    const me = login.session;
    const form = parseBody(formSchema({ password: z.string().max(4096), next: z.string().max(200).optional() }), request.body);
    const next = form.next && SAFE_NEXT.test(form.next) ? form.next : MANAGE;
    const result = await reauthenticate(ctx, login, form.password, requestInfo(request));
    if (!result.ok) {
      if (typeof result.details?.["retryAfterSeconds"] === "number") reply.header("Retry-After", String(result.details["retryAfterSeconds"]));
      return html(reply, confirmPasswordPage({ ...chrome(request, reply, me), next, error: result.message, reason: "Confirm your password to continue." }), statusByCode[result.reason]);
    }
    return reply.redirect(next === MANAGE ? `${MANAGE}?notice=confirmed` : next, 303);
  });

  async function renderManage(request: FastifyRequest, reply: FastifyReply, login: PasswordLogin, extra: { notice?: string; error?: string }, status = 200): Promise<FastifyReply> {
    const me = login.session;
    const s = await twoFactorStatus(ctx, login);
    return html(
      reply,
      manageTwoFactorPage({
        ...chrome(request, reply, me),
        method: s.method,
        enabledAt: s.enabledAt,
        recoveryCodesRemaining: s.recoveryCodesRemaining,
        setupInProgress: s.setup !== null,
        requiredBy: s.requiredBy,
        lowWarning: config.limits.recoveryCodesLowWarning,
        ...extra,
      }),
      status,
    );
  }

  app.get(MANAGE, async (request, reply) => {
    const login = requirePasswordLogin(request, reply);
    if (!login) return reply;
    const code = (request.query as Record<string, unknown>)["notice"];
    const notice = typeof code === "string" && code in notices ? notices[code as keyof typeof notices] : undefined;
    return renderManage(request, reply, login, notice ? { notice } : {});
  });

  app.post(SETUP, async (request, reply) => {
    const login = requirePasswordLogin(request, reply);
    if (!login) return reply;
    parseBody(formSchema({}), request.body);
    const result = await startAuthAppSetup(ctx, login);
    if (!result.ok) {
      if (result.reason === "fresh_proof_required") return askForPassword(request, reply, login.session, MANAGE);
      return renderManage(request, reply, login, { error: result.message }, statusByCode[result.reason]);
    }
    return reply.redirect(SETUP, 303);
  });

  async function renderSetup(request: FastifyRequest, reply: FastifyReply, login: PasswordLogin, error?: string, status = 200): Promise<FastifyReply> {
    const me = login.session;
    const s = await twoFactorStatus(ctx, login);
    if (s.method === "auth_app") return reply.redirect(MANAGE, 303);
    if (s.setup === null) return renderManage(request, reply, login, { error: "Your setup has expired or was not started. Press Enable to start again." }, status === 200 ? 409 : status);
    if (s.setup.step === "recovery_codes") {
      const reveal = await revealedRecoveryCodes(ctx, login);
      if (!reveal) return renderManage(request, reply, login, { error: "Your setup has expired. Press Enable to start again." }, 409);
      return html(reply, recoveryCodesPage({ ...chrome(request, reply, me), codes: reveal.codes, duringSetup: true, error }), status);
    }
    const key = await setupKey(ctx, login);
    if (!key.ok) return renderManage(request, reply, login, { error: key.message }, statusByCode[key.reason]);
    const qrSvg = await QRCode.toString(key.value.uri, { type: "svg", errorCorrectionLevel: "M", margin: 2 });
    return html(reply, scanPage({ ...chrome(request, reply, me), qrSvg, manualKey: key.value.manualKey, uri: key.value.uri, error }), status);
  }

  app.get(SETUP, async (request, reply) => {
    const login = requirePasswordLogin(request, reply);
    if (!login) return reply;
    return renderSetup(request, reply, login);
  });

  app.post(`${SETUP}/codes-saved`, async (request, reply) => {
    const login = requirePasswordLogin(request, reply);
    if (!login) return reply;
    const form = parseBody(formSchema({ saved: z.string().max(10).optional() }), request.body);
    const result = await acknowledgeRecoveryCodes(ctx, login, form.saved === "yes");
    if (!result.ok) return renderSetup(request, reply, login, result.message, statusByCode[result.reason]);
    return reply.redirect(SETUP, 303);
  });

  app.post(`${SETUP}/confirm`, async (request, reply) => {
    const login = requirePasswordLogin(request, reply);
    if (!login) return reply;
    const form = parseBody(formSchema({ code: z.string().max(256) }), request.body);
    const result = await confirmAuthAppSetup(ctx, login, form.code, requestInfo(request));
    if (!result.ok) {
      if (result.reason === "fresh_proof_required") return askForPassword(request, reply, login.session, SETUP);
      return renderSetup(request, reply, login, result.message, statusByCode[result.reason]);
    }
    return html(reply, setupDonePage(chrome(request, reply, login.session)));
  });

  app.post(`${MANAGE}/recovery-codes`, async (request, reply) => {
    const login = requirePasswordLogin(request, reply);
    if (!login) return reply;
    parseBody(formSchema({}), request.body);
    const result = await regenerateRecoveryCodes(ctx, login, requestInfo(request));
    if (!result.ok) {
      if (result.reason === "fresh_proof_required") return askForPassword(request, reply, login.session, MANAGE);
      return renderManage(request, reply, login, { error: result.message }, statusByCode[result.reason]);
    }
    return reply.redirect(`${MANAGE}/recovery-codes`, 303);
  });

  app.get(`${MANAGE}/recovery-codes`, async (request, reply) => {
    const login = requirePasswordLogin(request, reply);
    if (!login) return reply;
    const reveal = await revealedRecoveryCodes(ctx, login);
    if (!reveal) return reply.redirect(MANAGE, 303);
    const s = await twoFactorStatus(ctx, login);
    return html(reply, recoveryCodesPage({ ...chrome(request, reply, login.session), codes: reveal.codes, duringSetup: s.method !== "auth_app" }));
  });

  app.post(`${MANAGE}/recovery-codes/done`, async (request, reply) => {
    const login = requirePasswordLogin(request, reply);
    if (!login) return reply;
    parseBody(formSchema({}), request.body);
    await dismissRecoveryCodes(ctx, login);
    return reply.redirect(`${MANAGE}?notice=codes_done`, 303);
  });

  // Download and print read the codes just issued; once the person moves on they are gone for good.
  app.get(`${MANAGE}/recovery-codes.txt`, async (request, reply) => {
    const login = requirePasswordLogin(request, reply);
    if (!login) return reply;
    const me = login.session;
    const reveal = await revealedRecoveryCodes(ctx, login);
    if (!reveal) return renderManage(request, reply, login, { error: "Those recovery codes can no longer be shown. Generate new ones if you did not save them." }, 410);
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

  app.get(`${MANAGE}/recovery-codes/print`, async (request, reply) => {
    const login = requirePasswordLogin(request, reply);
    if (!login) return reply;
    const reveal = await revealedRecoveryCodes(ctx, login);
    if (!reveal) return reply.redirect(MANAGE, 303);
    return reply.type("text/html; charset=utf-8").send(printCodesPage({ productName: config.productName, email: login.session.user.email, codes: reveal.codes }).value);
  });

  app.post(`${MANAGE}/disable`, async (request, reply) => {
    const login = requirePasswordLogin(request, reply);
    if (!login) return reply;
    parseBody(formSchema({}), request.body);
    const result = await disableAuthApp(ctx, login, requestInfo(request));
    if (!result.ok) {
      if (result.reason === "fresh_proof_required") return askForPassword(request, reply, login.session, MANAGE);
      return renderManage(request, reply, login, { error: result.message }, statusByCode[result.reason]);
    }
    return reply.redirect(`${MANAGE}?notice=disabled`, 303);
  });

  // Readable by an SSO session too (a client asks "what is my method?"), but then only the method: "sso", and the same
  // shape with nothing of the password login's factors in it. No fresh proof: nothing it could allow is open to it.
  app.get(routes.apiTwoFactor, async (request, reply) => {
    const me = requireSignedIn(request, reply);
    if (!me) return reply;
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
  });
}
