import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import type { ErrorCode } from "../errors.js";
import { routes, type RouteName } from "../paths.js";
import type { Access } from "./access.js";
import { parseBody } from "./input.js";

/**
 * The JSON API is declared once per operation: the route, who may call it, the zod schemas its input is validated
 * with, what it answers and which error codes it can give. `apiRoute` registers the Fastify route from the
 * declaration and parses the input with exactly those schemas; `openApiDocument` (routes/openapi.ts) is generated
 * from the same declarations, so the document cannot drift from what the server accepts.
 */

/**
 * Who may call: `public` (no cookie), `challenge` (a sign-in in progress: the challenge cookie), a session `Access`,
 * or `operator` (an operator API token as `Authorization: Bearer`, never a cookie).
 */
export type ApiAccess = "public" | "challenge" | "optional_session" | Access;

export type ApiTag = "Sign-in" | "Session" | "Profile" | "Two-factor" | "Team" | "Accounts" | "Operator" | "Document";

export interface ApiOperation<
  B extends z.ZodType | undefined = z.ZodType | undefined,
  Q extends z.ZodType | undefined = z.ZodType | undefined,
> {
  method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  route: RouteName;
  operationId: string;
  tag: ApiTag;
  summary: string;
  description?: string;
  access: ApiAccess;
  /** Open while the account requires the auth app and the caller has not set it up (the policy guard's allow-list). */
  openDuringForcedSetup?: boolean;
  /** Called on every request of a protected app (session check, forward auth): logged at debug level (http/hot-path.ts). */
  hotPath?: boolean;
  body?: B;
  query?: Q;
  ok: { status: 200 | 201 | 202 | 204; description: string; schema?: z.ZodType; headers?: Record<string, string> };
  /** The error codes this operation itself produces; the ones every operation of its kind can give are added. */
  errors: ErrorCode[];
}

export interface ApiInput<B, Q> {
  body: B extends z.ZodType ? z.infer<B> : undefined;
  query: Q extends z.ZodType ? z.infer<Q> : undefined;
}

declare module "fastify" {
  interface FastifyInstance {
    /** Every JSON API operation, as declared: the source of the OpenAPI document. */
    apiOperations: ApiOperation[];
  }
}

export function registerApiOperations(app: FastifyInstance): void {
  app.decorate("apiOperations", [] as ApiOperation[]);
}

/** Registers one JSON API operation: the route, its access rule, and its input parsed with the declared schemas. */
export function apiRoute<B extends z.ZodType | undefined, Q extends z.ZodType | undefined>(
  app: FastifyInstance,
  operation: ApiOperation<B, Q>,
  handler: (request: FastifyRequest, reply: FastifyReply, input: ApiInput<B, Q>) => Promise<FastifyReply>,
  /** Runs on every answer of the route, refusals included (e.g. a header on the 401 the access check gives). */
  onSend?: (request: FastifyRequest, reply: FastifyReply, payload: unknown) => Promise<unknown>,
): void {
  app.apiOperations.push(operation as ApiOperation);
  const access =
    operation.access === "signed_in" ||
    operation.access === "admin" ||
    operation.access === "password_login" ||
    operation.access === "operator"
      ? operation.access
      : undefined;
  app.route({
    method: operation.method,
    url: routes[operation.route],
    config: {
      api: true,
      ...(access ? { access } : {}),
      ...(operation.openDuringForcedSetup ? { openDuringForcedSetup: true } : {}),
      ...(operation.hotPath ? { hotPath: true } : {}),
    },
    ...(onSend ? { onSend } : {}),
    handler: async (request, reply) => {
      const input = {
        body: operation.body ? parseBody(operation.body, request.body) : undefined,
        query: operation.query ? parseBody(operation.query, request.query) : undefined,
      } as ApiInput<B, Q>;
      return handler(request, reply, input);
    },
  });
}

// ---- shapes shared by several operations ----

export const roleSchema = z.enum(["admin", "member"], { message: 'must be "admin" or "member"' });
export const isoTime = z.string().describe("ISO 8601 date-time (UTC)");
export const okSchema = z.object({ ok: z.literal(true) });
