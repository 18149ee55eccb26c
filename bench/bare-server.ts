/**
 * The ceiling of the stack: a plain Fastify 5 app, no plugins, no hooks, no database, logger off, with two routes:
 * - `GET /api/v1/session` answers a session-shaped JSON (the session check's ceiling);
 * - `POST /api/v1/login` checks `{ email, password }` against one argon2id hash of Latchkey's parameters and answers
 *   `{ next }` (the password step's ceiling: the HTTP stack and the hash, nothing else).
 * `npm run bench` measures Latchkey against both in the same run.
 * Usage: node --import tsx bench/bare-server.ts PORT PASSWORD (prints "bare on PORT" when listening).
 */
import { hash, verify } from "@node-rs/argon2";
import Fastify from "fastify";
import { ARGON2_OPTIONS } from "../src/auth/passwords.js";

const port = Number(process.argv[2]);
const password = process.argv[3] ?? "";
const stored = await hash(password, ARGON2_OPTIONS);
const app = Fastify({ logger: false });
const session = {
  user: { id: "0f1e2d3c4b5a69788796a5b4c3d2e1f0", email: "bench@example.com", name: "Bench" },
  account: { id: "00112233445566778899aabbccddeeff", name: "Bench" },
  role: "admin",
  twoFactor: { method: "email_link", setupRequired: false },
  expiresAt: new Date(Date.now() + 12 * 3600_000).toISOString(),
};
app.get("/api/v1/session", async (_request, reply) => reply.send(session));
app.post<{ Body: { email?: unknown; password?: unknown } }>("/api/v1/login", async (request, reply) => {
  const given = typeof request.body?.password === "string" ? request.body.password : "";
  const right = await verify(stored, given);
  return right ? reply.send({ next: "email_link" }) : reply.code(401).send({ error: "invalid_credentials" });
});
await app.listen({ port, host: "127.0.0.1" });
process.stdout.write(`bare on ${port}\n`);
for (const signal of ["SIGTERM", "SIGINT"] as const) process.once(signal, () => void app.close().then(() => process.exit(0)));
