import type { IncomingMessage, ServerResponse } from "node:http";
import type { Provider } from "oidc-provider";
import type { AppContext } from "../context.js";
import type { SignedIn } from "../auth/sessions.js";
import { loadKeySet } from "./keys.js";
import { buildProvider, loadOidcProvider, type OidcBridge } from "./provider.js";
import { isLiveInteraction, runInteraction, type InteractionOutcome } from "./interaction.js";
import { sweepEndedClientSessions, type OidcLogger } from "./logout.js";

export type OidcServiceBridge = Omit<OidcBridge, "requestSweep" | "log"> & { log: OidcLogger };

/**
 * The OpenID Provider of one instance: the provider (rebuilt when the signing keys change: a rotation, or a new key's
 * time to sign), Latchkey's interaction, and the logout sweep. Keys are looked at in the database at most every
 * `oidcKeyCheckIntervalSeconds`, so a rotation made with the CLI reaches every running instance.
 */
export class OidcService {
  private current: { provider: Provider; fingerprint: string } | undefined;
  private loading: Promise<Provider> | undefined;
  private checkedAt = Number.NEGATIVE_INFINITY;
  private readonly sweeps = new Set<Promise<void>>();
  private sweepQueued = false;

  constructor(
    private readonly ctx: AppContext,
    private readonly bridge: OidcServiceBridge,
  ) {}

  /** The provider with the current keys (loaded or rebuilt when due). */
  async provider(): Promise<Provider> {
    const due = this.ctx.clock.now() - this.checkedAt >= this.ctx.config.limits.oidcKeyCheckIntervalSeconds * 1000;
    if (this.current && !due) return this.current.provider;
    this.loading ??= this.load().finally(() => (this.loading = undefined));
    return this.loading;
  }

  /**
   * Makes the first signing key if there is none (at start, so the key exists before the first sign-in), without
   * loading oidc-provider: the library (about a fifth of the server's memory) is loaded by the first request or sweep
   * that needs it, so a deployment that never uses the OpenID Provider never pays for it (issue 10).
   */
  async prepareKeys(): Promise<void> {
    await loadKeySet(this.ctx);
  }

  /** Looks at the keys now (tests, and after `keys rotate` in the same process). */
  async refreshKeys(): Promise<Provider> {
    this.checkedAt = Number.NEGATIVE_INFINITY;
    return this.provider();
  }

  private async load(): Promise<Provider> {
    const keys = await loadKeySet(this.ctx);
    this.checkedAt = this.ctx.clock.now();
    if (this.current?.fingerprint !== keys.fingerprint) {
      const provider = buildProvider(await loadOidcProvider(), this.ctx, keys, { ...this.bridge, requestSweep: () => this.requestSweep() });
      this.current = { provider, fingerprint: keys.fingerprint };
    }
    return this.current.provider;
  }

  /** Latchkey's sign-in for a client's authorization (see interaction.ts). */
  async interaction(input: {
    req: IncomingMessage;
    res: ServerResponse;
    uid: string;
    signedIn: SignedIn | null;
  }): Promise<InteractionOutcome> {
    return runInteraction(await this.provider(), { ...input, now: this.ctx.clock.now() });
  }

  /** Whether `uid` is a live interaction of the browser making the request. */
  async isLiveInteraction(input: { req: IncomingMessage; res: ServerResponse; uid: string }): Promise<boolean> {
    return isLiveInteraction(await this.provider(), input);
  }

  /** Ends the clients' sessions whose Latchkey session ended, and tells them (see logout.ts). */
  async sweep(): Promise<number> {
    // The provider is loaded only when there is a grant to end (see prepareKeys).
    return sweepEndedClientSessions(this.ctx, () => this.provider(), this.bridge.log);
  }

  /** A sweep soon (after a sign-out), tracked so closing and tests can wait for it; requests meanwhile share it. */
  requestSweep(): void {
    if (this.sweepQueued) return;
    this.sweepQueued = true;
    const task: Promise<void> = new Promise<void>((resolve) => setImmediate(resolve))
      .then(() => {
        this.sweepQueued = false;
        return this.sweep();
      })
      .then(
        () => undefined,
        (error: unknown) => this.bridge.log.error({ err: error }, "OpenID Provider: the logout sweep failed"),
      )
      .finally(() => this.sweeps.delete(task));
    this.sweeps.add(task);
  }

  /** Resolves once every requested sweep has finished. */
  async settled(): Promise<void> {
    while (this.sweeps.size > 0) await Promise.all([...this.sweeps]);
  }
}
