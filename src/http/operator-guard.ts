import type { FastifyRequest } from "fastify";
import type { AppContext } from "../context.js";
import type { TokenActor } from "../audit/events.js";
import { validateApiToken } from "../auth/api-tokens.js";

declare module "fastify" {
  interface FastifyRequest {
    /** The operator API token of the request, on routes declared `operator` only (see access.ts). */
    operator: TokenActor | null;
  }
}

/**
 * The credential of an `Authorization: Bearer …` header (the scheme is case-insensitive, RFC 7235), `""` for a Bearer
 * header without one, or undefined when there is no such header. Only the header counts: a token in the query string
 * or a cookie is never read (it would end up in logs, histories and Referer headers, or ride along cross-site).
 */
export function bearerCredential(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (typeof header !== "string") return undefined;
  const match = /^Bearer(?:[ \t]+(.*))?$/i.exec(header);
  if (!match) return undefined;
  return (match[1] ?? "").trim();
}

/** Loads the operator token behind the Authorization header (if any, and valid) onto the request. */
export async function loadOperator(ctx: AppContext, request: FastifyRequest): Promise<void> {
  const credential = bearerCredential(request);
  request.operator = credential === undefined ? null : await validateApiToken(ctx, credential);
}
