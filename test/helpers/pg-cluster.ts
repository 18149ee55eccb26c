import { execFileSync } from "node:child_process";
import { readdirSync } from "node:fs";
import pg from "pg";
import { freePort } from "./ports.js";

/** Debian's PostgreSQL version on this machine (the folder under /etc/postgresql). */
function postgresVersion(): string {
  const version = readdirSync("/etc/postgresql")[0];
  if (!version) throw new Error("no PostgreSQL under /etc/postgresql");
  return version;
}

function run(command: string, args: string[]): string {
  return execFileSync(command, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 60_000 });
}

/**
 * A PostgreSQL cluster of a test's own (Debian's pg_createcluster, trust auth on loopback), which the test may stop
 * and start — a real server restart, without touching the shared cluster the other suites use.
 */
export class PgCluster {
  private constructor(
    readonly name: string,
    readonly port: number,
    private readonly version: string,
  ) {}

  static async create(prefix = "latchkey_test"): Promise<PgCluster> {
    const version = postgresVersion();
    const name = `${prefix}_${process.pid}_${Date.now() % 100000}`;
    const port = await freePort();
    run("pg_createcluster", [version, name, "-p", String(port), "--", "--auth=trust"]);
    const cluster = new PgCluster(name, port, version);
    await cluster.start();
    return cluster;
  }

  url(database = "postgres"): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${database}`;
  }

  async start(): Promise<void> {
    run("pg_ctlcluster", ["--skip-systemctl-redirect", this.version, this.name, "start"]);
    for (let i = 0; i < 100; i++) {
      const client = new pg.Client({ connectionString: this.url() });
      try {
        await client.connect();
        await client.end();
        return;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    throw new Error(`cluster ${this.name} did not accept connections`);
  }

  /** Stops the server as an operator's restart does (fast: open connections are ended). */
  async stop(): Promise<void> {
    run("pg_ctlcluster", ["--skip-systemctl-redirect", this.version, this.name, "stop", "-m", "fast"]);
  }

  async createDatabase(name: string): Promise<string> {
    const client = new pg.Client({ connectionString: this.url() });
    await client.connect();
    await client.query(`create database ${name}`);
    await client.end();
    return this.url(name);
  }

  async drop(): Promise<void> {
    run("pg_dropcluster", ["--stop", this.version, this.name]);
  }
}
