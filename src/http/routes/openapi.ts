import type { FastifyInstance } from "fastify";
import type { AppContext } from "../../context.js";
import { errorCodes } from "../../errors.js";

const error = { $ref: "#/components/schemas/Error" };
const errorResponse = (description: string): object => ({ description, content: { "application/json": { schema: error } } });

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
            "429": errorResponse("too_many_attempts"),
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
    },
  };
}

export function openApiRoutes(app: FastifyInstance, ctx: AppContext): void {
  const document = openApiDocument(ctx);
  app.get("/api/v1/openapi.json", async (_request, reply) => reply.send(document));
}
