import type { Socket } from "node:net";
import type { FastifyInstance } from "fastify";
import { sendError } from "./errors.js";

/**
 * How often, while draining, connections that have gone idle are closed. Node closes idle keep-alive connections
 * once, when the server stops listening; a connection whose request was in flight then goes idle later and would
 * otherwise be held until the keep-alive timeout (72 s in Fastify) — what kept a stopping process alive for 70 s.
 */
const IDLE_SWEEP_MS = 100;

export interface DrainResult {
  /** Connections still open at the deadline (a request not finished, or half-sent), destroyed. */
  dropped: number;
}

/**
 * The HTTP half of a graceful shutdown. `drain(ms)` stops accepting connections, closes idle keep-alive connections
 * at once, answers requests that arrive on open connections 503 `service_unavailable` with `Connection: close`,
 * lets the requests in flight finish (their answers close their connections) and at the deadline destroys whatever
 * is still open — a stalled or half-sent request included — so nothing a client does holds the process.
 */
export class Drain {
  private draining = false;
  private readonly sockets = new Set<Socket>();

  constructor(private readonly app: FastifyInstance) {
    // Every connection, including those with half a request (Node's own lists only settle whole requests).
    app.server.on("connection", (socket: Socket) => {
      this.sockets.add(socket);
      socket.once("close", () => this.sockets.delete(socket));
    });
  }

  /** A drain has begun: no new request is served. */
  get active(): boolean {
    return this.draining;
  }

  /** Drains within `ms`, then closes the app (its onClose hooks). Resolves when the app is closed. */
  async drain(ms: number): Promise<DrainResult> {
    this.draining = true;
    const closed = this.app.close();
    const sweep = setInterval(() => this.app.server.closeIdleConnections(), IDLE_SWEEP_MS);
    let deadline: NodeJS.Timeout | undefined;
    const inTime = await Promise.race([
      closed.then(() => true),
      new Promise<false>((resolve) => {
        deadline = setTimeout(() => resolve(false), ms);
      }),
    ]);
    clearTimeout(deadline);
    clearInterval(sweep);
    let dropped = 0;
    if (!inTime) {
      dropped = this.sockets.size;
      for (const socket of this.sockets) socket.destroy();
      this.app.server.closeAllConnections();
    }
    await closed;
    return { dropped };
  }
}

/** Registers the drain's hooks; `app.drain` is the handle `serve` stops the server with. */
export function registerDrain(app: FastifyInstance): void {
  const drain = new Drain(app);
  app.decorate("drain", drain);
  app.addHook("onRequest", (request, reply, done) => {
    if (!drain.active) return done();
    // A request that arrived on an open connection after the drain began: another instance should take it.
    reply.header("Connection", "close");
    sendError(request, reply, "service_unavailable", "This server is shutting down. Try again: another server will answer.");
  });
  app.addHook("onSend", (_request, reply, payload, done) => {
    // A request in flight is answered in full; its connection then closes instead of idling until the keep-alive timeout.
    if (drain.active) reply.header("Connection", "close");
    done(null, payload);
  });
}

declare module "fastify" {
  interface FastifyInstance {
    drain: Drain;
  }
}
