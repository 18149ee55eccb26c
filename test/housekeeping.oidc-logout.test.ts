import { afterAll, beforeAll, expect, it } from "vitest";
import { seedMember, signedInBrowser } from "./helpers/app.js";
import { describeEachDialect } from "./helpers/dialects.js";
import {
  authorizationUrl,
  authorizeInBrowser,
  discover,
  exchangeCode,
  registerClient,
  startBackchannelReceiver,
  startListeningApp,
  verifyWithJwks,
  type BackchannelReceiver,
  type ListeningApp,
} from "./helpers/oidc-rp.js";
import { runHousekeeping } from "../src/housekeeping.js";

describeEachDialect("housekeeping and the OpenID Provider's back-channel logout", (dialect) => {
  let t: ListeningApp;
  let receiver: BackchannelReceiver;

  beforeAll(async () => {
    t = await startListeningApp(dialect);
    receiver = await startBackchannelReceiver();
  });
  afterAll(async () => {
    await receiver?.close();
    await t?.close();
  });

  it("an idle session with an application's grant is kept until the logout sweep has told the application, then deleted", async () => {
    const registered = await registerClient(t, { name: "Wiki", backchannelLogoutUri: receiver.uri });
    const config = await discover(t.origin, registered);
    const member = await seedMember(t);
    const browser = await signedInBrowser(t, member);
    const started = await authorizationUrl(config);
    const tokens = await exchangeCode(config, await authorizeInBrowser(browser, t.origin, started), started);
    const sessionIds = async (): Promise<string[]> =>
      (await t.ctx.db.selectFrom("sessions").select("id").where("user_id", "=", member.userId).execute()).map((r) => r.id);
    const [sessionId] = await sessionIds();
    expect(sessionId).toBeDefined();

    // The person walks away: the session is past its idle timeout, and housekeeping runs before any sweep.
    t.clock.advanceSeconds(t.config.limits.sessionIdleTimeoutSeconds);
    const before = receiver.tokens.length;
    const first = await runHousekeeping(t.ctx);
    expect(first.ran && first.tables.find((r) => r.table === "sessions")?.deleted).toBe(0);
    expect(await sessionIds()).toEqual([sessionId]);
    expect(await t.ctx.db.selectFrom("oidc_grants").select("grant_id").where("session_id", "=", sessionId!).execute()).toHaveLength(1);

    // The sweep claims the grant and sends the logout token; the next housekeeping run deletes the session.
    expect(await t.app.oidc.sweep()).toBe(1);
    const received = await Promise.all(receiver.tokens.slice(before).map((jwt) => verifyWithJwks(t.origin, jwt)));
    expect(received).toHaveLength(1);
    expect(received[0]).toMatchObject({ sub: member.userId, sid: tokens.claims()!["sid"] });
    const second = await runHousekeeping(t.ctx);
    expect(second.ran && second.tables.find((r) => r.table === "sessions")?.deleted).toBe(1);
    expect(await sessionIds()).toEqual([]);
  });
});
