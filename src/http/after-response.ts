import type { FastifyBaseLogger, FastifyReply } from "fastify";

/**
 * Work a route runs only once its answer has gone out, so that the answer (its status, its timing) cannot depend on
 * that work: `POST /support` looks the address up only afterwards (docs/decisions.md, "Support requests: the answer
 * comes before the look-up"). Every task is tracked: closing the app waits for them, tests await `settled()`, and
 * a failure is logged, never an unhandled rejection.
 */
export class AfterResponse {
  private readonly tasks = new Set<Promise<void>>();

  /** `afterWork` runs after each task's work (the server wakes the mail sender: the work may have queued mail). */
  constructor(
    private readonly log: FastifyBaseLogger,
    private readonly afterWork: () => Promise<void> = async () => undefined,
  ) {}

  /**
   * Runs `work` after `reply` has been sent (or its connection closed: the request was accepted either way), in a
   * later turn of the event loop than the one that wrote the answer.
   */
  schedule(reply: FastifyReply, what: string, work: () => Promise<void>): void {
    const answered = new Promise<void>((resolve) => {
      if (reply.raw.closed || reply.raw.destroyed) resolve();
      else reply.raw.once("close", () => resolve());
    });
    const task: Promise<void> = answered
      .then(() => new Promise<void>((resolve) => setImmediate(resolve)))
      .then(work)
      .finally(this.afterWork)
      .catch((error: unknown) => this.log.error({ err: error, reqId: reply.request.id }, `${what}: the work after the answer failed`))
      .finally(() => this.tasks.delete(task));
    this.tasks.add(task);
  }

  /** Resolves once every scheduled task (and any scheduled meanwhile) has finished. */
  async settled(): Promise<void> {
    while (this.tasks.size > 0) await Promise.all([...this.tasks]);
  }
}
