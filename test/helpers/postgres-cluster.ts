import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync } from "node:fs";
import { promisify } from "node:util";
import { freePort } from "./ports.js";

const run = promisify(execFile);

/** Debian's cluster tools (postgresql-common): a PostgreSQL server of the test's own, to stop and start at will. */
const CREATE_CLUSTER = "/usr/bin/pg_createcluster";
const POSTGRES_VERSIONS = "/usr/lib/postgresql";

/**
 * A second PostgreSQL server (a Debian "cluster") on a free loopback port, owned by one test file: unlike the shared
 * server every other suite uses, it may be stopped (an outage) and started again. Trust authentication on loopback,
 * no data kept: `drop()` removes it.
 */
export interface PostgresCluster {
  /** `postgres://postgres@127.0.0.1:PORT/postgres`. */
  url: string;
  stop(): Promise<void>;
  start(): Promise<void>;
  drop(): Promise<void>;
}

/**
 * Whether a cluster can be made here: Debian's tools, a PostgreSQL installed under /usr/lib/postgresql, and root
 * (pg_createcluster makes its files as the postgres user). Where not, the tests that need one are skipped with a note;
 * in CI (CI=true) that is a failure instead.
 */
export function postgresClustersAvailable(): boolean {
  const available = existsSync(CREATE_CLUSTER) && installedVersion() !== undefined && process.getuid?.() === 0;
  if (!available && process.env["CI"]) throw new Error(`CI needs ${CREATE_CLUSTER} (postgresql-common) and root to run the outage tests`);
  if (!available) console.warn("pg_createcluster (as root) is not available: skipping the tests that stop PostgreSQL.");
  return available;
}

function installedVersion(): string | undefined {
  if (!existsSync(POSTGRES_VERSIONS)) return undefined;
  return readdirSync(POSTGRES_VERSIONS)
    .filter((name) => /^\d+$/.test(name))
    .sort((a, b) => Number(b) - Number(a))[0];
}

export async function createPostgresCluster(): Promise<PostgresCluster> {
  const version = installedVersion();
  if (version === undefined) throw new Error("no PostgreSQL under /usr/lib/postgresql");
  const name = `latchkey_test_${randomBytes(4).toString("hex")}`;
  const port = await freePort();
  await run(CREATE_CLUSTER, [version, name, "-p", String(port), "--start", "--", "--auth=trust"]);
  const ctl = (action: string, ...extra: string[]): Promise<unknown> => run("/usr/bin/pg_ctlcluster", [version, name, action, ...extra]);
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    stop: async () => void (await ctl("stop", "-m", "fast")),
    start: async () => void (await ctl("start")),
    drop: async () => void (await run("/usr/bin/pg_dropcluster", [version, name, "--stop"])),
  };
}
