/**
 * The ceiling of the stack: a plain Fastify 5 app with one route answering a session-shaped JSON, no plugins, no
 * hooks, no database, logger off. `npm run bench` measures Latchkey's session check and forward auth against it in
 * the same run. Usage: node --import tsx bench/bare-server.ts PORT (prints "bare on PORT" when listening).
 */
import Fastify from "fastify";

const port = Number(process.argv[2]);
const app = Fastify({ logger: false });
const session = {
  user: { id: "0f1e2d3c4b5a69788796a5b4c3d2e1f0", email: "bench@example.com", name: "Bench" },
  account: { id: "00112233445566778899aabbccddeeff", name: "Bench" },
  role: "admin",
  twoFactor: { method: "email_link", setupRequired: false },
  expiresAt: new Date(Date.now() + 12 * 3600_000).toISOString(),
};
app.get("/api/v1/session", async (_request, reply) => reply.send(session));
await app.listen({ port, host: "127.0.0.1" });
process.stdout.write(`bare on ${port}\n`);
for (const signal of ["SIGTERM", "SIGINT"] as const) process.once(signal, () => void app.close().then(() => process.exit(0)));
