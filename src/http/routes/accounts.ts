import type { FastifyInstance } from "fastify";
import { z } from "zod";
import type { AppContext } from "../../context.js";
import { accountsOf, switchAccount } from "../../team/switch-account.js";
import { routes, pathTo } from "../../paths.js";
import { signedInOf, signedInOnly } from "../access.js";
import { settingsChrome } from "../chrome.js";
import { formSchema, idSchema, parseBody } from "../input.js";
import { failureError } from "../reply.js";
import { requestInfo } from "../request-info.js";
import { accountPickerPage, helpPage } from "../views/accounts.js";

/** The person's team accounts: the picker after sign-in, switching, and the help page; pages and the JSON API. */
export function accountRoutes(app: FastifyInstance, ctx: AppContext): void {
  const { config } = ctx;

  app.get(routes.accounts, signedInOnly, async (request, reply) => {
    const me = signedInOf(request);
    return reply.html(accountPickerPage({ productName: config.productName, signedIn: settingsChrome(ctx, request, reply, me).signedIn, accounts: await accountsOf(ctx, me) }));
  });

  app.post(routes.accountsSwitch, signedInOnly, async (request, reply) => {
    const form = parseBody(formSchema({ accountId: idSchema }), request.body);
    const result = await switchAccount(ctx, signedInOf(request), { accountId: form.accountId, info: requestInfo(request) });
    if (!result.ok) throw failureError(result);
    return reply.redirect(pathTo("home"), 303);
  });

  app.get(routes.help, async (request, reply) => {
    const me = request.signedIn;
    return reply.html(helpPage({ productName: config.productName, signedIn: me ? settingsChrome(ctx, request, reply, me).signedIn : undefined }));
  });

  app.get(routes.apiAccounts, signedInOnly, async (request, reply) => reply.send({ accounts: await accountsOf(ctx, signedInOf(request)) }));

  app.post(routes.apiSessionAccount, signedInOnly, async (request, reply) => {
    const body = parseBody(z.object({ accountId: idSchema }).strict(), request.body);
    const result = await switchAccount(ctx, signedInOf(request), { accountId: body.accountId, info: requestInfo(request) });
    if (!result.ok) throw failureError(result);
    return reply.send({ ok: true, accountId: body.accountId });
  });
}
