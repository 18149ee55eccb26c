import { afterEach, describe, expect, it, vi } from "vitest";
import { BackgroundJobs } from "../src/background.js";

describe("background jobs", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("stop() aborts the signal a run in progress was given, and waits for that run to end", async () => {
    vi.useFakeTimers();
    const jobs = new BackgroundJobs(() => undefined);
    let seen: AbortSignal | undefined;
    let finished = false;
    jobs.every("long", 1000, async (signal) => {
      seen = signal;
      await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve()));
      finished = true;
    });
    vi.advanceTimersByTime(1000);
    expect(seen?.aborted).toBe(false);
    await jobs.stop();
    expect(seen?.aborted).toBe(true);
    expect(finished).toBe(true);
  });
});
