import type { FastifyInstance } from "fastify";
import { z } from "zod";
import type { AppContext } from "../../context.js";
import { accountsOf, switchAccount } from "../../team/switch-account.js";
import { routes, pathTo } from "../../paths.js";
import { signedInOf, signedInOnly } from "../access.js";
import { apiRoute, roleSchema } from "../api-operations.js";
import { settingsChrome } from "../chrome.js";
import { formSchema, idSchema, parseBody } from "../input.js";
import { failureError } from "../reply.js";
import { requestInfo } from "../request-info.js";
import { accountPickerPage, helpPage } from "../views/accounts.js";
import { hasReturnTo } from "../return-to.js";

/** The person's team accounts: the picker after sign-in, switching, and the help page; pages and the JSON API. */
export function accountRoutes(app: FastifyInstance, ctx: AppContext): void {
  const { config } = ctx;

  app.get(routes.accounts, signedInOnly, async (request, reply) => {
    const me = signedInOf(request);
    return reply.html(
      accountPickerPage({
        productName: config.productName,
        signedIn: settingsChrome(ctx, request, reply, me).signedIn,
        accounts: await accountsOf(ctx, me),
      }),
    );
  });

  app.post(routes.accountsSwitch, signedInOnly, async (request, reply) => {
    const form = parseBody(formSchema({ accountId: idSchema }), request.body);
    const result = await switchAccount(ctx, signedInOf(request), { accountId: form.accountId, info: requestInfo(request) });
    if (!result.ok) throw failureError(result);
    // Picked after a sign-in asked for with return_to: on to it (through the setup first if this account requires it).
    return reply.redirect(pathTo(hasReturnTo(request, config) ? "loginContinue" : "home"), 303);
  });

  app.get(routes.help, async (request, reply) => {
    const me = request.signedIn;
    return reply.html(
      helpPage({ productName: config.productName, signedIn: me ? settingsChrome(ctx, request, reply, me).signedIn : undefined }),
    );
  });

  apiRoute(
    app,
    {
      method: "GET",
      route: "apiAccounts",
      operationId: "listAccounts",
      tag: "Accounts",
      summary: "The team accounts the person can use with this session.",
      access: "signed_in",
      openDuringForcedSetup: true,
      ok: {
        status: 200,
        description: "Accounts; `current` marks the one in use.",
        schema: z.object({ accounts: z.array(z.object({ id: z.string(), name: z.string(), role: roleSchema, current: z.boolean() })) }),
      },
      errors: [],
    },
    async (request, reply) => reply.send({ accounts: await accountsOf(ctx, signedInOf(request)) }),
  );

  apiRoute(
    app,
    {
      method: "POST",
      route: "apiSessionAccount",
      operationId: "switchAccount",
      tag: "Accounts",
      summary: "Switch the session to another of the person's accounts.",
      access: "signed_in",
      openDuringForcedSetup: true,
      body: z.object({ accountId: idSchema }).strict(),
      ok: { status: 200, description: "Switched.", schema: z.object({ ok: z.literal(true), accountId: z.string() }) },
      errors: ["member_not_found"],
    },
    async (request, reply, { body }) => {
      const result = await switchAccount(ctx, signedInOf(request), { accountId: body.accountId, info: requestInfo(request) });
      if (!result.ok) throw failureError(result);
      return reply.send({ ok: true, accountId: body.accountId });
    },
  );
}
