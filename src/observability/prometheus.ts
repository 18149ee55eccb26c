import { collectDefaultMetrics, Counter, Gauge, Registry, type Metric } from "prom-client";
import type { ErrorCode } from "../errors.js";
import {
  mailEventKinds,
  type MailEventKind,
  type Metrics,
  type RequestRecorder,
  type SignInMetricMethod,
  type SignInMetricResult,
} from "./metrics.js";
import { withinMs } from "./time-limit.js";

/**
 * The Prometheus side of `Metrics` (prom-client, loaded only when `LATCHKEY_METRICS_ADDR` is set). Everything is on a
 * registry of its own, not prom-client's global one, so several apps in one process (tests) never share a series.
 */

/** Every metric's name starts with this, the default process metrics' too (`latchkey_process_cpu_seconds_total` …). */
export const METRIC_PREFIX = "latchkey_";

/**
 * Upper bounds of the request duration buckets, in seconds: from half a millisecond (a session check takes well under
 * one) to 10 s (past any sane answer; slower ones land in +Inf).
 */
const REQUEST_DURATION_BUCKETS_SECONDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const;

/** One series of the request histogram: a route pattern, a method and a status, with its bucket counts. */
class DurationCell {
  readonly counts = new Float64Array(REQUEST_DURATION_BUCKETS_SECONDS.length);
  sum = 0;
  count = 0;
  constructor(readonly labels: { route: string; method: string; status: string }) {}

  observe(seconds: number): void {
    this.sum += seconds;
    this.count += 1;
    for (let i = 0; i < REQUEST_DURATION_BUCKETS_SECONDS.length; i++) {
      if (seconds <= REQUEST_DURATION_BUCKETS_SECONDS[i]!) {
        this.counts[i]! += 1;
        return;
      }
    }
  }
}

/**
 * The request duration histogram, as a prom-client custom metric. prom-client's own Histogram builds and hashes a
 * label object on every observation; here each route's recorder finds its series in two property look-ups (method,
 * then status) and adds to plain numbers, so the hot path (`/api/v1/verify`, `/api/v1/session`) allocates nothing.
 * The exposition is built at scrape time.
 */
class RequestDurations {
  readonly name = `${METRIC_PREFIX}http_request_duration_seconds`;
  readonly help = "Time to answer an HTTP request, by route pattern (not the URL), method and status code.";
  readonly type = "histogram";
  readonly aggregator = "sum";
  private readonly cells: DurationCell[] = [];

  recorder(route: string): RequestRecorder {
    const byMethod: Record<string, Record<number, DurationCell>> = Object.create(null) as Record<string, Record<number, DurationCell>>;
    return (method, statusCode, seconds) => {
      const byStatus = (byMethod[method] ??= Object.create(null) as Record<number, DurationCell>);
      let cell = byStatus[statusCode];
      if (cell === undefined) {
        cell = new DurationCell({ route, method, status: String(statusCode) });
        byStatus[statusCode] = cell;
        this.cells.push(cell);
      }
      cell.observe(seconds);
    };
  }

  get(): { name: string; help: string; type: string; aggregator: string; values: Array<Record<string, unknown>> } {
    const bucket = `${this.name}_bucket`;
    const values: Array<Record<string, unknown>> = [];
    for (const cell of this.cells) {
      let cumulative = 0;
      REQUEST_DURATION_BUCKETS_SECONDS.forEach((le, i) => {
        cumulative += cell.counts[i]!;
        values.push({ metricName: bucket, labels: { ...cell.labels, le }, value: cumulative });
      });
      values.push({ metricName: bucket, labels: { ...cell.labels, le: "+Inf" }, value: cell.count });
      values.push({ metricName: `${this.name}_sum`, labels: cell.labels, value: cell.sum });
      values.push({ metricName: `${this.name}_count`, labels: cell.labels, value: cell.count });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {
    this.cells.length = 0;
  }
}

/** The text exposition of a scrape. */
export interface Scrape {
  contentType: string;
  body: string;
}

export class PrometheusMetrics implements Metrics {
  readonly enabled = true;
  private readonly registry = new Registry();
  private readonly durations = new RequestDurations();
  private readonly signIns: Counter<"method" | "result">;
  private readonly codeFailures: Counter<"method" | "reason">;
  private readonly codeLocks: Counter;
  private readonly throttles: Counter<"code" | "route">;
  private readonly mail: Counter<"event">;

  /** @param gaugeTimeoutMs how long a scrape waits for a scrape-time value (`gaugeOnScrape`) before reporting NaN. */
  constructor(private readonly gaugeTimeoutMs: number) {
    const registers = [this.registry];
    this.registry.registerMetric(this.durations as unknown as Metric);
    this.signIns = new Counter({
      name: `${METRIC_PREFIX}sign_ins_total`,
      help: "Sign-in steps by method (password, email_link, auth_app, recovery_code, sso, oidc) and result (success or the error code).",
      labelNames: ["method", "result"],
      registers,
    });
    this.codeFailures = new Counter({
      name: `${METRIC_PREFIX}second_factor_failures_total`,
      help: "Wrong second-factor codes at sign-in, by method (auth_app, recovery_code) and reason (invalid_code, code_reused).",
      labelNames: ["method", "reason"],
      registers,
    });
    this.codeLocks = new Counter({
      name: `${METRIC_PREFIX}second_factor_locks_total`,
      help: "Times code entry was locked for a person after too many wrong codes.",
      registers,
    });
    this.throttles = new Counter({
      name: `${METRIC_PREFIX}throttle_refusals_total`,
      help: "Requests refused by a throttle (429 rate_limited or too_many_attempts), by code and route pattern.",
      labelNames: ["code", "route"],
      registers,
    });
    this.mail = new Counter({
      name: `${METRIC_PREFIX}mail_messages_total`,
      help: "Mail delivery events: messages queued, sent, failed for good, and put back for a retry.",
      labelNames: ["event"],
      registers,
    });
    // Every event shows from the first scrape, at 0, so rate() and alerts work before the first message.
    for (const event of mailEventKinds) this.mail.inc({ event }, 0);
    collectDefaultMetrics({ register: this.registry, prefix: METRIC_PREFIX });
  }

  signIn(method: SignInMetricMethod, result: SignInMetricResult): void {
    this.signIns.inc({ method, result });
  }

  secondFactorFailure(method: "auth_app" | "recovery_code", reason: "invalid_code" | "code_reused"): void {
    this.codeFailures.inc({ method, reason });
  }

  secondFactorLock(): void {
    this.codeLocks.inc();
  }

  throttled(code: Extract<ErrorCode, "rate_limited" | "too_many_attempts">, route: string): void {
    this.throttles.inc({ code, route });
  }

  readonly mailEvent = (kind: MailEventKind): void => {
    this.mail.inc({ event: kind });
  };

  requestRecorder(route: string): RequestRecorder {
    return this.durations.recorder(route);
  }

  /**
   * A gauge whose value is read when Prometheus scrapes (a count query, the pool's numbers), not kept up to date on
   * every change. A read that fails or takes longer than the time limit reports NaN: unknown, never a stale number.
   */
  gaugeOnScrape(name: string, help: string, read: () => Promise<number> | number): void {
    const timeoutMs = this.gaugeTimeoutMs;
    const gauge: Gauge = new Gauge({
      name: `${METRIC_PREFIX}${name}`,
      help,
      registers: [this.registry],
      async collect() {
        try {
          gauge.set(await withinMs(Promise.resolve().then(read), timeoutMs));
        } catch {
          gauge.set(Number.NaN);
        }
      },
    });
  }

  /** Every metric in the Prometheus text format (version 0.0.4). */
  async scrape(): Promise<Scrape> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
