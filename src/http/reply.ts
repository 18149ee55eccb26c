import type { FastifyInstance, FastifyReply } from "fastify";
import type { SafeHtml } from "../html.js";
import { LatchkeyError, type ErrorCode } from "../errors.js";
import { pathTo } from "../paths.js";
import { countRefusal, failureTitles, statusByCode } from "./errors.js";
import { messagePage } from "./views/message.js";

declare module "fastify" {
  interface FastifyReply {
    /** Sends a server-rendered page (status 200 unless given). */
    html(page: SafeHtml, status?: number): FastifyReply;
  }
}

export function registerHtmlReply(app: FastifyInstance): void {
  app.decorateReply("html", function (this: FastifyReply, page: SafeHtml, status = 200): FastifyReply {
    return this.status(status).type("text/html; charset=utf-8").send(page.value);
  });
}

/** A domain function's expected failure (`fail(code, message, details)`). */
export interface Failure {
  reason: ErrorCode;
  message: string;
  details?: Record<string, unknown> | undefined;
}

/**
 * A failure drawn as a page: the status from the one code map, `Retry-After` when the failure says how long to wait,
 * and the page given (typically the same form again, with the message next to the field).
 */
export function renderFailure(reply: FastifyReply, failure: Failure, page: SafeHtml): FastifyReply {
  const retryAfter = failure.details?.["retryAfterSeconds"];
  if (typeof retryAfter === "number") reply.header("Retry-After", String(retryAfter));
  countRefusal(reply.request, failure.reason);
  return reply.html(page, statusByCode[failure.reason]);
}

/** A failure answered by the JSON API: thrown, so the error handler writes `{error, message}` with the mapped status. */
export function failureError(failure: Failure): LatchkeyError {
  return new LatchkeyError(failure.reason, failure.message, failure.details);
}

/**
 * A failure that ends the flow, drawn as a message page: the status from the one code map, the title from the one
 * title table (`failureTitles`), the message, and the way on (`action`, by default the start page).
 */
export function renderFailurePage(
  reply: FastifyReply,
  productName: string,
  failure: Failure,
  action: { href: string; label: string } = { href: pathTo("home"), label: "Go to the start page" },
): FastifyReply {
  return renderFailure(
    reply,
    failure,
    messagePage({ productName, title: failureTitles[failure.reason] ?? "That did not work", message: failure.message, action }),
  );
}
