#!/usr/bin/env node
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { Command, Option } from "commander";
import { ConfigError, loadConfig, type Config } from "./config.js";
import { migrateToLatest } from "./db/connect.js";
import { openRuntime, type Runtime } from "./runtime.js";
import { buildApp } from "./server.js";
import { issueSetupLink } from "./team/setup.js";
import { createAccountWithAdmin } from "./team/accounts.js";
import { createApiToken, listApiTokens, revokeApiToken } from "./auth/api-tokens.js";
import { isLoopbackHost } from "./http/routes/dev-mail.js";
import { connectSso, disconnectSso, showSso, type SsoConnectionView } from "./team/sso.js";
import {
  applyDueSupportResets,
  approveSupportRequest,
  denySupportRequest,
  listSupportRequests,
  showSupportRequest,
  type SupportRequestView,
} from "./team/support-recovery.js";
import { urlTo } from "./paths.js";
import { createClient, deleteClient, listClients } from "./oidc/clients.js";
import { listSigningKeys, rotateSigningKey } from "./oidc/keys.js";
import { escapeForTerminal, quoteForTerminal } from "./terminal.js";
import { BackgroundJobs } from "./background.js";
import type { DeliveryReport } from "./mail/sender.js";
import { Notices } from "./notices.js";
import { exitGracefullyOnSignals } from "./shutdown.js";
import { listenFailure, StartupError, withoutPassword } from "./startup-checks.js";
import { metricsUrl, serveMetricsBeside, type MetricsListener } from "./http/metrics-listener.js";
import { runHousekeeping, totalDeleted, type HousekeepingReport } from "./housekeeping.js";
import { backupSqlite, BackupError } from "./db/backup.js";
import { sqliteFileOf } from "./db/connect.js";

/** How often `serve` applies support resets whose waiting period is over. */
const SUPPORT_SWEEP_INTERVAL_MS = 60_000;

// Everything printed of stored text goes through src/terminal.ts: what people outside the operator wrote (support
// messages, User-Agents, addresses, names) quoted, the rest escaped, so nothing forges a line or drives the terminal.

function fatal(message: string): never {
  // Messages may repeat stored or given text (an id, a provider's error).
  process.stderr.write(`latchkey: ${escapeForTerminal(message)}\n`);
  process.exit(1);
}

function config(): Config {
  try {
    return loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) fatal(`configuration error: ${error.message}`);
    throw error;
  }
}

/** Tries the messages this command queued and not yet tried; they are then off its list. */
async function deliverQueued(runtime: Runtime): Promise<DeliveryReport> {
  const ids = runtime.ctx.queuedMail.ids ?? [];
  runtime.ctx.queuedMail.ids = [];
  return runtime.mailSender.deliver(ids);
}

/**
 * Tries the mail this command queued, once, before it exits (bounded by `mailSendTimeoutSeconds`), and says what
 * became of it: a running server delivers what could not be sent now.
 */
async function deliverOwnMail(runtime: Runtime, to: string): Promise<string> {
  const report = await deliverQueued(runtime);
  if (report.pending === 0) return `${to} was emailed`;
  return `The email to ${to} is queued: the server delivers it${report.lastError ? ` (sending failed just now: ${escapeForTerminal(report.lastError)})` : ""}`;
}

async function withRuntime<T>(cfg: Config, fn: (runtime: Runtime) => Promise<T>, migrate = true): Promise<T> {
  let runtime: Runtime;
  try {
    runtime = await openRuntime(cfg, { migrate });
  } catch (error) {
    fatal(error instanceof StartupError ? error.message : `cannot start: ${error instanceof Error ? error.message : String(error)}`);
  }
  // The ids of the messages this command queues, so it can try them before it exits.
  runtime.ctx.queuedMail.ids = [];
  try {
    const result = await fn(runtime);
    // Mail the command queued without saying so (e.g. `support list` applying a due reset) is tried too.
    const report = await deliverQueued(runtime);
    if (report.pending > 0)
      process.stderr.write(`latchkey: ${report.pending} email(s) could not be sent now; they are queued and the server delivers them.\n`);
    return result;
  } finally {
    await runtime.close();
  }
}

/** The package's version: package.json is one directory up from both src/cli.ts and dist/cli.js. */
function packageVersion(): string {
  const manifest = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string };
  return manifest.version;
}

const program = new Command()
  .name("latchkey")
  .version(packageVersion(), "-V, --version", "print the version and exit")
  .description(
    "Self-hosted sign-in and two-factor authentication for team accounts.\nConfiguration comes from the environment: see README.md.",
  )
  .showHelpAfterError();

program
  .command("serve")
  .description("Start the web server (what `npm start` runs). Applies pending migrations first unless --no-migrate.")
  .option("--no-migrate", "do not apply migrations at start (run `latchkey migrate` yourself)")
  .action(async (options: { migrate: boolean }) => {
    const cfg = config();
    // For a person at a terminal: lines on stderr. Otherwise JSON log lines with the values as fields (src/notices.ts).
    const notices = new Notices({ terminal: process.stderr.isTTY === true, writeText: (text) => void process.stderr.write(text) });
    let runtime: Runtime;
    try {
      // The database and Redis must answer before anything is announced: a failure names which one, in one line.
      runtime = await openRuntime(cfg, {
        migrate: options.migrate,
        onOutboxMessage: (file, message) => {
          const link = /https?:\/\/\S+/.exec(message.text)?.[0];
          notices.tell({
            msg: "mail written to the outbox",
            fields: { to: message.to, subject: message.subject, ...(link ? { link } : {}), file },
            text: [
              `mail to ${quoteForTerminal(message.to)}: ${quoteForTerminal(message.subject)}${link ? ` — ${escapeForTerminal(link)}` : ""} (${escapeForTerminal(file)})`,
            ],
          });
        },
      });
    } catch (error) {
      fatal(error instanceof StartupError ? error.message : `cannot start: ${error instanceof Error ? error.message : String(error)}`);
    }
    const devMail = cfg.smtpUrl === undefined && isLoopbackHost(cfg.host);
    const app = await buildApp(runtime.ctx, { outboxDir: devMail ? runtime.outboxDir : undefined, logger: cfg.logLevel !== "silent" });
    notices.attach(app.log);
    runtime.attachLog(app.log);
    let metrics: MetricsListener | undefined;
    if (cfg.metricsAddr && runtime.metrics) {
      try {
        metrics = await serveMetricsBeside(app, runtime.metrics, cfg.metricsAddr);
      } catch (error) {
        await runtime.close();
        fatal(
          `cannot listen for metrics on ${metricsUrl(cfg.metricsAddr)}: ${error instanceof Error ? error.message : String(error)} (set LATCHKEY_METRICS_ADDR)`,
        );
      }
    }
    try {
      await app.listen({ port: cfg.port, host: cfg.host });
    } catch (error) {
      await metrics?.close();
      await runtime.close();
      fatal(listenFailure(cfg.host, cfg.port, error));
    }
    // From the moment requests are served, SIGTERM/SIGINT drain them (src/shutdown.ts).
    const jobs = new BackgroundJobs((error, job) => app.log.error({ err: error }, `${job} failed`));
    exitGracefullyOnSignals({ app, jobs, runtime, limits: cfg.limits, log: app.log, exit: (code) => process.exit(code) });
    try {
      // The OpenID Provider's first signing key is made now (on the first start), not at the first sign-in. The
      // provider itself is loaded by the first request that needs it (memory, issue 10).
      await app.oidc.prepareKeys();
    } catch (error) {
      await app.close();
      await runtime.close();
      fatal(`cannot prepare the OpenID Provider: ${error instanceof Error ? error.message : String(error)}`);
    }
    const database = cfg.databaseUrl === undefined ? `SQLite in ${cfg.dataDir}` : withoutPassword(cfg.databaseUrl);
    notices.tell({
      msg: "Latchkey is running",
      fields: { url: cfg.publicUrl.origin, listen: `${cfg.host}:${cfg.port}`, database },
      text: [
        `Latchkey is running at ${cfg.publicUrl.origin} (listening on ${cfg.host}:${cfg.port}, ${runtime.ctx.dialect === "sqlite" ? `SQLite in ${cfg.dataDir}` : "PostgreSQL"}).`,
      ],
    });
    if (metrics) {
      const url = metricsUrl(metrics.address);
      notices.tell({ msg: "metrics for Prometheus", fields: { metricsUrl: url }, text: [`Metrics for Prometheus at ${url}.`] });
    }
    if (cfg.smtpUrl === undefined) {
      const devMailUrl = devMail ? urlTo(cfg.publicUrl, "devMail") : undefined;
      notices.tell({
        msg: "mail goes to the outbox",
        fields: { outboxDir: runtime.outboxDir, ...(devMailUrl ? { devMailUrl } : {}) },
        text: [`Mail goes to ${runtime.outboxDir}${devMailUrl ? ` — read it at ${devMailUrl}` : ""}.`],
      });
    }
    const setup = await issueSetupLink(runtime.ctx);
    if (setup) {
      notices.tell({
        msg: "first-run setup link",
        fields: { setupUrl: setup.url },
        text: ["", "No account exists yet. Open this one-time link to create the first account and its admin:", `  ${setup.url}`, ""],
      });
    }
    // Mail: sent right after the request that queued it; this look finds the rest (other instances' and the CLI's
    // messages, retries). On shutdown the sender claims nothing more and finishes the sends in progress; mail queued
    // by requests still draining waits in the queue for the next look of any instance.
    runtime.mailSender.log = app.log;
    jobs.every("mail delivery", cfg.limits.mailPollIntervalMs, () => runtime.mailSender.wake());
    jobs.onStop(() => runtime.mailSender.stop());
    void runtime.mailSender.wake();
    // Approved support resets whose waiting period is over are applied by whichever instance sweeps first
    // (each is claimed atomically).
    jobs.every("support reset sweep", SUPPORT_SWEEP_INTERVAL_MS, async () => {
      const n = await applyDueSupportResets(runtime.ctx);
      if (n > 0) notices.tell({ msg: "applied support resets", fields: { count: n }, text: [`Applied ${n} support reset(s).`] });
    });
    // Applications whose person's Latchkey session ended (signed out elsewhere, removed, expired …) are told within a
    // few seconds; each ended session is claimed by one instance.
    jobs.every("OpenID Provider logout sweep", cfg.limits.oidcLogoutSweepSeconds * 1000, async () => {
      await app.oidc.sweep();
    });
    // Expired rows deleted, on SQLite the WAL checkpointed: by one instance at a time (the lease), about once per
    // interval across the cluster (a run started elsewhere within half an interval makes this one skip).
    const housekeepingMs = cfg.limits.housekeepingIntervalSeconds * 1000;
    jobs.every("housekeeping", housekeepingMs, async (signal) => {
      const report = await runHousekeeping(runtime.ctx, { minGapMs: housekeepingMs / 2, signal });
      // A run that found nothing is routine: a debug line, so the log shows only runs that did something.
      if (report.ran) app.log[totalDeleted(report) > 0 || report.stopped ? "info" : "debug"](housekeepingLogFields(report), "housekeeping");
    });
  });

program
  .command("migrate")
  .description("Apply pending database migrations and exit.")
  .action(async () => {
    const cfg = config();
    await withRuntime(
      cfg,
      async ({ store }) => {
        const result = await migrateToLatest(store.db);
        const applied = result.results?.filter((r) => r.status === "Success").map((r) => r.migrationName) ?? [];
        process.stdout.write(
          applied.length ? `Applied ${applied.length} migration(s): ${applied.join(", ")}\n` : "The database is up to date.\n",
        );
      },
      false,
    );
  });

/** A run's outcome as log fields: rows deleted per table (only tables with deletions), the checkpoint, an early stop. */
function housekeepingLogFields(report: HousekeepingReport & { ran: true }): Record<string, unknown> {
  const deleted = Object.fromEntries(report.tables.filter((t) => t.deleted > 0).map((t) => [t.table, t.deleted]));
  return { deleted, total: totalDeleted(report), checkpoint: report.checkpoint, ...(report.stopped ? { stopped: report.stopped } : {}) };
}

function formatBytes(bytes: number): string {
  if (bytes < 1000) return `${bytes} bytes`;
  const units = ["kB", "MB", "GB", "TB"];
  let value = bytes / 1000;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

program
  .command("housekeeping")
  .description(
    "Delete expired rows now (sessions, sign-ins in progress, links, counters, invitations, SSO and OpenID Provider state; audit events only past LATCHKEY_AUDIT_RETENTION_DAYS) and, on SQLite, checkpoint the WAL. `serve` does this every 10 minutes.",
  )
  .action(async () => {
    await withRuntime(config(), async ({ ctx }) => {
      const started = performance.now();
      const width = 24;
      let headed = false;
      const report = await runHousekeeping(ctx, {
        // Each table's line as it finishes; a table that takes several batches shows its count on the way.
        onProgress: ({ table, deleted, kept, done }) => {
          if (!headed) process.stdout.write("Deleting expired rows:\n");
          headed = true;
          if (done) process.stdout.write(`  ${table.padEnd(width)}${kept ?? `${deleted} deleted`}\n`);
          else process.stderr.write(`  ${table}: ${deleted} deleted so far…\n`);
        },
      });
      if (!report.ran) {
        const lease = report.lease;
        fatal(
          lease
            ? `another housekeeping run holds the lease (${lease.holder}, until ${iso(lease.expiresAt)}); nothing was done. Try again when it has finished.`
            : "could not take the housekeeping lease; nothing was done",
        );
      }
      const checkpoint = report.checkpoint;
      if (checkpoint)
        process.stdout.write(
          `  ${"WAL checkpoint".padEnd(width)}${
            checkpoint.busy
              ? `${checkpoint.checkpointedFrames} of ${checkpoint.walFrames} frames written back; another connection was busy, the next run goes on`
              : "done, WAL truncated"
          }\n`,
        );
      if (report.stopped) fatal(`housekeeping stopped early (${report.stopped === "lease_lost" ? "its lease was lost" : "asked to stop"})`);
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      process.stdout.write(`Deleted ${totalDeleted(report)} expired row(s) in ${seconds} s.\n`);
    });
  });

program
  .command("backup")
  .description(
    "Copy the SQLite database to a file while the server keeps running: a consistent snapshot, readable by its owner only (0600). With PostgreSQL, use pg_dump instead.",
  )
  .addOption(new Option("--to <file>", "the file to write").makeOptionMandatory())
  .option("--force", "replace the file if it exists")
  .action(async (options: { to: string; force?: boolean }) => {
    const cfg = config();
    if (cfg.databaseUrl !== undefined) {
      fatal(
        '`latchkey backup` copies the SQLite database; this installation uses PostgreSQL (DATABASE_URL). Back it up with PostgreSQL\'s own tools, e.g. `pg_dump --format=custom --file=latchkey.dump "$DATABASE_URL"`, and restore with `pg_restore` (see docs/deployment.md).',
      );
    }
    const source = sqliteFileOf(cfg.dataDir);
    const target = resolve(options.to);
    try {
      const result = await backupSqlite({
        source,
        target,
        force: Boolean(options.force),
        onProgress: ({ totalPages, copiedPages }) => {
          if (copiedPages > 0 && copiedPages < totalPages)
            process.stderr.write(`  copied ${copiedPages} of ${totalPages} pages (${Math.floor((copiedPages / totalPages) * 100)}%)…\n`);
        },
      });
      process.stdout.write(
        `Backed up ${source} to ${result.file}: ${formatBytes(result.bytes)} (${result.pages} pages), a consistent snapshot, mode 0600.\n`,
      );
    } catch (error) {
      if (error instanceof BackupError) fatal(`backup failed: ${error.message}`);
      throw error;
    }
  });

const account = program.command("account").description("Manage team accounts.");
account
  .command("create")
  .description("Create a team account and print the invitation URL with which its admin sets a password (last line).")
  .addOption(new Option("--name <name>", "the account's name").makeOptionMandatory())
  .addOption(new Option("--admin-email <email>", "email of the first Account Admin").makeOptionMandatory())
  .action(async (options: { name: string; adminEmail: string }) => {
    const cfg = config();
    await withRuntime(cfg, async ({ ctx }) => {
      const result = await createAccountWithAdmin(ctx, { name: options.name, adminEmail: options.adminEmail });
      if (!result.ok) fatal(result.message);
      process.stdout.write(`Created account ${quoteForTerminal(options.name.trim())} (${result.value.accountId}).\n`);
      process.stdout.write(
        `Send this invitation link to ${options.adminEmail.trim()}; it works once, until ${new Date(result.value.expiresAt).toISOString()}:\n`,
      );
      process.stdout.write(`${result.value.invitationUrl}\n`);
    });
  });

const iso = (ms: number | null): string => (ms === null ? "-" : new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z"));

const apiToken = program
  .command("api-token")
  .description("Tokens for the operator API (/api/v1/admin/…), sent as `Authorization: Bearer <token>`.");
apiToken
  .command("create")
  .description("Create an API token and print it once (last line); only its hash is stored.")
  .addOption(new Option("--name <name>", "what the token is for (named in the audit events of its calls)").makeOptionMandatory())
  .action(async (options: { name: string }) => {
    await withRuntime(config(), async ({ ctx }) => {
      const result = await createApiToken(ctx, { name: options.name });
      if (!result.ok) fatal(result.message);
      process.stdout.write(`Created API token ${quoteForTerminal(result.value.name)} (${result.value.id}).\n`);
      process.stdout.write(
        "Store it now: it is shown only this once. Send it as `Authorization: Bearer <token>` to /api/v1/admin/…; revoke it with `latchkey api-token revoke ID`.\n",
      );
      process.stdout.write(`${result.value.token}\n`);
    });
  });
apiToken
  .command("list")
  .description("Every API token: id, name, created, last used, revoked. Never the token itself (it is not stored).")
  .action(async () => {
    await withRuntime(config(), async ({ ctx }) => {
      const tokens = await listApiTokens(ctx);
      if (tokens.length === 0) {
        process.stdout.write("No API tokens. (`latchkey api-token create --name NAME` makes one.)\n");
        return;
      }
      for (const token of tokens) {
        const used = token.lastUsedAt === null ? "never" : iso(token.lastUsedAt);
        const state = token.revokedAt === null ? "active" : `revoked ${iso(token.revokedAt)}`;
        process.stdout.write(
          `${token.id}  ${quoteForTerminal(token.name)}  created ${iso(token.createdAt)}  last used ${used}  ${state}\n`,
        );
      }
      const active = tokens.filter((token) => token.revokedAt === null).length;
      process.stdout.write(`${tokens.length} token(s), ${active} active.\n`);
    });
  });
apiToken
  .command("revoke")
  .argument("<id>", "token id from `api-token list`")
  .description("Revoke an API token: every request with it is refused from now on (401).")
  .action(async (id: string) => {
    await withRuntime(config(), async ({ ctx }) => {
      const result = await revokeApiToken(ctx, id);
      if (!result.ok) fatal(`no API token ${id} (\`latchkey api-token list\` shows the tokens)`);
      process.stdout.write(
        result.value.alreadyRevoked
          ? `API token ${quoteForTerminal(result.value.name)} (${id}) was already revoked at ${iso(result.value.revokedAt)}.\n`
          : `Revoked API token ${quoteForTerminal(result.value.name)} (${id}); requests with it now get 401.\n`,
      );
    });
  });

function supportLine(r: SupportRequestView): string {
  const when = r.status === "approved" ? `resets ${iso(r.resetsAt)}` : `asked ${iso(r.createdAt)}`;
  return `${r.id}  ${r.status.padEnd(11)}  ${quoteForTerminal(r.email)}  ${when}`;
}

const support = program.command("support").description("The support-recovery queue: people locked out of two-factor authentication.");
support
  .command("list")
  .description("Requests that need a decision (pending) or are waiting out their period (approved).")
  .option("--all", "also unconfirmed, denied, cancelled and completed requests")
  .action(async (options: { all?: boolean }) => {
    await withRuntime(config(), async ({ ctx }) => {
      await applyDueSupportResets(ctx);
      const rows = await listSupportRequests(ctx, { all: Boolean(options.all) });
      if (rows.length === 0) {
        process.stdout.write(
          options.all ? "No support requests.\n" : "No support requests waiting. (`latchkey support list --all` shows past ones.)\n",
        );
        return;
      }
      for (const r of rows) process.stdout.write(`${supportLine(r)}\n`);
      process.stdout.write(
        `${rows.length} request(s). Verify the person out of band, then \`latchkey support approve ID\` or \`deny ID\`.\n`,
      );
    });
  });
support
  .command("show")
  .argument("<id>", "request id from `support list`")
  .description("Everything known about a request and the person behind it, to help verify them.")
  .action(async (id: string) => {
    await withRuntime(config(), async ({ ctx }) => {
      const r = await showSupportRequest(ctx, id);
      if (!r) fatal(`no support request ${id}`);
      const lines = [
        `Request     ${r.id}`,
        `Status      ${r.status}`,
        `Email       ${quoteForTerminal(r.email)}`,
        `Asked       ${iso(r.createdAt)} from ${r.ip === null ? "?" : quoteForTerminal(r.ip)} (${r.userAgent === null ? "?" : quoteForTerminal(r.userAgent)})`,
        `Confirmed   ${iso(r.confirmedAt)}${r.confirmedAt === null ? "  (not yet confirmed from the inbox: cannot be approved)" : ""}`,
        `Decided     ${iso(r.decidedAt)}${r.decidedBy ? ` by ${quoteForTerminal(r.decidedBy)}` : ""}${r.decisionNote ? ` — ${quoteForTerminal(r.decisionNote)}` : ""}`,
        `Resets at   ${iso(r.resetsAt)}`,
        `Completed   ${iso(r.completedAt)}`,
        `Message     ${r.message ? quoteForTerminal(r.message) : "-"}`,
      ];
      if (r.user) {
        lines.push(`Person      ${quoteForTerminal(r.user.name)}, 2FA ${r.user.method}, login since ${iso(r.user.createdAt)}`);
        for (const a of r.user.accounts)
          lines.push(`  account   ${quoteForTerminal(a.name)} (${a.role}), last sign-in ${iso(a.lastSignInAt)}`);
      }
      process.stdout.write(`${lines.join("\n")}\n`);
    });
  });
for (const [name, describe] of [
  ["approve", "Approve a confirmed request: the reset happens after the waiting period unless the owner cancels from their inbox."],
  ["deny", "Deny a request; the person is told by email and nothing changes."],
] as const) {
  support
    .command(name)
    .argument("<id>", "request id from `support list`")
    .description(describe)
    .option("--operator <name>", "who decides (recorded; default: your system user)")
    .option("--note <text>", "why (recorded)")
    .action(async (id: string, options: { operator?: string; note?: string }) => {
      await withRuntime(config(), async (runtime) => {
        const { ctx } = runtime;
        const input = { id, ...(options.operator ? { operator: options.operator } : {}), ...(options.note ? { note: options.note } : {}) };
        if (name === "approve") {
          const result = await approveSupportRequest(ctx, input);
          if (!result.ok) fatal(result.message);
          const mailed = await deliverOwnMail(runtime, quoteForTerminal(result.value.email));
          process.stdout.write(`Approved. ${mailed}; the reset happens at ${iso(result.value.resetsAt)} unless they cancel.\n`);
        } else {
          const result = await denySupportRequest(ctx, input);
          if (!result.ok) fatal(result.message);
          process.stdout.write(`Denied. ${await deliverOwnMail(runtime, quoteForTerminal(result.value.email))}; nothing changed.\n`);
        }
      });
    });
}
support
  .command("apply-due")
  .description(
    "Apply approved resets whose waiting period is over (`serve` does this every minute; use this from cron when no server runs).",
  )
  .action(async () => {
    await withRuntime(config(), async (runtime) => {
      const n = await applyDueSupportResets(runtime.ctx);
      if (n === 0) {
        process.stdout.write("No reset is due.\n");
        return;
      }
      const report = await deliverQueued(runtime);
      const mailed = report.pending === 0 ? "each person was emailed" : `${report.pending} email(s) are queued; the server delivers them`;
      process.stdout.write(`Applied ${n} reset(s); ${mailed}.\n`);
    });
  });

function ssoLines(view: SsoConnectionView): string {
  return [
    // The account's name is chosen by its admins; the rest was checked when the operator connected it.
    `Account       ${quoteForTerminal(view.accountName)} (${view.accountId})`,
    `Issuer        ${escapeForTerminal(view.issuer)}`,
    `Client id     ${escapeForTerminal(view.clientId)}`,
    `Domains       ${escapeForTerminal(view.domains.join(", "))}`,
    `Redirect URI  ${view.redirectUri}`,
    `SSO members   ${view.ssoMembers}`,
    `Connected     ${iso(view.createdAt)}${view.updatedAt !== view.createdAt ? `, changed ${iso(view.updatedAt)}` : ""}`,
  ].join("\n");
}

const sso = program
  .command("sso")
  .description(
    "Single sign-on with OpenID Connect, per account: people of the named email domains sign in through the account's identity provider.",
  );
sso
  .command("connect")
  .description("Connect (or replace) an account's OpenID Connect provider. Register the printed redirect URI at the provider.")
  .addOption(new Option("--account <id>", "the account's id").makeOptionMandatory())
  .addOption(
    new Option(
      "--issuer <url>",
      "the provider's issuer URL (https; its /.well-known/openid-configuration must answer)",
    ).makeOptionMandatory(),
  )
  .addOption(new Option("--client-id <id>", "the client id Latchkey has at the provider").makeOptionMandatory())
  .addOption(new Option("--client-secret <secret>", "the client secret (stored encrypted)").makeOptionMandatory())
  .addOption(
    new Option("--domain <domain>", "an email domain whose people sign in with this provider (repeat for several)")
      .makeOptionMandatory()
      .argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value]),
  )
  .action(async (options: { account: string; issuer: string; clientId: string; clientSecret: string; domain: string[] }) => {
    await withRuntime(config(), async ({ ctx }) => {
      const result = await connectSso(ctx, {
        accountId: options.account,
        issuer: options.issuer,
        clientId: options.clientId,
        clientSecret: options.clientSecret,
        domains: options.domain,
      });
      if (!result.ok) fatal(result.message);
      process.stdout.write(`Connected single sign-on for ${quoteForTerminal(result.value.accountName)}.\n${ssoLines(result.value)}\n`);
      process.stdout.write(`Register this redirect URI at the provider (exactly): ${result.value.redirectUri}\n`);
    });
  });
sso
  .command("show")
  .description("Show an account's single sign-on connection (never the client secret) and the redirect URI to register.")
  .addOption(new Option("--account <id>", "the account's id").makeOptionMandatory())
  .action(async (options: { account: string }) => {
    await withRuntime(config(), async ({ ctx }) => {
      const view = await showSso(ctx, options.account);
      if (!view) fatal(`the account ${options.account} has no single sign-on connection (\`latchkey sso connect --help\`)`);
      process.stdout.write(`${ssoLines(view)}\n`);
    });
  });
sso
  .command("disconnect")
  .description("Disconnect an account's provider: its domains lead nowhere and its SSO members are signed out of the account.")
  .addOption(new Option("--account <id>", "the account's id").makeOptionMandatory())
  .action(async (options: { account: string }) => {
    await withRuntime(config(), async ({ ctx }) => {
      const result = await disconnectSso(ctx, { accountId: options.account });
      if (!result.ok) fatal(result.message);
      process.stdout.write(
        `Disconnected single sign-on from ${options.account}; ${result.value.sessionsEnded} SSO session(s) ended. SSO members stay listed until an admin removes them.\n`,
      );
    });
  });

const repeatable = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

const client = program
  .command("client")
  .description("Applications that sign people in with Latchkey over OpenID Connect (relying parties).");
client
  .command("create")
  .description(
    'Register a client. Prints {"client_id", "client_secret"} as JSON: the secret is shown only now (only its hash is kept); a --public client has none.',
  )
  .addOption(new Option("--name <name>", "the application's name").makeOptionMandatory())
  .addOption(
    new Option(
      "--redirect-uri <uri>",
      "where Latchkey may send the authorization response (repeat for several; https, or http on localhost)",
    )
      .makeOptionMandatory()
      .argParser(repeatable),
  )
  .addOption(
    new Option(
      "--post-logout-redirect-uri <uri>",
      "where Latchkey may send the browser after a logout the client asked for (repeatable)",
    ).argParser(repeatable),
  )
  .addOption(new Option("--backchannel-logout-uri <uri>", "where Latchkey POSTs a logout token when the person's session ends"))
  .option("--public", "a client that cannot keep a secret (single-page or native app): no secret, PKCE only")
  .action(
    async (options: {
      name: string;
      redirectUri: string[];
      postLogoutRedirectUri?: string[];
      backchannelLogoutUri?: string;
      public?: boolean;
    }) => {
      await withRuntime(config(), async ({ ctx }) => {
        const result = await createClient(ctx, {
          name: options.name,
          redirectUris: options.redirectUri,
          postLogoutRedirectUris: options.postLogoutRedirectUri ?? [],
          backchannelLogoutUri: options.backchannelLogoutUri,
          public: Boolean(options.public),
        });
        if (!result.ok) fatal(result.message);
        process.stdout.write(`${JSON.stringify({ client_id: result.value.clientId, client_secret: result.value.clientSecret })}\n`);
      });
    },
  );
client
  .command("list")
  .description("The registered clients (never their secrets).")
  .action(async () => {
    await withRuntime(config(), async ({ ctx }) => {
      const clients = await listClients(ctx);
      if (clients.length === 0) {
        process.stdout.write("No clients. (`latchkey client create --help`)\n");
        return;
      }
      for (const c of clients) {
        // Names and URIs were checked when the operator registered them; escaped all the same.
        process.stdout.write(
          `${c.clientId}  ${quoteForTerminal(c.name)}  ${c.public ? "public" : "confidential"}  created ${iso(c.createdAt)}\n`,
        );
        for (const uri of c.redirectUris) process.stdout.write(`  redirect URI              ${escapeForTerminal(uri)}\n`);
        for (const uri of c.postLogoutRedirectUris) process.stdout.write(`  post-logout redirect URI  ${escapeForTerminal(uri)}\n`);
        if (c.backchannelLogoutUri) process.stdout.write(`  back-channel logout URI   ${escapeForTerminal(c.backchannelLogoutUri)}\n`);
      }
    });
  });
client
  .command("delete")
  .argument("<id>", "client id from `client list`")
  .description("Delete a client: its tokens stop working at once and it can sign nobody in.")
  .action(async (id: string) => {
    await withRuntime(config(), async ({ ctx }) => {
      const result = await deleteClient(ctx, id);
      if (!result.ok) fatal(result.message);
      process.stdout.write(`Deleted client ${id} (${quoteForTerminal(result.value.name)}); its tokens no longer work.\n`);
    });
  });

const keys = program.command("keys").description("The OpenID Provider's signing keys (published at LATCHKEY_PUBLIC_URL/oidc/jwks).");
keys
  .command("rotate")
  .description(
    "Make a new signing key: published at once, signing shortly after; older keys stay published until what they signed has expired.",
  )
  .action(async () => {
    await withRuntime(config(), async ({ ctx }) => {
      const rotated = await rotateSigningKey(ctx);
      process.stdout.write(
        `New signing key ${rotated.kid}: published now, signs from ${iso(rotated.signsFrom)} (running instances pick it up by then).\n`,
      );
      for (const p of rotated.previous)
        process.stdout.write(`Key ${p.kid} stays published until ${iso(p.publishedUntil)}, then is deleted.\n`);
    });
  });
keys
  .command("list")
  .description("The signing keys and when each signs (or signed) from.")
  .action(async () => {
    await withRuntime(config(), async ({ ctx }) => {
      const rows = await listSigningKeys(ctx);
      if (rows.length === 0) process.stdout.write("No signing key yet: the first start of `latchkey serve` makes one.\n");
      for (const r of rows) process.stdout.write(`${r.kid}  ${r.alg}  signs from ${iso(r.signsFrom)}\n`);
    });
  });

program.parseAsync(process.argv).catch((error: unknown) => fatal(error instanceof Error ? error.message : String(error)));
