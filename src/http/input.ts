import type { FastifyRequest } from "fastify";
import { z } from "zod";
import { LatchkeyError } from "../errors.js";

/**
 * Parses a body with a zod schema; a wrong shape is a 400 `invalid_request` whose message names the field, so a
 * client sees what to fix. Nothing downstream ever sees unvalidated input.
 */
export function parseBody<T extends z.ZodType>(schema: T, body: unknown): z.infer<T> {
  // `reportInput` puts the offending value on each issue (zod 4 leaves it out by default), so a present value of the
  // wrong type is told apart from a missing one below. The value itself never goes into the message.
  const result = schema.safeParse(body ?? {}, { reportInput: true });
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const path = issue && issue.path.length > 0 ? issue.path.join(".") : "body";
  const message =
    issue?.code === "invalid_type"
      ? issue.input === undefined
        ? `"${path}" is required.`
        : `"${path}" must be ${/^[aeiou]/.test(issue.expected) ? "an" : "a"} ${issue.expected}.`
      : issue?.code === "too_big"
        ? `"${path}" is too long.`
        : `"${path}" is not valid${issue?.message ? `: ${issue.message}` : ""}.`;
  throw new LatchkeyError("invalid_request", message);
}

/** Form fields are strings; a repeated field arrives as an array and is refused by the schema. */
export const formSchema = <T extends z.ZodRawShape>(shape: T): z.ZodObject<T & { _csrf: z.ZodOptional<z.ZodString> }> =>
  z.object({ ...shape, _csrf: z.string().optional() });

/** Ids of rows (members, invitations, accounts): 128 bits in hex. Anything else names nothing. */
export const idSchema = z.string().regex(/^[0-9a-f]{32}$/, "is not an id");

/** The text of a `?notice=` code the page knows; anything else shows nothing (never text from the URL). */
export function noticeFrom<T extends Record<string, string>>(table: T, request: FastifyRequest): string | undefined {
  const code = (request.query as Record<string, unknown>)["notice"];
  return typeof code === "string" && Object.hasOwn(table, code) ? table[code as keyof T] : undefined;
}
