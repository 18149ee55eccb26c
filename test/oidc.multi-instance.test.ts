import * as client from "openid-client";
import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, expect, it } from "vitest";
import { loadConfig } from "../src/config.js";
import type { AppContext } from "../src/context.js";
import { openRuntime, type Runtime } from "../src/runtime.js";
import { buildApp } from "../src/server.js";
import { Browser, deliverMailBeforeAnswer, MemoryMailer, seedMember, TEST_SECRET_KEY } from "./helpers/app.js";
import { TestClock } from "./helpers/clock.js";
import { createTestDatabase, type TestDatabase } from "./helpers/databases.js";
import { describeEachDialect } from "./helpers/dialects.js";
import { freePort } from "./helpers/ports.js";
import {
  authorizationUrl,
  discover,
  exchangeCode,
  follow,
  registerClient,
  startBackchannelReceiver,
  verifyWithJwks,
  type BackchannelReceiver,
} from "./helpers/oidc-rp.js";

interface Instance {
  app: FastifyInstance;
  ctx: AppContext;
  mail: MemoryMailer;
  origin: string;
}

/**
 * Two instances behind one public URL, as behind a load balancer: each its own process state (provider, caches,
 * database pool), the same database and secret key. The public URL is A's address; requests are sent to B by
 * address, as a balancer would.
 */
describeEachDialect("OpenID Provider on two instances", (dialect) => {
  let database: TestDatabase;
  const runtimes: Runtime[] = [];
  let a: Instance;
  let b: Instance;
  let receiver: BackchannelReceiver;

  beforeAll(async () => {
    database = await createTestDatabase(dialect);
    const portA = await freePort();
    const portB = await freePort();
    const publicUrl = `http://127.0.0.1:${portA}`;
    const config = loadConfig({
      LATCHKEY_DATA_DIR: database.dataDir,
      LATCHKEY_SECRET_KEY: TEST_SECRET_KEY,
      LATCHKEY_PUBLIC_URL: publicUrl,
      LOG_LEVEL: "silent",
      ...(database.databaseUrl ? { DATABASE_URL: database.databaseUrl } : {}),
    });
    const clock = new TestClock();
    async function instance(port: number): Promise<Instance> {
      const mail = new MemoryMailer();
      const runtime = await openRuntime(config, { clock, mailer: mail, migrate: true });
      runtimes.push(runtime);
      const app = await buildApp(runtime.ctx, { logger: false });
      deliverMailBeforeAnswer(app, runtime.mailSender);
      await app.listen({ port, host: "127.0.0.1" });
      return { app, ctx: runtime.ctx, mail, origin: `http://127.0.0.1:${port}` };
    }
    a = await instance(portA);
    b = await instance(portB);
    receiver = await startBackchannelReceiver();
  });
  afterAll(async () => {
    await receiver?.close();
    for (const instance of [a, b]) await instance?.app.close();
    for (const runtime of runtimes) await runtime.close();
    await database?.drop();
  });

  it("instances starting together on an empty database make one signing key, and publish the same JWKS", async () => {
    await Promise.all([a.app.oidc.provider(), b.app.oidc.provider()]);
    expect(await a.ctx.db.selectFrom("oidc_signing_keys").select("kid").execute()).toHaveLength(1);
    const [jwksA, jwksB] = await Promise.all([a.origin, b.origin].map(async (origin) => (await fetch(`${origin}/oidc/jwks`)).json()));
    expect(jwksA).toEqual(jwksB);
  });

  it("an authorization started on one instance finishes on the other, and the code is redeemed on the other", async () => {
    const member = await seedMember(a);
    const registered = await registerClient(a, { backchannelLogoutUri: receiver.uri });
    // Discovery from A; the token, UserInfo and refresh requests go to B (same paths, B's address).
    const config = await discover(a.origin, registered);
    config[client.customFetch] = (url, options) => fetch(url.replace(a.origin, b.origin), options as RequestInit);

    // The browser signs in on A …
    const onA = new Browser(a.app);
    expect((await onA.signInWithPassword(member.email, member.password)).statusCode).toBe(303);
    expect((await onA.get(a.mail.lastLink(member.email))).statusCode).toBe(303);
    // … starts the authorization on A, and is sent on to the interaction, which B answers, and back to A.
    const started = await authorizationUrl(config);
    const first = await onA.get(started.url);
    expect(first.statusCode).toBe(303);
    const onB = new Browser(b.app);
    for (const [name, value] of onA.cookies) onB.cookies.set(name, value);
    const interaction = first.headers.location as string;
    expect(interaction).toMatch(/^\/oidc\/interaction\//);
    const fromB = await onB.get(interaction);
    expect(fromB.statusCode).toBe(303);
    for (const [name, value] of onB.cookies) onA.cookies.set(name, value);
    const resumed = await follow(onA, a.origin, fromB.headers.location as string);
    const tokens = await exchangeCode(config, new URL(resumed.leftTo!), started);
    expect(tokens.claims()).toMatchObject({ iss: a.origin, sub: member.userId });
    // Both instances sign with the same key: the ID token verifies against either one's JWKS.
    await verifyWithJwks(a.origin, tokens.id_token!);
    await verifyWithJwks(b.origin, tokens.id_token!);
    expect((await client.fetchUserInfo(config, tokens.access_token, member.userId)).sub).toBe(member.userId);
    const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token!);

    // Signing out on A: both instances sweep at once, and the client is told exactly once.
    await a.ctx.db.deleteFrom("sessions").where("user_id", "=", member.userId).execute();
    const before = receiver.tokens.length;
    const [sweptA, sweptB] = await Promise.all([a.app.oidc.sweep(), b.app.oidc.sweep()]);
    expect(sweptA + sweptB).toBe(1);
    expect(receiver.tokens.length).toBe(before + 1);
    await expect(client.refreshTokenGrant(config, refreshed.refresh_token!)).rejects.toMatchObject({ error: "invalid_grant" });
  });
});
