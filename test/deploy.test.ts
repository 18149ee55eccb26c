import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { defaultLimits, loadConfig } from "../src/config.js";
import { routes } from "../src/paths.js";
import { freePort } from "./helpers/ports.js";
import { startServe } from "./helpers/serve-process.js";

const ROOT = process.cwd();
const UNIT = join(ROOT, "deploy/latchkey.service");
const ENV_TEMPLATE = join(ROOT, "deploy/latchkey.env");
const DOCKERFILE = join(ROOT, "deploy/Dockerfile");

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "latchkey-deploy-"));
  dirs.push(dir);
  return dir;
}

/** `KEY=value` settings of a unit file, by key (a key may repeat). */
function unitSettings(text: string): Map<string, string[]> {
  const settings = new Map<string, string[]>();
  for (const line of text.split("\n")) {
    const match = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (match?.[1] === undefined) continue;
    settings.set(match[1], [...(settings.get(match[1]) ?? []), match[2] ?? ""]);
  }
  return settings;
}

/** systemd's time span ("20s", "1min 30s", "90") in seconds. */
function seconds(span: string): number {
  let total = 0;
  for (const [, value, unit] of span.matchAll(/(\d+)\s*(min|s|ms)?/g)) {
    total += Number(value) * (unit === "min" ? 60 : unit === "ms" ? 0.001 : 1);
  }
  return total;
}

/**
 * Whether systemd-analyze is here (Debian's `systemd` package; .ci/run installs it). In CI a missing one fails the
 * run; elsewhere its tests are skipped with a note.
 */
function systemdAnalyzeAvailable(): boolean {
  if (spawnSync("systemd-analyze", ["--version"], { stdio: "ignore" }).status === 0) return true;
  if (process.env["CI"]) throw new Error("systemd-analyze is required in CI (apt-get install systemd): .ci/run installs it");
  console.warn("systemd-analyze not found (apt-get install systemd): skipping the checks of deploy/latchkey.service by systemd.");
  return false;
}

/**
 * The unit as shipped; where Node.js is not at /usr/bin/node (the unit's ExecStart, as Debian's and NodeSource's
 * packages install it) a copy pointed at this machine's node, since `verify` checks that the command exists.
 */
function unitToVerify(): string {
  if (existsSync("/usr/bin/node")) return UNIT;
  console.warn(`/usr/bin/node does not exist here: verifying deploy/latchkey.service with ExecStart=${process.execPath}`);
  const copy = join(tempDir(), "latchkey.service");
  writeFileSync(copy, readFileSync(UNIT, "utf8").replace("ExecStart=/usr/bin/node ", `ExecStart=${process.execPath} `));
  return copy;
}

describe("deploy/latchkey.service (systemd)", () => {
  const unit = readFileSync(UNIT, "utf8");
  const settings = unitSettings(unit);
  const one = (key: string): string | undefined => settings.get(key)?.at(-1);

  it("passes `systemd-analyze verify` without an error or a warning", (context) => {
    if (!systemdAnalyzeAvailable()) return context.skip();
    const run = spawnSync("systemd-analyze", ["verify", unitToVerify()], { encoding: "utf8" });
    expect({ status: run.status, output: `${run.stdout}${run.stderr}` }).toEqual({ status: 0, output: "" });
  });

  it("is hardened: `systemd-analyze security` rates its exposure 2.0 or lower (OK)", (context) => {
    if (!systemdAnalyzeAvailable()) return context.skip();
    const run = spawnSync("systemd-analyze", ["security", "--offline=yes", unitToVerify()], { encoding: "utf8" });
    const exposure = /Overall exposure level for latchkey\.service: (\d+(?:\.\d+)?)/.exec(`${run.stdout}${run.stderr}`)?.[1];
    expect(exposure, run.stdout + run.stderr).toBeDefined();
    expect(Number(exposure)).toBeLessThanOrEqual(2);
  });

  it("runs `latchkey serve` as a dynamic user with its state directory as the data directory, configured by an environment file", () => {
    expect(one("Type")).toBe("simple");
    expect(one("ExecStart")).toMatch(/^\/usr\/bin\/node \/opt\/latchkey\/dist\/cli\.js serve$/);
    expect(one("DynamicUser")).toBe("yes");
    expect(one("StateDirectory")).toBe("latchkey");
    expect(settings.get("Environment")).toContain(`LATCHKEY_DATA_DIR=/var/lib/${one("StateDirectory")}`);
    expect(one("EnvironmentFile")).toBe("/etc/latchkey/latchkey.env");
  });

  it("stops with SIGTERM and gives the graceful shutdown more time than LATCHKEY_SHUTDOWN_SECONDS before SIGKILL", () => {
    expect(one("KillSignal")).toBe("SIGTERM");
    const template = readFileSync(ENV_TEMPLATE, "utf8");
    const suggested = Number(/^#?LATCHKEY_SHUTDOWN_SECONDS=(\d+)$/m.exec(template)?.[1]);
    expect(suggested).toBe(defaultLimits.shutdownSeconds);
    expect(seconds(one("TimeoutStopSec") ?? "")).toBeGreaterThan(defaultLimits.shutdownSeconds);
  });

  it("has the hardening settings asked for", () => {
    for (const [key, value] of [
      ["NoNewPrivileges", "yes"],
      ["ProtectSystem", "strict"],
      ["ProtectHome", "yes"],
      ["PrivateTmp", "yes"],
      ["PrivateDevices", "yes"],
      ["RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"],
      ["RestrictNamespaces", "yes"],
      ["CapabilityBoundingSet", ""],
      ["SystemCallFilter", "@system-service"],
    ])
      expect(one(key ?? ""), key).toBe(value);
  });

  it("its environment file template names only documented variables, and its settings are a valid configuration", () => {
    const template = readFileSync(ENV_TEMPLATE, "utf8");
    const readme = readFileSync(join(ROOT, "README.md"), "utf8");
    const named = [...template.matchAll(/^#?([A-Z][A-Z0-9_]+)=/gm)].map((m) => m[1] ?? "");
    expect(named.length).toBeGreaterThan(5);
    for (const variable of named) expect(readme.includes(`| \`${variable}\` |`), `${variable} in the README's table`).toBe(true);
    const active = Object.fromEntries(
      template
        .split("\n")
        .map((line) => /^([A-Z][A-Z0-9_]+)=(.*)$/.exec(line))
        .filter((m): m is RegExpExecArray => m !== null)
        .map((m) => [m[1] ?? "", m[2] ?? ""]),
    );
    expect(() => loadConfig({ ...active, LATCHKEY_DATA_DIR: tempDir() })).not.toThrow();
  });
});

/** The Dockerfile's instructions: continuation lines joined, comments dropped. */
function dockerInstructions(text: string): Array<{ keyword: string; args: string }> {
  return text
    .replace(/\\\n/g, " ")
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"))
    .map((line) => {
      const [keyword = "", ...rest] = line.split(/\s+/);
      return { keyword: keyword.toUpperCase(), args: rest.join(" ") };
    });
}

/** A .dockerignore pattern as a regular expression over context-relative paths (Go's filepath.Match, plus `**`). */
function ignorePattern(pattern: string): RegExp {
  const source = pattern
    .replace(/^\/+|\/+$/g, "")
    .split("")
    .map((c, i, all) => (c === "*" ? (all[i + 1] === "*" || all[i - 1] === "*" ? "*" : "[^/]*") : c.replace(/[.+?^${}()|[\]\\]/g, "\\$&")))
    .join("")
    .replace(/\*\*/g, ".*");
  // A pattern excludes the path it names and everything under it.
  return new RegExp(`^${source}(/.*)?$`);
}

describe("deploy/Dockerfile (not built here: no container runtime on these machines)", () => {
  const dockerfile = readFileSync(DOCKERFILE, "utf8");
  const instructions = dockerInstructions(dockerfile);
  const packageJson = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { scripts: Record<string, string> };

  it("says next to the Dockerfile that it is not built here", () => {
    expect(dockerfile).toMatch(/no container runtime/);
  });

  it("is multi-stage on node:20-slim, with npm ci and the build", () => {
    expect(instructions.filter((i) => i.keyword === "FROM").map((i) => i.args)).toEqual(["node:20-slim AS build", "node:20-slim"]);
    const runs = instructions.filter((i) => i.keyword === "RUN").map((i) => i.args);
    expect(runs.some((r) => /\bnpm ci\b/.test(r))).toBe(true);
    expect(runs.some((r) => /\bnpm run build\b/.test(r))).toBe(true);
  });

  it("every COPY source from the build context exists, and .dockerignore keeps none of its files out", () => {
    const ignored = readFileSync(join(ROOT, ".dockerignore"), "utf8")
      .split("\n")
      .map((line) => line.trim())
      .filter((line) => line !== "" && !line.startsWith("#"))
      .map(ignorePattern);
    const copies = instructions.filter((i) => i.keyword === "COPY" && !i.args.includes("--from="));
    expect(copies.length).toBeGreaterThan(0);
    for (const copy of copies) {
      const sources = copy.args
        .split(/\s+/)
        .filter((a) => !a.startsWith("--"))
        .slice(0, -1);
      for (const source of sources) {
        expect(existsSync(join(ROOT, source)), `COPY ${source}`).toBe(true);
        const files = execFileSync("git", ["ls-files", "--", source], { cwd: ROOT, encoding: "utf8" }).split("\n").filter(Boolean);
        expect(files.length, `${source} is in git`).toBeGreaterThan(0);
        for (const file of files)
          expect(
            ignored.some((p) => p.test(file)),
            `${file} excluded by .dockerignore`,
          ).toBe(false);
      }
    }
    // The local state and secrets never reach the build context.
    for (const kept of ["data/latchkey.db", "data/secret.key", ".env", "node_modules/x", ".git/config"])
      expect(
        ignored.some((p) => p.test(kept)),
        kept,
      ).toBe(true);
  });

  it("every npm script it runs exists in package.json", () => {
    const scripts = [...dockerfile.matchAll(/\bnpm run ([\w:-]+)/g)].map((m) => m[1] ?? "");
    expect(scripts).toContain("build");
    for (const script of scripts) expect(packageJson.scripts[script], `npm run ${script}`).toBeDefined();
  });

  it("runs the built CLI's serve, from what the build stage compiles", () => {
    const build = JSON.parse(readFileSync(join(ROOT, "tsconfig.build.json"), "utf8")) as {
      compilerOptions: { outDir: string; rootDir: string };
    };
    expect(build.compilerOptions).toMatchObject({ outDir: "dist", rootDir: "src" });
    expect(existsSync(join(ROOT, "src/cli.ts"))).toBe(true);
    const entrypoint = instructions.find((i) => i.keyword === "ENTRYPOINT")?.args;
    expect(JSON.parse(entrypoint ?? "[]")).toEqual(["node", "/app/dist/cli.js"]);
    expect(JSON.parse(instructions.find((i) => i.keyword === "CMD")?.args ?? "[]")).toEqual(["serve"]);
    expect(instructions.some((i) => i.keyword === "COPY" && i.args === "--from=build /app/dist ./dist")).toBe(true);
  });

  it("runs as a non-root user, keeps its state on the /data volume, stops with SIGTERM and checks /healthz", () => {
    const user = instructions.filter((i) => i.keyword === "USER").at(-1)?.args;
    expect(user).toBeDefined();
    expect(["root", "0"]).not.toContain(user);
    expect(instructions.find((i) => i.keyword === "ENV")?.args).toContain("LATCHKEY_DATA_DIR=/data");
    expect(instructions.find((i) => i.keyword === "VOLUME")?.args).toBe('["/data"]');
    expect(instructions.find((i) => i.keyword === "STOPSIGNAL")?.args).toBe("SIGTERM");
    const healthcheck = instructions.find((i) => i.keyword === "HEALTHCHECK")?.args ?? "";
    expect(healthcheck).toContain(`'${routes.healthz}'`);
  });

  it("its health check command, run as the image would, passes against a running server and fails without one", async () => {
    const healthcheck = instructions.find((i) => i.keyword === "HEALTHCHECK")?.args ?? "";
    const command = JSON.parse(healthcheck.slice(healthcheck.indexOf("CMD ") + 4)) as string[];
    expect(command[0]).toBe("node");
    const check = (port: number): number | null =>
      spawnSync(process.execPath, command.slice(1), { env: { PATH: process.env["PATH"] ?? "", PORT: String(port) }, timeout: 10_000 })
        .status;
    const serve = await startServe();
    try {
      expect(check(serve.port)).toBe(0);
    } finally {
      await serve.cleanup();
    }
    expect(check(await freePort())).toBe(1);
  });
});
