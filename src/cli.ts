#!/usr/bin/env node
import { Command, Option } from "commander";
import { ConfigError, loadConfig, type Config } from "./config.js";
import { migrateToLatest } from "./db/connect.js";
import { openRuntime, type Runtime } from "./runtime.js";
import { buildApp } from "./server.js";
import { issueSetupLink } from "./team/setup.js";
import { createAccountWithAdmin } from "./team/accounts.js";
import { isLoopbackHost } from "./http/routes/dev-mail.js";

function fatal(message: string): never {
  process.stderr.write(`latchkey: ${message}\n`);
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

async function withRuntime<T>(cfg: Config, fn: (runtime: Runtime) => Promise<T>, migrate = true): Promise<T> {
  let runtime: Runtime;
  try {
    runtime = await openRuntime(cfg, { migrate });
  } catch (error) {
    fatal(`cannot open the database${cfg.databaseUrl ? "" : ` in ${cfg.dataDir}`}: ${error instanceof Error ? error.message : String(error)}`);
  }
  try {
    return await fn(runtime);
  } finally {
    await runtime.close();
  }
}

const program = new Command()
  .name("latchkey")
  .description("Self-hosted sign-in and two-factor authentication for team accounts.\nConfiguration comes from the environment: see README.md.")
  .showHelpAfterError();

program
  .command("serve")
  .description("Start the web server (what `npm start` runs). Applies pending migrations first unless --no-migrate.")
  .option("--no-migrate", "do not apply migrations at start (run `latchkey migrate` yourself)")
  .action(async (options: { migrate: boolean }) => {
    const cfg = config();
    const log = (line: string): void => void process.stdout.write(`${line}\n`);
    let runtime: Runtime;
    try {
      runtime = await openRuntime(cfg, {
        migrate: options.migrate,
        onOutboxMessage: (file, message) => {
          const link = /https?:\/\/\S+/.exec(message.text)?.[0];
          log(`mail to ${message.to}: "${message.subject}"${link ? ` — ${link}` : ""} (${file})`);
        },
      });
    } catch (error) {
      fatal(`cannot open the database: ${error instanceof Error ? error.message : String(error)}`);
    }
    const devMail = cfg.smtpUrl === undefined && isLoopbackHost(cfg.host);
    const app = await buildApp(runtime.ctx, { outboxDir: devMail ? runtime.outboxDir : undefined, logger: cfg.logLevel !== "silent" });
    try {
      await app.listen({ port: cfg.port, host: cfg.host });
    } catch (error) {
      await runtime.close();
      fatal(`cannot listen on ${cfg.host}:${cfg.port}: ${error instanceof Error ? error.message : String(error)} (set PORT or HOST)`);
    }
    log(`Latchkey is running at ${cfg.publicUrl.origin} (listening on ${cfg.host}:${cfg.port}, ${runtime.ctx.dialect === "sqlite" ? `SQLite in ${cfg.dataDir}` : "PostgreSQL"}).`);
    if (cfg.smtpUrl === undefined) log(`Mail goes to ${runtime.outboxDir}${devMail ? ` — read it at ${new URL("/dev/mail", cfg.publicUrl).href}` : ""}.`);
    const setup = await issueSetupLink(runtime.ctx);
    if (setup) {
      log("");
      log("No account exists yet. Open this one-time link to create the first account and its admin:");
      log(`  ${setup.url}`);
      log("");
    }
    const stop = async (): Promise<void> => {
      await app.close();
      await runtime.close();
      process.exit(0);
    };
    process.once("SIGINT", () => void stop());
    process.once("SIGTERM", () => void stop());
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
        process.stdout.write(applied.length ? `Applied ${applied.length} migration(s): ${applied.join(", ")}\n` : "The database is up to date.\n");
      },
      false,
    );
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
      process.stdout.write(`Created account "${options.name.trim()}" (${result.value.accountId}).\n`);
      process.stdout.write(`Send this invitation link to ${options.adminEmail.trim()}; it works once, until ${new Date(result.value.expiresAt).toISOString()}:\n`);
      process.stdout.write(`${result.value.invitationUrl}\n`);
    });
  });

program.parseAsync(process.argv).catch((error: unknown) => fatal(error instanceof Error ? error.message : String(error)));
