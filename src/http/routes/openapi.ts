import type { FastifyInstance } from "fastify";
import type { AppContext } from "../../context.js";
import { errorCodes } from "../../errors.js";
import { routes } from "../../paths.js";

const error = { $ref: "#/components/schemas/Error" };
const errorResponse = (description: string): object => ({ description, content: { "application/json": { schema: error } } });
const jsonBody = (properties: Record<string, object>, required: string[]): object => ({ required: true, content: { "application/json": { schema: { type: "object", required, properties, additionalProperties: false } } } });
const codeBody = jsonBody({ code: { type: "string" } }, ["code"]);
const pathId = (name: string): object => ({ name, in: "path", required: true, schema: { type: "string" } });

/** The OpenAPI 3.1 description of the JSON API. Kept beside the routes; a test checks that every API route is in it. */
export function openApiDocument(ctx: AppContext): Record<string, unknown> {
  return {
    openapi: "3.1.0",
    info: { title: `${ctx.config.productName} API`, version: "1", description: "Sign-in and two-factor authentication. Cookies carry the challenge and the session; errors are {error, message}." },
    servers: [{ url: ctx.config.publicUrl.origin }],
    components: {
      schemas: {
        Error: {
          type: "object",
          required: ["error", "message"],
          properties: { error: { type: "string", enum: [...errorCodes] }, message: { type: "string" }, details: { type: "object" } },
        },
        Session: {
          type: "object",
          required: ["user", "account", "role", "twoFactor"],
          properties: {
            user: { type: "object", properties: { id: { type: "string" }, email: { type: "string" }, name: { type: "string" } } },
            account: { type: "object", properties: { id: { type: "string" }, name: { type: "string" } } },
            role: { type: "string", enum: ["admin", "member"] },
            twoFactor: { type: "object", properties: { method: { type: "string", enum: ["email_link", "auth_app", "sso"] } } },
            expiresAt: { type: "string", format: "date-time" },
          },
        },
      },
      securitySchemes: { session: { type: "apiKey", in: "cookie", name: "latchkey_session", description: "`__Host-latchkey_session` when the public URL is https." } },
    },
    paths: {
      "/api/v1/login": {
        post: {
          summary: "Password step: starts a sign-in challenge (cookie) and, for email-link users, emails the link.",
          requestBody: { required: true, content: { "application/json": { schema: { type: "object", required: ["email", "password"], properties: { email: { type: "string" }, password: { type: "string" } } } } } },
          responses: {
            "200": { description: "Password accepted; the challenge cookie is set.", content: { "application/json": { schema: { type: "object", properties: { next: { type: "string", enum: ["email_link", "auth_app"] } } } } } },
            "400": errorResponse("Malformed body"),
            "401": errorResponse("invalid_credentials (same answer for unknown email and wrong password)"),
            "429": errorResponse("too_many_attempts (per email; with a valid `latchkey_device` cookie of this user, per device instead; per IP)"),
          },
        },
      },
      "/api/v1/login/sso": {
        post: {
          summary: "Start single sign-on for a work email or domain (only the domain is used). Sets the `latchkey_sso` cookie; open `authorizationUrl` in the same browser, which comes back to /sso/callback.",
          requestBody: jsonBody({ domain: { type: "string", description: "example.com or you@example.com" } }, ["domain"]),
          responses: {
            "200": { description: "The provider's authorization URL (code flow, PKCE, state, nonce).", content: { "application/json": { schema: { type: "object", required: ["authorizationUrl"], properties: { authorizationUrl: { type: "string", format: "uri" } } } } } },
            "400": errorResponse("invalid_request (not a domain)"),
            "404": errorResponse("sso_not_configured (no single sign-on for that domain)"),
            "503": errorResponse("sso_unavailable (the provider could not be reached)"),
          },
        },
      },
      "/api/v1/login/email-link": {
        post: {
          summary: "Send a new sign-in link for the challenge in the cookie; older links stop working.",
          responses: { "200": { description: "Sent" }, "401": errorResponse("challenge_missing"), "429": errorResponse("rate_limited or too_many_attempts") },
        },
      },
      "/api/v1/session": {
        get: { summary: "The current session.", security: [{ session: [] }], responses: { "200": { description: "Signed in", content: { "application/json": { schema: { $ref: "#/components/schemas/Session" } } } }, "401": errorResponse("unauthenticated") } },
      },
      "/api/v1/logout": { post: { summary: "Ends the session server-side.", responses: { "204": { description: "Signed out" } } } },
      "/api/v1/verify": {
        get: {
          summary: "Forward auth for reverse proxies.",
          security: [{ session: [] }],
          responses: {
            "200": { description: "Signed in", headers: { "X-Latchkey-User-Id": { schema: { type: "string" } }, "X-Latchkey-Email": { schema: { type: "string" } }, "X-Latchkey-Account-Id": { schema: { type: "string" } }, "X-Latchkey-Role": { schema: { type: "string" } } } },
            "401": errorResponse("unauthenticated"),
          },
        },
      },
      "/api/v1/openapi.json": { get: { summary: "This document.", responses: { "200": { description: "OpenAPI 3.1" } } } },
      "/api/v1/login/code": {
        post: {
          summary: "Auth-app step: a 6-digit code for the challenge in the cookie. Each time step is accepted once.",
          requestBody: codeBody,
          responses: { "200": { description: "Signed in; the session cookie and the long-lived device cookie (`latchkey_device`) are set." }, "400": errorResponse("invalid_code_format (not counted)"), "401": errorResponse("invalid_code, code_reused or challenge_expired"), "429": errorResponse("too_many_attempts (code entry locked)") },
        },
      },
      "/api/v1/login/recovery-code": {
        post: {
          summary: "Recovery-code step instead of the app code. Each code works once.",
          requestBody: codeBody,
          responses: { "200": { description: "Signed in; `recoveryCodesRemaining` tells how many are left." }, "400": errorResponse("invalid_code_format"), "401": errorResponse("invalid_code or challenge_expired"), "429": errorResponse("too_many_attempts") },
        },
      },
      "/api/v1/two-factor": { get: { summary: "The signed-in user's two-factor status: method, remaining recovery codes, accounts that require the app. A session opened by SSO gets method \"sso\" and nothing else.", security: [{ session: [] }], responses: { "200": { description: "Status" }, "401": errorResponse("unauthenticated") } } },
      "/api/v1/accounts": { get: { summary: "The team accounts the person can use.", security: [{ session: [] }], responses: { "200": { description: "Accounts" }, "401": errorResponse("unauthenticated") } } },
      "/api/v1/session/account": {
        post: { summary: "Switch the session to another of the person's accounts.", requestBody: jsonBody({ accountId: { type: "string" } }, ["accountId"]), responses: { "200": { description: "Switched" }, "404": errorResponse("member_not_found") } },
      },
      "/api/v1/team/members": { get: { summary: "Members of the account in use, each with role and 2FA method.", security: [{ session: [] }], responses: { "200": { description: "Members" }, "401": errorResponse("unauthenticated") } } },
      "/api/v1/team/members/{userId}": {
        patch: { summary: "Change a member's role (admins).", parameters: [pathId("userId")], requestBody: jsonBody({ role: { type: "string", enum: ["admin", "member"] } }, ["role"]), responses: { "200": { description: "Changed" }, "403": errorResponse("forbidden"), "404": errorResponse("member_not_found"), "409": errorResponse("last_admin") } },
        delete: { summary: "Remove a member (admins): signs them out of the account at once; deletes the login if it was their only account.", parameters: [pathId("userId")], responses: { "200": { description: "Removed; `loginDeleted` says whether the login went too." }, "403": errorResponse("forbidden"), "404": errorResponse("member_not_found"), "409": errorResponse("last_admin") } },
      },
      "/api/v1/team/invitations": {
        get: { summary: "Open invitations (admins).", responses: { "200": { description: "Invitations" }, "403": errorResponse("forbidden") } },
        post: { summary: "Invite by email with a role (admins); the invitation email carries a 7-day single-use link.", requestBody: jsonBody({ email: { type: "string" }, role: { type: "string", enum: ["admin", "member"] } }, ["email", "role"]), responses: { "201": { description: "Invited" }, "403": errorResponse("forbidden"), "409": errorResponse("already_member"), "422": errorResponse("email_invalid") } },
      },
      "/api/v1/team/invitations/{id}/resend": { post: { summary: "A new link for an open invitation (the old one stops working).", parameters: [pathId("id")], responses: { "200": { description: "Sent" }, "404": errorResponse("invitation_not_found") } } },
      "/api/v1/team/invitations/{id}": { delete: { summary: "Revoke an open invitation.", parameters: [pathId("id")], responses: { "200": { description: "Revoked" }, "404": errorResponse("invitation_not_found") } } },
      "/api/v1/policy": {
        get: { summary: "The account's two-factor policy and who it would affect (admins).", responses: { "200": { description: "Policy" }, "403": errorResponse("forbidden") } },
        put: {
          summary: "Require the auth app for all team members, or stop requiring it (admins; requiring needs the admin's own auth app).",
          requestBody: jsonBody({ policy: { type: "string", enum: ["email_link", "auth_app_required"] } }, ["policy"]),
          responses: { "200": { description: "Set" }, "403": errorResponse("forbidden"), "409": errorResponse("policy_requires_auth_app") },
        },
      },
      "/api/v1/audit": {
        get: {
          summary: "The account's security events, newest first (admins).",
          parameters: [
            { name: "member", in: "query", schema: { type: "string" } },
            { name: "event", in: "query", schema: { type: "string" }, description: "Exact type or a prefix ending in '.'" },
            { name: "from", in: "query", schema: { type: "string" } },
            { name: "to", in: "query", schema: { type: "string" } },
            { name: "cursor", in: "query", schema: { type: "string" } },
            { name: "limit", in: "query", schema: { type: "integer", minimum: 1, maximum: 200 } },
          ],
          responses: { "200": { description: "`events` and `nextCursor`" }, "400": errorResponse("invalid_request"), "403": errorResponse("forbidden") },
        },
      },
    },
  };
}

export function openApiRoutes(app: FastifyInstance, ctx: AppContext): void {
  const document = openApiDocument(ctx);
  app.get(routes.apiOpenApi, async (_request, reply) => reply.send(document));
}
