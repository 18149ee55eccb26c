import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../src/config.js";

const KEY = randomBytes(32).toString("base64");
const dirs: string[] = [];

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "latchkey-config-"));
  dirs.push(dir);
  return dir;
}

afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A valid environment (with its own data dir and key, so nothing is written to ./data) plus overrides. */
function env(overrides: Record<string, string> = {}): Record<string, string> {
  return { LATCHKEY_DATA_DIR: tempDir(), LATCHKEY_SECRET_KEY: KEY, ...overrides };
}

function configErrorOf(environment: Record<string, string>): ConfigError {
  try {
    loadConfig(environment);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error("expected a ConfigError, but the configuration loaded");
}

describe("configuration from the environment", () => {
  it.each([
    ["PORT", "abc"],
    ["PORT", "70000"],
    ["PORT", "0"],
    ["PORT", "-1"],
    ["PORT", "3000.5"],
    ["LATCHKEY_PUBLIC_URL", "ftp://x"],
    ["LATCHKEY_PUBLIC_URL", "not a url"],
    ["LATCHKEY_PUBLIC_URL", "https://auth.example.com/latchkey"],
    ["LATCHKEY_PUBLIC_URL", "https://auth.example.com/?x=1"],
    ["DATABASE_URL", "mysql://x"],
    ["DATABASE_URL", "nonsense"],
    ["REDIS_URL", "http://x"],
    ["SMTP_URL", "http://x"],
    ["MAIL_FROM", "nonsense"],
    ["MAIL_FROM", "Latchkey <not an address>"],
    ["LATCHKEY_SECRET_KEY", randomBytes(16).toString("base64")],
    ["LATCHKEY_SECRET_KEY", "not base64 at all!"],
    ["LOG_LEVEL", "loud"],
    ["LATCHKEY_SHUTDOWN_SECONDS", "0"],
    ["LATCHKEY_SHUTDOWN_SECONDS", "601"],
    ["LATCHKEY_SHUTDOWN_SECONDS", "2.5"],
    ["LATCHKEY_SHUTDOWN_SECONDS", "ten"],
    ["LATCHKEY_RETURN_ORIGINS", "app.example.com"],
    ["LATCHKEY_RETURN_ORIGINS", "https://app.example.com/path"],
    ["LATCHKEY_RETURN_ORIGINS", "https://app.example.com/?x=1"],
    ["LATCHKEY_RETURN_ORIGINS", "https://app.example.com,ftp://files.example.com"],
    ["LATCHKEY_RETURN_ORIGINS", "https://*.example.com"],
    ["LATCHKEY_RETURN_ORIGINS", "https://someone@app.example.com"],
    ["LATCHKEY_AUDIT_RETENTION_DAYS", "0"],
    ["LATCHKEY_AUDIT_RETENTION_DAYS", "-30"],
    ["LATCHKEY_AUDIT_RETENTION_DAYS", "30.5"],
    ["LATCHKEY_AUDIT_RETENTION_DAYS", "forever"],
    ["LATCHKEY_AUDIT_RETENTION_DAYS", "36501"],
    ["LATCHKEY_PASSWORD_RESET_TTL_SECONDS", "299"],
    ["LATCHKEY_PASSWORD_RESET_TTL_SECONDS", "86401"],
    ["LATCHKEY_PASSWORD_RESET_TTL_SECONDS", "30m"],
  ])("%s=%s is refused with a ConfigError that names the variable", (variable, value) => {
    const error = configErrorOf(env({ [variable]: value }));
    expect(error.variable).toBe(variable);
    expect(error.message.startsWith(`${variable}: `)).toBe(true);
    expect(error.message).not.toContain("\n");
  });

  it("a bad PORT says what it expects", () => {
    expect(configErrorOf(env({ PORT: "abc" })).message).toMatch(/PORT: expected a whole number from 1 to 65535/);
  });

  it("LATCHKEY_SHUTDOWN_SECONDS: 10 by default, 1 to 600 accepted", () => {
    expect(loadConfig(env()).limits.shutdownSeconds).toBe(10);
    expect(loadConfig(env({ LATCHKEY_SHUTDOWN_SECONDS: "1" })).limits.shutdownSeconds).toBe(1);
    expect(loadConfig(env({ LATCHKEY_SHUTDOWN_SECONDS: "600" })).limits.shutdownSeconds).toBe(600);
    expect(configErrorOf(env({ LATCHKEY_SHUTDOWN_SECONDS: "0" })).message).toBe(
      "LATCHKEY_SHUTDOWN_SECONDS: expected a whole number from 1 to 600, got 0",
    );
  });

  it("a DATABASE_URL or REDIS_URL that does not parse is refused without repeating its password", () => {
    for (const variable of ["DATABASE_URL", "REDIS_URL"]) {
      const message = configErrorOf(env({ [variable]: "postgres://latchkey:s3cr/et@[db" })).message;
      expect(message).toContain("latchkey:***@");
      expect(message).not.toContain("s3cr");
    }
  });

  it("a short secret key says it needs 32 bytes in base64", () => {
    expect(configErrorOf(env({ LATCHKEY_SECRET_KEY: randomBytes(16).toString("base64") })).message).toMatch(/32 random bytes in base64/);
  });

  it("defaults to port 3000 on 127.0.0.1 with the public URL http://localhost:3000", () => {
    const config = loadConfig(env());
    expect(config.port).toBe(3000);
    expect(config.host).toBe("127.0.0.1");
    expect(config.publicUrl.href).toBe("http://localhost:3000/");
    expect(config.databaseUrl).toBeUndefined();
    expect(config.redisUrl).toBeUndefined();
    expect(config.smtpUrl).toBeUndefined();
    expect(config.secureCookies).toBe(false);
    expect(config.mailFrom).toBe("Latchkey <no-reply@localhost>");
  });

  it("LATCHKEY_PASSWORD_RESET_TTL_SECONDS: 30 minutes by default, 5 minutes to 24 hours when set", () => {
    expect(loadConfig(env()).limits.passwordResetTtlSeconds).toBe(30 * 60);
    expect(loadConfig(env({ LATCHKEY_PASSWORD_RESET_TTL_SECONDS: "300" })).limits.passwordResetTtlSeconds).toBe(300);
    expect(loadConfig(env({ LATCHKEY_PASSWORD_RESET_TTL_SECONDS: "86400" })).limits.passwordResetTtlSeconds).toBe(86400);
    expect(configErrorOf(env({ LATCHKEY_PASSWORD_RESET_TTL_SECONDS: "60" })).message).toMatch(
      /LATCHKEY_PASSWORD_RESET_TTL_SECONDS: expected a whole number from 300 to 86400/,
    );
  });

  it("the default public URL follows PORT", () => {
    expect(loadConfig(env({ PORT: "4123" })).publicUrl.origin).toBe("http://localhost:4123");
  });

  it("accepts valid values for every variable", () => {
    const config = loadConfig(
      env({
        PORT: "8080",
        HOST: "0.0.0.0",
        LATCHKEY_PUBLIC_URL: "https://auth.example.com",
        DATABASE_URL: "postgres://latchkey@db.internal:5432/latchkey",
        REDIS_URL: "redis://cache.internal:6379/0",
        SMTP_URL: "smtps://user:pass@smtp.example.com:465",
        MAIL_FROM: "Acme Sign-in <sign-in@example.com>",
      }),
    );
    expect(config).toMatchObject({
      port: 8080,
      host: "0.0.0.0",
      databaseUrl: "postgres://latchkey@db.internal:5432/latchkey",
      redisUrl: "redis://cache.internal:6379/0",
      mailFrom: "Acme Sign-in <sign-in@example.com>",
    });
    expect(config.publicUrl.origin).toBe("https://auth.example.com");
    expect(config.secretKey.equals(Buffer.from(KEY, "base64"))).toBe(true);
  });

  it("LATCHKEY_RETURN_ORIGINS: none by default; a comma-separated list is kept as origins", () => {
    expect(loadConfig(env()).returnOrigins).toEqual([]);
    expect(
      loadConfig(env({ LATCHKEY_RETURN_ORIGINS: " https://App.Example.com/ , http://localhost:4000,, https://admin.example.com:443" }))
        .returnOrigins,
    ).toEqual(["https://app.example.com", "http://localhost:4000", "https://admin.example.com"]);
  });

  it("a bad LATCHKEY_RETURN_ORIGINS entry says what an origin looks like", () => {
    expect(configErrorOf(env({ LATCHKEY_RETURN_ORIGINS: "https://app.example.com/x" })).message).toMatch(
      /^LATCHKEY_RETURN_ORIGINS: expected comma-separated origins such as https:\/\/app\.example\.com/,
    );
  });

  it("LATCHKEY_AUDIT_RETENTION_DAYS: unset keeps audit events forever; whole days from 1 to 36500", () => {
    expect(loadConfig(env()).auditRetentionDays).toBeUndefined();
    expect(loadConfig(env({ LATCHKEY_AUDIT_RETENTION_DAYS: "" })).auditRetentionDays).toBeUndefined();
    expect(loadConfig(env({ LATCHKEY_AUDIT_RETENTION_DAYS: "1" })).auditRetentionDays).toBe(1);
    expect(loadConfig(env({ LATCHKEY_AUDIT_RETENTION_DAYS: "400" })).auditRetentionDays).toBe(400);
    expect(loadConfig(env({ LATCHKEY_AUDIT_RETENTION_DAYS: "36500" })).auditRetentionDays).toBe(36500);
    expect(configErrorOf(env({ LATCHKEY_AUDIT_RETENTION_DAYS: "0" })).message).toBe(
      'LATCHKEY_AUDIT_RETENTION_DAYS: expected a whole number of days from 1 to 36500 (unset keeps events forever), got "0"',
    );
  });

  it("an https public URL turns on secure cookies", () => {
    expect(loadConfig(env({ LATCHKEY_PUBLIC_URL: "https://auth.example.com" })).secureCookies).toBe(true);
    expect(loadConfig(env({ LATCHKEY_PUBLIC_URL: "http://auth.example.com" })).secureCookies).toBe(false);
  });

  it("the default sender uses the public URL's host name", () => {
    expect(loadConfig(env({ LATCHKEY_PUBLIC_URL: "https://auth.example.com" })).mailFrom).toBe("Latchkey <no-reply@auth.example.com>");
  });

  describe("the secret key", () => {
    it("is generated into the data dir with mode 0600 on the first SQLite start and reused on the next", () => {
      const dataDir = join(tempDir(), "nested", "data");
      const first = loadConfig({ LATCHKEY_DATA_DIR: dataDir });
      const file = join(dataDir, "secret.key");
      expect(existsSync(file)).toBe(true);
      expect(statSync(file).mode & 0o777).toBe(0o600);
      expect(first.secretKey).toHaveLength(32);
      expect(Buffer.from(readFileSync(file, "utf8").trim(), "base64").equals(first.secretKey)).toBe(true);

      const second = loadConfig({ LATCHKEY_DATA_DIR: dataDir });
      expect(second.secretKey.equals(first.secretKey)).toBe(true);
    });

    it("differs between two fresh data dirs", () => {
      const a = loadConfig({ LATCHKEY_DATA_DIR: tempDir() });
      const b = loadConfig({ LATCHKEY_DATA_DIR: tempDir() });
      expect(a.secretKey.equals(b.secretKey)).toBe(false);
    });

    it("LATCHKEY_SECRET_KEY wins over the file and writes nothing", () => {
      const dataDir = tempDir();
      const config = loadConfig({ LATCHKEY_DATA_DIR: dataDir, LATCHKEY_SECRET_KEY: KEY });
      expect(config.secretKey.equals(Buffer.from(KEY, "base64"))).toBe(true);
      expect(existsSync(join(dataDir, "secret.key"))).toBe(false);
    });

    it("a damaged key file is refused with an error naming LATCHKEY_SECRET_KEY and the file", () => {
      const dataDir = tempDir();
      writeFileSync(join(dataDir, "secret.key"), "too short\n");
      const error = configErrorOf({ LATCHKEY_DATA_DIR: dataDir });
      expect(error.message).toContain("LATCHKEY_SECRET_KEY");
      expect(error.message).toContain(join(dataDir, "secret.key"));
    });

    it("is required with PostgreSQL: without it the error names LATCHKEY_SECRET_KEY and says why, and no file is written", () => {
      const dataDir = tempDir();
      const error = configErrorOf({ LATCHKEY_DATA_DIR: dataDir, DATABASE_URL: "postgres://postgres@127.0.0.1:5432/latchkey" });
      expect(error.variable).toBe("LATCHKEY_SECRET_KEY");
      expect(error.message).toMatch(/LATCHKEY_SECRET_KEY: required with PostgreSQL/);
      expect(existsSync(join(dataDir, "secret.key"))).toBe(false);
    });
  });
});

describe("LATCHKEY_METRICS_ADDR", () => {
  it("is off by default (no metrics listener)", () => {
    expect(loadConfig(env()).metricsAddr).toBeUndefined();
    expect(loadConfig(env({ LATCHKEY_METRICS_ADDR: " " })).metricsAddr).toBeUndefined();
  });

  it.each([
    ["127.0.0.1:9464", { host: "127.0.0.1", port: 9464 }],
    ["0.0.0.0:9464", { host: "0.0.0.0", port: 9464 }],
    ["[::1]:9464", { host: "::1", port: 9464 }],
    ["metrics.internal:1", { host: "metrics.internal", port: 1 }],
    ["127.0.0.1:65535", { host: "127.0.0.1", port: 65535 }],
    // The main port on another address is a listener of its own.
    ["127.0.0.2:3000", { host: "127.0.0.2", port: 3000 }],
  ])("%s is host and port", (value, expected) => {
    expect(loadConfig(env({ LATCHKEY_METRICS_ADDR: value })).metricsAddr).toEqual(expected);
  });

  it.each([
    "9464",
    "127.0.0.1",
    "127.0.0.1:",
    ":9464",
    "127.0.0.1:0",
    "127.0.0.1:65536",
    "127.0.0.1:123456",
    "127.0.0.1:-1",
    "127.0.0.1:94x4",
    "::1:9464",
    "[::1]",
    "http://127.0.0.1:9464",
    "127.0.0.1:9464/metrics",
    "-host:9464",
  ])("%s is refused with one line naming the variable and what it expects", (value) => {
    const error = configErrorOf(env({ LATCHKEY_METRICS_ADDR: value }));
    expect(error.variable).toBe("LATCHKEY_METRICS_ADDR");
    expect(error.message).toBe(
      `LATCHKEY_METRICS_ADDR: expected host:port such as 127.0.0.1:9464 or [::1]:9464 (port 1–65535), got "${value}"`,
    );
  });

  it.each([
    ["127.0.0.1:3000", {}],
    ["0.0.0.0:3000", {}],
    ["127.0.0.1:8080", { PORT: "8080" }],
    ["10.0.0.5:3000", { HOST: "0.0.0.0" }],
  ])("%s is refused when it is the main listener's port (%o)", (value, extra) => {
    const error = configErrorOf(env({ LATCHKEY_METRICS_ADDR: value, ...extra }));
    expect(error.variable).toBe("LATCHKEY_METRICS_ADDR");
    expect(error.message).toMatch(
      /^LATCHKEY_METRICS_ADDR: must not be the main listener's port \(.+\): metrics are served on a listener of their own/,
    );
  });
});
