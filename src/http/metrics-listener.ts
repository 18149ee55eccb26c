import { createServer, type Server } from "node:http";
import type { FastifyInstance } from "fastify";
import type { ListenAddress } from "../config.js";
import { metricsPath } from "../paths.js";

/** What the listener serves: a scrape in the Prometheus text format. */
export interface MetricsSource {
  scrape(): Promise<{ contentType: string; body: string }>;
}

export interface MetricsListener {
  /** Where it listens (the port actually bound). */
  address: ListenAddress;
  /** Stops listening and drops open scrape connections (a scraper keeps one alive between scrapes). */
  close(): Promise<void>;
}

/**
 * The separate metrics listener (`LATCHKEY_METRICS_ADDR`): `GET /metrics` and nothing else, on a port of its own,
 * so the main port — the one a reverse proxy exposes — never serves metrics. A bare node:http server: no cookies, no
 * sessions, no CSRF, no logs per scrape. Bind it to a private address; whoever reaches it reads the metrics.
 */
export async function startMetricsListener(source: MetricsSource, address: ListenAddress): Promise<MetricsListener> {
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? "").split("?")[0];
    if (path !== metricsPath) {
      response.writeHead(404, { "Content-Type": "text/plain; charset=utf-8" }).end(`Only ${metricsPath} is served here.\n`);
      return;
    }
    if (request.method !== "GET" && request.method !== "HEAD") {
      response.writeHead(405, { Allow: "GET, HEAD", "Content-Type": "text/plain; charset=utf-8" }).end(`${metricsPath} takes GET.\n`);
      return;
    }
    source.scrape().then(
      (scrape) => {
        response.writeHead(200, { "Content-Type": scrape.contentType, "Cache-Control": "no-store" });
        response.end(request.method === "HEAD" ? undefined : scrape.body);
      },
      (error: unknown) => {
        response.writeHead(500, { "Content-Type": "text/plain; charset=utf-8" });
        response.end(`The metrics could not be collected: ${error instanceof Error ? error.message : String(error)}\n`);
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(address.port, address.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const bound = server.address();
  const port = bound !== null && typeof bound === "object" ? bound.port : address.port;
  return {
    address: { host: address.host, port },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/**
 * Starts the metrics listener beside `app` and ties it to the app's life: closing the app closes it too. Call it before
 * `app.listen` (hooks cannot be added to a listening app).
 */
export async function serveMetricsBeside(app: FastifyInstance, source: MetricsSource, address: ListenAddress): Promise<MetricsListener> {
  const listener = await startMetricsListener(source, address);
  app.addHook("onClose", async () => listener.close());
  return listener;
}

/** The scrape URL of a listener, for the start-up line and tests (`http://127.0.0.1:9464/metrics`, `http://[::1]:9464/metrics`). */
export function metricsUrl(address: ListenAddress): string {
  const host = address.host.includes(":") ? `[${address.host}]` : address.host;
  return `http://${host}:${address.port}${metricsPath}`;
}
