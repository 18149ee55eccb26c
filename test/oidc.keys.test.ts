import type * as client from "openid-client";
import { afterAll, beforeAll, expect, it } from "vitest";
import { rotateSigningKey } from "../src/oidc/keys.js";
import { seedMember, signedInBrowser } from "./helpers/app.js";
import { describeEachDialect } from "./helpers/dialects.js";
import {
  authorizationUrl,
  authorizeInBrowser,
  discover,
  exchangeCode,
  registerClient,
  startListeningApp,
  verifyWithJwks,
  type ListeningApp,
} from "./helpers/oidc-rp.js";

function kidOf(jwt: string): string {
  return (JSON.parse(Buffer.from(jwt.split(".")[0]!, "base64url").toString("utf8")) as { kid: string }).kid;
}

describeEachDialect("OpenID Provider signing keys", (dialect) => {
  let t: ListeningApp;
  let config: client.Configuration;

  beforeAll(async () => {
    t = await startListeningApp(dialect);
    config = await discover(t.origin, await registerClient(t));
  });
  afterAll(async () => {
    await t?.close();
  });

  async function publishedKids(): Promise<string[]> {
    const { keys } = (await (await fetch(`${t.origin}/oidc/jwks`)).json()) as { keys: Array<{ kid: string }> };
    return keys.map((k) => k.kid);
  }

  async function idToken(): Promise<string> {
    const browser = await signedInBrowser(t, await seedMember(t));
    const started = await authorizationUrl(config);
    return (await exchangeCode(config, await authorizeInBrowser(browser, t.origin, started), started)).id_token!;
  }

  it("a rotation is published at once, signs once every instance has it, and the old key keeps verifying what it signed", async () => {
    const before = await idToken();
    const oldKid = kidOf(before);
    expect(await publishedKids()).toEqual([oldKid]);

    // `latchkey keys rotate` writes the new key; running instances look again within the check interval.
    const rotated = await rotateSigningKey(t.ctx);
    expect(rotated.signsFrom - t.clock.now()).toBe(t.config.limits.oidcKeyPublishAheadSeconds * 1000);
    t.clock.advanceSeconds(t.config.limits.oidcKeyCheckIntervalSeconds);
    expect(await publishedKids()).toEqual([oldKid, rotated.kid]);
    // Published, not yet signing.
    expect(kidOf(await idToken())).toBe(oldKid);

    t.clock.advanceSeconds(t.config.limits.oidcKeyPublishAheadSeconds);
    const after = await idToken();
    expect(kidOf(after)).toBe(rotated.kid);
    expect(await publishedKids()).toEqual([rotated.kid, oldKid]);
    // A token signed before the rotation still verifies against the JWKS, and so does the new one.
    expect((await verifyWithJwks(t.origin, before))["iss"]).toBe(t.origin);
    expect((await verifyWithJwks(t.origin, after))["iss"]).toBe(t.origin);

    // Once nothing it signed can still be presented, the old key is dropped.
    const { sessionAbsoluteTimeoutSeconds, oidcIdTokenTtlSeconds } = t.config.limits;
    t.clock.advanceSeconds(sessionAbsoluteTimeoutSeconds + oidcIdTokenTtlSeconds);
    await t.app.oidc.refreshKeys();
    expect(await publishedKids()).toEqual([rotated.kid]);
    expect(await t.ctx.db.selectFrom("oidc_signing_keys").select("kid").execute()).toEqual([{ kid: rotated.kid }]);
    await expect(verifyWithJwks(t.origin, before)).rejects.toThrow(/not in the JWKS/);
  });

  it("the private keys are stored sealed with the secret key", async () => {
    const rows = await t.ctx.db.selectFrom("oidc_signing_keys").selectAll().execute();
    expect(rows.length).toBeGreaterThan(0);
    for (const row of rows) {
      expect(row.private_jwk_sealed).toMatch(/^v1\.[0-9a-f]{12}\./);
      expect(row.private_jwk_sealed).not.toContain('"d"');
    }
  });
});
