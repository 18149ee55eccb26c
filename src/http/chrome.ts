import type { FastifyReply, FastifyRequest } from "fastify";
import type { AppContext } from "../context.js";
import type { SignedIn } from "../auth/sessions.js";
import { mustSetUpAuthApp } from "../team/policy.js";
import { csrfToken } from "./csrf.js";
import type { SettingsChrome } from "./views/settings-chrome.js";

/** What every signed-in page draws around its content: product name, who is signed in, the form token, admin tabs. */
export function settingsChrome(ctx: AppContext, request: FastifyRequest, reply: FastifyReply, me: SignedIn): SettingsChrome {
  return {
    productName: ctx.config.productName,
    signedIn: { email: me.user.email, accountName: me.account.name, csrf: csrfToken(request, reply, ctx.config) },
    isAdmin: me.role === "admin",
    setupOnly: mustSetUpAuthApp(me),
  };
}
