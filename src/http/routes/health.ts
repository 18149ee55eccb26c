import type { FastifyInstance } from "fastify";
import type { AppContext } from "../../context.js";
import { routes } from "../../paths.js";
import { checkReadiness } from "../../observability/readiness.js";
import { statusByCode } from "../errors.js";

declare module "fastify" {
  interface FastifyContextConfig {
    /**
     * A probe (`/healthz`, `/readyz`): answered even while load is shed, never redirected to the public host name, and
     * its request lines logged only at warn and above (an orchestrator asks every few seconds).
     */
    probe?: boolean;
  }
}

/** Probes log nothing at info: a request line every few seconds per probe is noise. */
const PROBE_LOG_LEVEL = "warn";

/**
 * Liveness and readiness, for load balancers and orchestrators.
 * - `/healthz`: the process runs and its event loop answers. Nothing else is checked: a liveness probe that failed
 *   on a database outage would have every instance restarted at once, which fixes nothing.
 * - `/readyz`: the instance can serve: the database answers and is migrated to the latest migration, and Redis (when
 *   configured) answers. 503 `not_ready` with the reason per check otherwise, so a load balancer sends traffic
 *   elsewhere meanwhile (see src/observability/readiness.ts).
 */
export function healthRoutes(app: FastifyInstance, ctx: AppContext): void {
  const options = { config: { probe: true }, logLevel: PROBE_LOG_LEVEL } as const;
  app.get(routes.healthz, options, async (_request, reply) => reply.send({ ok: true }));
  app.get(routes.readyz, options, async (_request, reply) => {
    const readiness = await checkReadiness(ctx);
    if (readiness.ready) return reply.send({ ok: true, checks: readiness.checks });
    const failing = Object.entries(readiness.checks)
      .filter(([, state]) => state !== "ok")
      .map(([name, state]) => `${name} ${state}`);
    return reply.status(statusByCode.not_ready).send({
      error: "not_ready",
      message: `Not ready to serve: ${failing.join("; ")}.`,
      checks: readiness.checks,
    });
  });
}
