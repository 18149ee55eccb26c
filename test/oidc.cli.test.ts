import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, sqliteFileIn, type Store } from "../src/db/connect.js";
import { hashToken } from "../src/auth/tokens.js";

const CLI = ["--import", "tsx", join(process.cwd(), "src/cli.ts")];

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `latchkey ARGS` with only the variables given (plus PATH/HOME), as an operator would. */
function latchkey(args: string[], env: Record<string, string>): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [...CLI, ...args],
      { env: { PATH: process.env["PATH"] ?? "", HOME: process.env["HOME"] ?? "", LOG_LEVEL: "silent", ...env }, timeout: 45_000 },
      (error, stdout, stderr) => resolve({ code: error ? (typeof error.code === "number" ? error.code : -1) : 0, stdout, stderr }),
    );
  });
}

describe("latchkey client and keys", () => {
  let dir: string;
  let env: Record<string, string>;
  let store: Store;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "latchkey-cli-oidc-"));
    env = { LATCHKEY_DATA_DIR: dir };
    expect((await latchkey(["migrate"], env)).code).toBe(0);
    store = connect({ databaseUrl: undefined, sqliteFile: sqliteFileIn(dir) });
  });
  afterAll(async () => {
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("client create prints the id and the secret as JSON once, and keeps only the secret's hash", async () => {
    const run = await latchkey(
      [
        "client",
        "create",
        "--name",
        "Wiki",
        "--redirect-uri",
        "https://wiki.example.com/callback",
        "--redirect-uri",
        "http://localhost:8080/callback",
        "--post-logout-redirect-uri",
        "https://wiki.example.com/",
        "--backchannel-logout-uri",
        "https://wiki.example.com/backchannel",
      ],
      env,
    );
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    const printed = JSON.parse(run.stdout) as { client_id: string; client_secret: string };
    expect(Object.keys(printed)).toEqual(["client_id", "client_secret"]);
    expect(printed.client_id).toMatch(/^[0-9a-f]{32}$/);
    expect(printed.client_secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const row = await store.db.selectFrom("oidc_clients").selectAll().where("client_id", "=", printed.client_id).executeTakeFirstOrThrow();
    expect(row.secret_hash).toBe(hashToken(printed.client_secret));
    expect(JSON.stringify(row)).not.toContain(printed.client_secret);
    expect(JSON.parse(row.redirect_uris)).toEqual(["https://wiki.example.com/callback", "http://localhost:8080/callback"]);
    expect(JSON.parse(row.post_logout_redirect_uris)).toEqual(["https://wiki.example.com/"]);
    expect(row.backchannel_logout_uri).toBe("https://wiki.example.com/backchannel");
  });

  it("client create --public prints a null secret and stores none", async () => {
    const run = await latchkey(["client", "create", "--name", "SPA", "--redirect-uri", "https://spa.example.com/cb", "--public"], env);
    expect(run.code).toBe(0);
    const printed = JSON.parse(run.stdout) as { client_id: string; client_secret: null };
    expect(printed.client_secret).toBeNull();
    const row = await store.db.selectFrom("oidc_clients").selectAll().where("client_id", "=", printed.client_id).executeTakeFirstOrThrow();
    expect(row.secret_hash).toBeNull();
  });

  it("client create refuses a redirect URI that is not https (or http on localhost) and registers nothing", async () => {
    const before = await store.db.selectFrom("oidc_clients").select("client_id").execute();
    for (const uri of ["http://wiki.example.com/callback", "javascript:alert(1)"]) {
      const run = await latchkey(["client", "create", "--name", "Bad", "--redirect-uri", uri], env);
      expect(run.code, uri).toBe(1);
      expect(run.stdout).toBe("");
      expect(run.stderr).toMatch(/^latchkey: .*redirect URI/);
    }
    const missing = await latchkey(["client", "create", "--name", "Bad"], env);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain("--redirect-uri");
    expect(await store.db.selectFrom("oidc_clients").select("client_id").execute()).toEqual(before);
  });

  it("client list shows the clients without secrets; client delete removes one; an unknown id exits 1", async () => {
    const created = JSON.parse(
      (await latchkey(["client", "create", "--name", "To delete", "--redirect-uri", "https://gone.example.com/cb"], env)).stdout,
    ) as { client_id: string; client_secret: string };
    const list = await latchkey(["client", "list"], env);
    expect(list.code).toBe(0);
    expect(list.stdout).toContain(`${created.client_id}  "To delete"  confidential`);
    expect(list.stdout).toContain("redirect URI              https://gone.example.com/cb");
    expect(list.stdout).not.toContain(created.client_secret);
    expect(list.stdout).not.toContain(hashToken(created.client_secret));

    const deleted = await latchkey(["client", "delete", created.client_id], env);
    expect(deleted.code).toBe(0);
    expect(deleted.stdout).toContain(`Deleted client ${created.client_id}`);
    expect(await store.db.selectFrom("oidc_clients").select("client_id").where("client_id", "=", created.client_id).execute()).toEqual([]);
    expect((await latchkey(["client", "list"], env)).stdout).not.toContain(created.client_id);

    const again = await latchkey(["client", "delete", created.client_id], env);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/no client/);
  });

  it("keys rotate makes a new key that signs shortly, and keeps the previous one published", async () => {
    const first = await latchkey(["keys", "rotate"], env);
    expect(first.stderr).toBe("");
    expect(first.code).toBe(0);
    const rows = await store.db.selectFrom("oidc_signing_keys").selectAll().orderBy("signs_from").execute();
    // No key existed: the first one is made, then the new one.
    expect(rows).toHaveLength(2);
    const [older, newer] = rows as [(typeof rows)[0], (typeof rows)[0]];
    expect(newer.signs_from).toBeGreaterThan(older.signs_from);
    expect(first.stdout).toContain(`New signing key ${newer.kid}: published now, signs from`);
    expect(first.stdout).toContain(`Key ${older.kid} stays published until`);
    // The private key is sealed, never stored in the clear.
    for (const row of rows) expect(row.private_jwk_sealed).toMatch(/^v1\./);
    expect(JSON.stringify(rows)).not.toMatch(/"d":/);

    const list = await latchkey(["keys", "list"], env);
    expect(list.stdout).toContain(`${older.kid}  RS256  signs from`);
    expect(list.stdout).toContain(`${newer.kid}  RS256  signs from`);
  });
});
