/** Thrown by `withinMs` when the work did not finish in time. */
export class TimedOut extends Error {
  constructor(readonly ms: number) {
    super(`no answer within ${ms} ms`);
    this.name = "TimedOut";
  }
}

/**
 * `work`, or a `TimedOut` rejection after `ms`: a probe or a scrape must answer in bounded time even when what it asks
 * (a database that is down, a Redis that does not answer) would hang. The work itself is not cancelled; it settles
 * later and is ignored.
 */
export function withinMs<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new TimedOut(ms)), ms);
    timer.unref();
  });
  // The loser must not become an unhandled rejection.
  work.catch(() => undefined);
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}
