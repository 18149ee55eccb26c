/** Logs what a background job threw; given by the caller (the server's logger). */
export type JobErrorLog = (error: unknown, job: string) => void;

interface Job {
  name: string;
  timer: NodeJS.Timeout;
  running: Promise<void> | undefined;
}

/**
 * The periodic work `serve` runs beside the web server (support resets, logout sweeps, mail delivery, housekeeping).
 * One place to start and stop it: on shutdown no new run starts and the runs in progress are awaited, so nothing is
 * cut off half-way by our own exit. A run never overlaps the previous run of the same job.
 */
export class BackgroundJobs {
  private readonly jobs: Job[] = [];
  private stopped = false;
  /** Aborted by `stop()`: a long run (housekeeping's batches) checks it and ends early instead of holding up shutdown. */
  private readonly stopping = new AbortController();

  constructor(private readonly onError: JobErrorLog) {}

  /**
   * Runs `fn` every `intervalMs` (first run after one interval). Timers are unref'd: they never keep the process alive.
   * `fn` gets a signal that is aborted when the jobs stop.
   */
  every(name: string, intervalMs: number, fn: (signal: AbortSignal) => Promise<void>): void {
    const job: Job = { name, timer: setInterval(() => this.run(job, fn), intervalMs), running: undefined };
    job.timer.unref();
    this.jobs.push(job);
  }

  /** Runs a job now (unless it is already running or the jobs are stopped); resolves when that run ends. */
  private run(job: Job, fn: (signal: AbortSignal) => Promise<void>): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (job.running) return job.running;
    job.running = fn(this.stopping.signal)
      .catch((error: unknown) => this.onError(error, job.name))
      .finally(() => {
        job.running = undefined;
      });
    return job.running;
  }

  /** No new runs; tells the runs in progress to end early, and waits for them. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.stopping.abort();
    for (const job of this.jobs) clearInterval(job.timer);
    await Promise.all(this.jobs.map((job) => job.running));
  }
}
