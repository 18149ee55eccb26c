import type { FastifyInstance } from "fastify";
import { z } from "zod";
import type { AppContext } from "../../context.js";
import { errorCodes, type ErrorCode } from "../../errors.js";
import { routes } from "../../paths.js";
import { apiRoute, type ApiOperation, type ApiTag } from "../api-operations.js";
import { statusByCode } from "../errors.js";

type JsonObject = Record<string, unknown>;

const tagDescriptions: Record<ApiTag, string> = {
  "Sign-in": "Password, then the second factor (email link, auth-app code or recovery code), or single sign-on.",
  Session: "The signed-in session: who it is, forward auth for reverse proxies, sign-out, and where else the person is signed in.",
  Profile: "The signed-in person's own login: their email address and changing it.",
  "Two-factor": "The signed-in person's own two-factor status.",
  Team: "The account in use: members and their 2FA methods, invitations, the two-factor policy, the audit log.",
  Accounts: "The team accounts a person belongs to, and switching between them.",
  Operator:
    "The operator API: team accounts administered by the operator's programs with an API token (`latchkey api-token create`) as `Authorization: Bearer`. Cookies are ignored here.",
  Document: "This document.",
};

/** A zod schema as JSON Schema 2020-12 (the dialect of OpenAPI 3.1), without the `$schema` marker. */
function jsonSchema(schema: z.ZodType, io: "input" | "output"): JsonObject {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(schema, { target: "draft-2020-12", io, unrepresentable: "any" }) as JsonObject;
  return rest;
}

/** The codes every operation of a kind can give, besides its own. */
function implicitErrors(op: ApiOperation): ErrorCode[] {
  const codes: ErrorCode[] = [];
  const changes = op.method !== "GET";
  if (op.body || op.query || routes[op.route].includes(":")) codes.push("invalid_request");
  if (op.body) codes.push("invalid_json", "payload_too_large", "unsupported_media_type");
  // Operator calls carry no cookie, so the origin checks do not apply to them (csrf.ts).
  if (changes && op.access !== "operator") codes.push("csrf_invalid");
  if (op.access === "operator") codes.push("unauthenticated", "invalid_token");
  if (op.access === "signed_in" || op.access === "admin" || op.access === "password_login") {
    codes.push("unauthenticated");
    if (!op.openDuringForcedSetup) codes.push("two_factor_setup_required");
  }
  if (op.access === "admin" || op.access === "password_login") codes.push("forbidden");
  // Any call may be shed while the server is overloaded (http/load-shedding.ts), with Retry-After.
  codes.push("service_unavailable");
  return codes;
}

function security(op: ApiOperation): JsonObject[] {
  switch (op.access) {
    case "public":
      return [];
    case "challenge":
      return [{ challenge: [] }];
    case "optional_session":
      return [{ session: [] }, {}];
    case "operator":
      return [{ bearer: [] }];
    default:
      return [{ session: [] }];
  }
}

function operationObject(op: ApiOperation): JsonObject {
  const parameters: JsonObject[] = [...routes[op.route].matchAll(/:([A-Za-z]+)/g)].map((m) => ({
    name: m[1],
    in: "path",
    required: true,
    schema: { type: "string" },
  }));
  if (op.query) {
    const query = jsonSchema(op.query, "input") as { properties?: Record<string, JsonObject>; required?: string[] };
    for (const [name, schema] of Object.entries(query.properties ?? {})) {
      const { description, ...rest } = schema as { description?: string };
      parameters.push({
        name,
        in: "query",
        required: query.required?.includes(name) ?? false,
        schema: rest,
        ...(description ? { description } : {}),
      });
    }
  }
  const responses: Record<string, JsonObject> = {
    [String(op.ok.status)]: {
      description: op.ok.description,
      ...(op.ok.schema ? { content: { "application/json": { schema: jsonSchema(op.ok.schema, "output") } } } : {}),
      ...(op.ok.headers
        ? {
            headers: Object.fromEntries(
              Object.entries(op.ok.headers).map(([name, description]) => [name, { description, schema: { type: "string" } }]),
            ),
          }
        : {}),
    },
  };
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of new Set([...op.errors, ...implicitErrors(op)]))
    byStatus.set(statusByCode[code], [...(byStatus.get(statusByCode[code]) ?? []), code]);
  for (const [status, codes] of [...byStatus].sort(([a], [b]) => a - b)) {
    responses[String(status)] = {
      description: codes.map((c) => `\`${c}\``).join(", "),
      content: {
        "application/json": {
          schema: { allOf: [{ $ref: "#/components/schemas/Error" }, { type: "object", properties: { error: { enum: codes } } }] },
        },
      },
    };
  }
  return {
    operationId: op.operationId,
    tags: [op.tag],
    summary: op.summary,
    ...(op.description ? { description: op.description } : {}),
    security: security(op),
    ...(parameters.length ? { parameters } : {}),
    ...(op.body ? { requestBody: { required: true, content: { "application/json": { schema: jsonSchema(op.body, "input") } } } } : {}),
    responses,
  };
}

/** The OpenAPI 3.1 document of the JSON API, generated from the operations the server registered. */
export function openApiDocument(ctx: AppContext, operations: readonly ApiOperation[]): JsonObject {
  const paths: Record<string, Record<string, JsonObject>> = {};
  for (const op of operations) {
    const path = routes[op.route].replace(/:([A-Za-z]+)/g, "{$1}");
    paths[path] = { ...paths[path], [op.method.toLowerCase()]: operationObject(op) };
  }
  const cookie = (name: string, description: string): JsonObject => ({ type: "apiKey", in: "cookie", name, description });
  return {
    openapi: "3.1.0",
    info: {
      title: `${ctx.config.productName} API`,
      version: "1",
      description:
        "Sign-in and two-factor authentication for team accounts. Cookies carry the sign-in in progress (challenge) and the session; state-changing calls must send JSON, and a browser's Origin must be the public URL. The operator API (`/api/v1/admin/…`) takes an API token as `Authorization: Bearer` instead, never a cookie. Errors are `{error, message, details?}` with a stable snake_case code.",
      license: { name: "Apache-2.0", identifier: "Apache-2.0" },
    },
    servers: [{ url: ctx.config.publicUrl.origin }],
    tags: Object.entries(tagDescriptions).map(([name, description]) => ({ name, description })),
    paths,
    components: {
      schemas: {
        Error: {
          type: "object",
          required: ["error", "message"],
          properties: {
            error: { type: "string", enum: [...errorCodes], description: "Stable snake_case code." },
            message: { type: "string", description: "What happened and what to do, for people." },
            details: { type: "object", description: "Extra facts, e.g. `retryAfterSeconds` or `attemptsLeft`. Never secrets." },
          },
        },
      },
      securitySchemes: {
        session: cookie(
          "latchkey_session",
          "The session cookie (`__Host-latchkey_session` when the public URL is https; `__Secure-latchkey_session` for the whole `LATCHKEY_COOKIE_DOMAIN` when that is set).",
        ),
        challenge: cookie(
          "latchkey_challenge",
          "The sign-in in progress, set by `POST /api/v1/login` (`__Host-latchkey_challenge` under https).",
        ),
        bearer: {
          type: "http",
          scheme: "bearer",
          bearerFormat: "lk_ followed by 43 base64url characters",
          description: "An operator API token, made with `latchkey api-token create` and revoked with `latchkey api-token revoke`.",
        },
      },
    },
  };
}

export function openApiRoutes(app: FastifyInstance, ctx: AppContext): void {
  let document: JsonObject | undefined;
  apiRoute(
    app,
    {
      method: "GET",
      route: "apiOpenApi",
      operationId: "getOpenApiDocument",
      tag: "Document",
      summary: "This document (OpenAPI 3.1).",
      access: "public",
      openDuringForcedSetup: true,
      ok: { status: 200, description: "The OpenAPI document.", schema: z.object({ openapi: z.string() }).passthrough() },
      errors: [],
    },
    // Built on first request: by then every operation is registered.
    async (_request, reply) => reply.send((document ??= openApiDocument(ctx, app.apiOperations))),
  );
}
