import type { FastifyInstance } from "fastify";
import type { AppContext } from "../../context.js";
import { csrfToken } from "../csrf.js";
import { signedInOf, signedInOnly } from "../access.js";
import { homePage } from "../views/home.js";
import { remainingRecoveryCodes } from "../../auth/recovery-codes.js";
import { routes } from "../../paths.js";
import { passwordLoginFactors } from "../../auth/fresh-proof.js";

const methodLabels = { email_link: "Email link", auth_app: "Auth app", sso: "SSO" } as const;

export function homeRoutes(app: FastifyInstance, ctx: AppContext): void {
  app.get(routes.home, signedInOnly, async (request, reply) => {
    const me = signedInOf(request);
    const csrf = csrfToken(request, reply, ctx.config);
    // The "few recovery codes left" warning is about the password login: never shown to a session opened by SSO.
    const login = passwordLoginFactors(me);
    const remaining = login.ok && me.user.twoFactorMethod === "auth_app" ? await remainingRecoveryCodes(ctx.db, login.value.userId) : null;
    return reply.html(
      homePage({
        productName: ctx.config.productName,
        signedIn: { email: me.user.email, accountName: me.account.name, csrf },
        name: me.user.name,
        email: me.user.email,
        accountName: me.account.name,
        role: me.role,
        lowRecoveryCodes: remaining !== null && remaining <= ctx.config.limits.recoveryCodesLowWarning ? remaining : null,
        method: methodLabels[me.user.twoFactorMethod],
      }),
    );
  });
}
