import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync, existsSync } from "node:fs";
import { join, resolve } from "node:path";

/**
 * Every limit and default of Latchkey, in one place. Values are in the unit their name says.
 * Operators can override the ones that have an environment variable; the rest are fixed by design.
 */
export interface Limits {
  /** A session ends this long after its last request (NIST 800-63B AAL2 reauthentication: ≤ 30 min idle recommended, 1 h allowed by our brief). */
  sessionIdleTimeoutSeconds: number;
  /** A session ends this long after sign-in, whatever its activity. */
  sessionAbsoluteTimeoutSeconds: number;
  /** `last_seen_at` is written at most this often per session, to keep the session check read-mostly. */
  sessionTouchIntervalSeconds: number;
  /** The half-finished sign-in (after the password) lives this long. */
  challengeTtlSeconds: number;
  /** An emailed sign-in link is valid this long. */
  emailLinkTtlSeconds: number;
  /** "Send a new link" is refused until this long after the previous link was sent. */
  emailLinkResendCooldownSeconds: number;
  /** At most this many links are sent for one challenge (the first included); then the person must start again. */
  emailLinkMaxSendsPerChallenge: number;
  /** An invitation link is valid this long. */
  invitationTtlSeconds: number;
  /** The first-run setup link is valid this long. */
  setupLinkTtlSeconds: number;
  /** Wrong passwords for one email within the window before sign-in for that email is paused. */
  passwordFailuresPerEmail: number;
  /** Sign-in attempts from one IP address within the window before it is paused. */
  passwordAttemptsPerIp: number;
  /** The window of the password counters (per email, per IP, per trusted device). */
  passwordAttemptWindowSeconds: number;
  /**
   * Wrong passwords within the window from one trusted device (a browser with a valid device cookie of that user)
   * before sign-in from it is paused. Such attempts count here instead of against the email, so an attacker's lock
   * of the email does not lock the owner out, and a stolen device cookie cannot guess freely either.
   */
  passwordFailuresPerDevice: number;
  /** A device cookie, set after a complete sign-in, marks the browser as trusted for its user this long. */
  deviceCookieMaxAgeSeconds: number;
  /** A "fresh proof" (password or second factor) is accepted for sensitive changes this long. */
  freshProofSeconds: number;
  /** TOTP time step (RFC 6238 X). Authenticator apps assume 30. */
  totpStepSeconds: number;
  /** Steps accepted either side of the current one, for clock drift (RFC 6238 §5.2 recommends at most one). */
  totpDriftSteps: number;
  /**
   * Wrong codes (app or recovery) on one sign-in before it ends and the password is needed again; likewise on one
   * password reset link before the link stops working.
   */
  codeFailuresPerChallenge: number;
  /** Consecutive wrong codes for one user, across sign-ins and instances, before code entry is locked. */
  codeFailuresPerUser: number;
  /** First lock of code entry; each further lock within `codeLockMemorySeconds` doubles it. */
  codeLockSeconds: number;
  /** Longest lock of code entry. */
  codeLockMaxSeconds: number;
  /** How long locks are remembered for the doubling. */
  codeLockMemorySeconds: number;
  /** Recovery codes issued at setup and on regeneration. */
  recoveryCodeCount: number;
  /** The sign-in success page warns when this many recovery codes or fewer remain. */
  recoveryCodesLowWarning: number;
  /** An unfinished auth-app setup (and codes waiting to be downloaded) is kept this long. */
  totpSetupTtlSeconds: number;
  /** Wrong passwords when confirming a sensitive change before the confirmation pauses. */
  reauthFailuresPerUser: number;
  /** An approved support reset waits this long, so the real owner can cancel it from their inbox. */
  supportWaitingPeriodSeconds: number;
  /** The "confirm your request" email link of a support request is valid this long. */
  supportConfirmTtlSeconds: number;
  /** Support requests per email address within a day (each sends an email, so this also limits mail). */
  supportRequestsPerEmailPerDay: number;
  /** Support requests from one IP address within an hour. */
  supportRequestsPerIpPerHour: number;
  /**
   * A password reset link is valid this long (`LATCHKEY_PASSWORD_RESET_TTL_SECONDS`). Long enough to reach the inbox
   * and read the email, short enough that a link left in a mailbox is soon worth nothing (OWASP: short-lived).
   */
  passwordResetTtlSeconds: number;
  /** "Forgot your password?" requests per address within the window (each may send an email, so this limits mail too). */
  passwordResetRequestsPerEmail: number;
  /** "Forgot your password?" requests from one IP address within the window, so nobody can make Latchkey mail many inboxes. */
  passwordResetRequestsPerIp: number;
  /** The window of both password reset request counters. */
  passwordResetRequestWindowSeconds: number;
  /**
   * The confirmation link of an email change (sent to the new address) is valid this long; the old address is told at
   * once and can cancel it meanwhile.
   */
  emailChangeTtlSeconds: number;
  /** Email changes one person may ask for within a day: each one mails an address they typed. */
  emailChangeRequestsPerUserPerDay: number;
  /** Shortest password, in Unicode code points (NIST 800-63B: at least 8). */
  passwordMinLength: number;
  /** Longest password, in Unicode code points (no truncation happens below this). */
  passwordMaxLength: number;
  /** How many of the most common passwords are refused. */
  commonPasswordCount: number;
  /** Largest request body accepted, in bytes; larger ones get 413. */
  bodyLimitBytes: number;
  /** Longest email address accepted (RFC 5321 path limit). */
  emailMaxLength: number;
  /** Longest display name or account name, in code points. */
  nameMaxLength: number;
  /** A single sign-on started at the identity provider must come back within this long (the state is then void). */
  ssoLoginTtlSeconds: number;
  /** Each request Latchkey makes to an identity provider (discovery, token, keys, userinfo) gives up after this long. */
  ssoHttpTimeoutSeconds: number;
  /** Most email domains one account's SSO connection may claim. */
  ssoMaxDomains: number;
  /**
   * Longest `return_to` accepted, in characters (the common URL limit of browsers and proxies). Longer ones are ignored:
   * the stored target must fit in a cookie with room to spare.
   */
  returnToMaxLength: number;
  /**
   * The `return_to` kept for a sign-in in progress lives this long: a sign-in (10 minutes) and the forced auth-app
   * setup after it fit; a target left over from an abandoned start does not linger.
   */
  returnToTtlSeconds: number;
  /**
   * After a password is set (an invitation, the first-run setup) the sign-in page it leads to fills in the email for
   * this long; the browser keeps the address in a signed cookie, not in the URL.
   */
  loginHintTtlSeconds: number;
  /** An operator API token's `last_used_at` is written at most this often, to keep the token check read-mostly. */
  apiTokenTouchIntervalSeconds: number;
  /** Accounts per page of `GET /api/v1/admin/accounts` when the caller names no `limit`. */
  operatorAccountsPageSize: number;
  /** Most accounts per page of `GET /api/v1/admin/accounts`. */
  operatorAccountsMaxPageSize: number;
  /**
   * OpenID Provider: an authorization code must be redeemed within this long (RFC 6749 recommends at most 10 minutes;
   * clients redeem it at once, so a minute is plenty and keeps a stolen code short-lived).
   */
  oidcAuthorizationCodeTtlSeconds: number;
  /** OpenID Provider: access tokens live this long; clients refresh them. Short, because a bearer token cannot be recalled from a copy. */
  oidcAccessTokenTtlSeconds: number;
  /** OpenID Provider: ID tokens (and logout tokens) are valid this long after issue. */
  oidcIdTokenTtlSeconds: number;
  /** OpenID Provider: a sign-in started by a client must finish within this long (password, email link, perhaps auth-app setup). */
  oidcInteractionTtlSeconds: number;
  /** OpenID Provider: each instance looks for a rotated signing key this often. */
  oidcKeyCheckIntervalSeconds: number;
  /**
   * OpenID Provider: a new signing key is published this long before it starts signing, so every instance (which looks
   * every `oidcKeyCheckIntervalSeconds`) serves it in the JWKS before any token signed with it exists.
   */
  oidcKeyPublishAheadSeconds: number;
  /** OpenID Provider: each instance looks this often for clients' sessions whose Latchkey session has ended, and tells the clients. */
  oidcLogoutSweepSeconds: number;
  /** OpenID Provider: a back-channel logout request to a client gives up after this long (one attempt). */
  oidcBackchannelTimeoutSeconds: number;
  /** OpenID Provider: most redirect URIs (and, separately, post-logout redirect URIs) one client may register. */
  oidcMaxRedirectUris: number;
  /**
   * `/readyz`: each check (the database, Redis) that has not answered within this counts as unreachable, so a probe
   * answers in bounded time when a service hangs. Below the usual probe timeouts (Kubernetes' default is 1 s, most set
   * 2–5 s), above any healthy round trip.
   */
  readinessCheckTimeoutMs: number;
  /** A metrics scrape waits this long for a value read at scrape time (active sessions, one count query), then reports NaN. */
  metricsGaugeTimeoutMs: number;
  /**
   * Load shedding: while the event loop lags behind by more than this on average over a sample interval, every request
   * is answered 503 at once instead of being queued. Far above the lag of a busy but healthy server (a few ms at 50
   * concurrent session checks on 2 cores): by then queued requests wait longer than any client should. A full second
   * (as @fastify/under-pressure's common setting), not less: a machine shared with other work lags for hundreds of
   * milliseconds in bursts, and shedding then would refuse people a healthy server could still serve.
   */
  overloadEventLoopDelayMs: number;
  /** How often the event-loop lag is averaged and the load-shedding decision renewed (as @fastify/under-pressure). */
  overloadSampleIntervalMs: number;
  /** `Retry-After` of a shed request: long enough for a burst to pass, short enough not to strand clients. */
  overloadRetryAfterSeconds: number;
  /**
   * Sign-in password checks running or waiting at once in this process (argon2id runs on libuv's pool, 4 threads by
   * default). One more is answered 503 `service_unavailable` with `Retry-After` at once, before any counter or query,
   * instead of queueing behind the others without bound: a flood of sign-ins is refused, not waited out. 64 keeps the
   * last one waiting about a third of a second on 2 cores (argon2id m=19 MiB, t=2 takes ~11 ms of a core).
   */
  passwordChecksInFlightMax: number;
  /**
   * Members shown on one page of Team Members (then Previous / Next). A 1,000-member list on one page was a megabyte of
   * HTML with a form per row; people look for someone by name, and the list is sorted by name.
   */
  teamMembersPageSize: number;
  /**
   * Mail: each instance looks for due messages this often (messages of other instances and of the CLI, retries after a
   * failure). A message queued by a request is sent right after that request, without waiting for this.
   */
  mailPollIntervalMs: number;
  /** Mail: one delivery (connect, greet, send) gives up after this long and counts as a failed attempt. */
  mailSendTimeoutSeconds: number;
  /**
   * Mail: a claimed message is its sender's for this long, renewed every third of it while the send goes on; if its
   * instance crashed, any sender claims the message again once this has passed. Short, so a crash delays mail by
   * seconds, and renewed, so a slow mail server never makes a live send look abandoned.
   */
  mailClaimLeaseSeconds: number;
  /** Mail: messages one sender claims at a time: different recipients' are sent side by side, one recipient's in turn. */
  mailBatchSize: number;
  /** Mail: the wait after the first failed attempt; it doubles with each further failure (with jitter: half to all of it). */
  mailRetryBaseSeconds: number;
  /** Mail: the longest wait between two attempts. */
  mailRetryMaxSeconds: number;
  /**
   * Mail: a message is given up (marked failed, logged) after this many failed attempts. With the waits above that is
   * hours of retrying: an SMTP outage of that length delays mail and loses none.
   */
  mailMaxAttempts: number;
  /** Mail: finished queue rows (sent, given up, superseded) are kept this long, then pruned by housekeeping. */
  mailQueueRetentionSeconds: number;
  /**
   * PostgreSQL: a new connection gives up after this long (pg's default is to wait forever). With the database down,
   * a request then answers 503 `database_unavailable` instead of hanging (issue 11: none past 10 s).
   */
  databaseConnectTimeoutMs: number;
  /**
   * PostgreSQL: a query whose answer has not come after this long fails (client side). Far above any query Latchkey
   * makes (the slowest, a housekeeping batch, takes milliseconds); it only cuts requests stuck on a dead connection.
   */
  databaseQueryTimeoutMs: number;
  /**
   * Redis: a command without an answer after this long fails, and commands are never queued while Redis is
   * unreachable: the sign-in throttle then fails closed at once (503 `throttle_unavailable`), never unthrottled.
   */
  redisCommandTimeoutMs: number;
  /** `Retry-After` when PostgreSQL or Redis cannot be reached: about the time a restart or failover takes. */
  dependencyRetryAfterSeconds: number;
  /**
   * Housekeeping (src/housekeeping.ts): each instance of `latchkey serve` tries this often to delete expired rows; of
   * instances trying at once one runs (the lease), and a run started anywhere within half this interval makes the
   * others skip, so a cluster runs it about once per interval. Expired rows are already refused everywhere they are
   * read: this only keeps the tables (and the session check's indexes) small, so minutes of delay cost nothing.
   */
  housekeepingIntervalSeconds: number;
  /**
   * Housekeeping deletes at most this many rows of one table per statement, so no statement holds a table (or, on
   * SQLite, the one writer lock) for long: requests of other sessions get in between batches.
   */
  housekeepingBatchSize: number;
  /**
   * The housekeeping lease lasts this long and is renewed after every batch; a holder that died (SIGKILL, a lost
   * machine) is taken over this long after its last batch. Far longer than one batch takes.
   */
  housekeepingLeaseSeconds: number;
  /**
   * Links, sign-ins in progress and the like are deleted this long after they expired, not at once: until then
   * someone who opens an old link still reads "this link has expired" instead of "this link is not valid", and
   * instances whose clocks differ by seconds never disagree about a row.
   */
  housekeepingGraceSeconds: number;
  /**
   * An invitation is deleted this long after it expired: until then the Team Members page (and the operator API) lists
   * it as expired, with Resend.
   */
  housekeepingInvitationKeepSeconds: number;
  /**
   * Graceful shutdown (`LATCHKEY_SHUTDOWN_SECONDS`): after SIGTERM or SIGINT the process has exited within this long,
   * whatever its clients do. Requests in flight may finish until `shutdownCloseReserveMs` before it; then their
   * connections are dropped. A service manager's stop timeout must be longer (the systemd unit's `TimeoutStopSec`).
   */
  shutdownSeconds: number;
  /** Of the shutdown bound, the last this-many milliseconds are kept for closing the pools after the drain. */
  shutdownCloseReserveMs: number;
  /** At start, the database and Redis must answer within this long, or start-up fails naming which one did not. */
  startupCheckTimeoutSeconds: number;
}

export const defaultLimits: Limits = {
  sessionIdleTimeoutSeconds: 60 * 60,
  sessionAbsoluteTimeoutSeconds: 12 * 60 * 60,
  sessionTouchIntervalSeconds: 60,
  challengeTtlSeconds: 10 * 60,
  emailLinkTtlSeconds: 10 * 60,
  emailLinkResendCooldownSeconds: 30,
  emailLinkMaxSendsPerChallenge: 5,
  invitationTtlSeconds: 7 * 24 * 60 * 60,
  setupLinkTtlSeconds: 24 * 60 * 60,
  passwordFailuresPerEmail: 10,
  passwordAttemptsPerIp: 100,
  passwordAttemptWindowSeconds: 15 * 60,
  passwordFailuresPerDevice: 10,
  deviceCookieMaxAgeSeconds: 180 * 24 * 60 * 60,
  freshProofSeconds: 10 * 60,
  totpStepSeconds: 30,
  totpDriftSteps: 1,
  codeFailuresPerChallenge: 5,
  codeFailuresPerUser: 10,
  codeLockSeconds: 15 * 60,
  codeLockMaxSeconds: 24 * 60 * 60,
  codeLockMemorySeconds: 7 * 24 * 60 * 60,
  recoveryCodeCount: 10,
  recoveryCodesLowWarning: 3,
  totpSetupTtlSeconds: 30 * 60,
  reauthFailuresPerUser: 10,
  supportWaitingPeriodSeconds: 72 * 60 * 60,
  supportConfirmTtlSeconds: 24 * 60 * 60,
  supportRequestsPerEmailPerDay: 3,
  supportRequestsPerIpPerHour: 10,
  passwordResetTtlSeconds: 30 * 60,
  passwordResetRequestsPerEmail: 3,
  passwordResetRequestsPerIp: 20,
  passwordResetRequestWindowSeconds: 60 * 60,
  emailChangeTtlSeconds: 24 * 60 * 60,
  emailChangeRequestsPerUserPerDay: 5,
  passwordMinLength: 8,
  passwordMaxLength: 128,
  commonPasswordCount: 10_000,
  bodyLimitBytes: 64 * 1024,
  emailMaxLength: 254,
  nameMaxLength: 100,
  ssoLoginTtlSeconds: 10 * 60,
  ssoHttpTimeoutSeconds: 10,
  ssoMaxDomains: 50,
  returnToMaxLength: 2048,
  returnToTtlSeconds: 30 * 60,
  loginHintTtlSeconds: 10 * 60,
  apiTokenTouchIntervalSeconds: 60,
  operatorAccountsPageSize: 50,
  operatorAccountsMaxPageSize: 200,
  oidcAuthorizationCodeTtlSeconds: 60,
  oidcAccessTokenTtlSeconds: 10 * 60,
  oidcIdTokenTtlSeconds: 10 * 60,
  oidcInteractionTtlSeconds: 30 * 60,
  oidcKeyCheckIntervalSeconds: 30,
  oidcKeyPublishAheadSeconds: 2 * 30,
  oidcLogoutSweepSeconds: 5,
  oidcBackchannelTimeoutSeconds: 5,
  oidcMaxRedirectUris: 20,
  readinessCheckTimeoutMs: 800,
  metricsGaugeTimeoutMs: 2000,
  overloadEventLoopDelayMs: 1000,
  overloadSampleIntervalMs: 1000,
  overloadRetryAfterSeconds: 10,
  passwordChecksInFlightMax: 64,
  teamMembersPageSize: 100,
  mailPollIntervalMs: 5000,
  mailSendTimeoutSeconds: 30,
  mailClaimLeaseSeconds: 15,
  mailBatchSize: 10,
  mailRetryBaseSeconds: 5,
  mailRetryMaxSeconds: 5 * 60,
  mailMaxAttempts: 50,
  mailQueueRetentionSeconds: 7 * 24 * 60 * 60,
  databaseConnectTimeoutMs: 5_000,
  databaseQueryTimeoutMs: 8_000,
  redisCommandTimeoutMs: 1_000,
  dependencyRetryAfterSeconds: 5,
  housekeepingIntervalSeconds: 10 * 60,
  housekeepingBatchSize: 500,
  housekeepingLeaseSeconds: 2 * 60,
  housekeepingGraceSeconds: 24 * 60 * 60,
  housekeepingInvitationKeepSeconds: 30 * 24 * 60 * 60,
  shutdownSeconds: 10,
  shutdownCloseReserveMs: 500,
  startupCheckTimeoutSeconds: 10,
};

export interface Config {
  port: number;
  host: string;
  /** The only origin ever put in an email link, and the origin CSRF checks compare against. */
  publicUrl: URL;
  dataDir: string;
  /** `undefined` → SQLite file `<dataDir>/latchkey.db`. */
  databaseUrl: string | undefined;
  redisUrl: string | undefined;
  smtpUrl: string | undefined;
  mailFrom: string;
  /** 32 bytes: encrypts TOTP keys and signs CSRF tokens and device cookies. */
  secretKey: Buffer;
  /** Earlier secret keys, still accepted for decryption after a rotation (`LATCHKEY_PREVIOUS_SECRET_KEYS`). */
  previousSecretKeys: Buffer[];
  /** Issuer in authenticator apps and the name in emails and pages. */
  productName: string;
  /** `true` when the public URL is https: cookies get `Secure` and the `__Host-` prefix. */
  secureCookies: boolean;
  /**
   * `LATCHKEY_COOKIE_DOMAIN` (lower case), or `undefined`: the session cookie alone then goes to this domain and every
   * subdomain (`__Secure-latchkey_session; Domain=…`), so forward auth works for apps on sibling hosts. See
   * docs/decisions.md for what that costs.
   */
  cookieDomain: string | undefined;
  logLevel: string;
  /**
   * Which proxies' X-Forwarded-For to believe for the client address (audit events, per-IP limits): `false` (none,
   * the default), `true` (any: only when nothing but the proxy can reach Latchkey), a hop count, or a list of
   * addresses/CIDRs.
   */
  trustProxy: boolean | number | string[];
  /**
   * Origins besides the public URL's that `return_to` may lead to after sign-in (`LATCHKEY_RETURN_ORIGINS`), each as
   * `URL.origin` serializes it (lower-case, default port left out). See src/return-to.ts.
   */
  returnOrigins: string[];
  /**
   * `LATCHKEY_METRICS_ADDR`: where the separate metrics listener serves `/metrics` (Prometheus text format), or
   * `undefined`: no metrics at all (the default). Never on the main port, so a reverse proxy cannot expose it by accident.
   */
  metricsAddr: ListenAddress | undefined;
  /**
   * Audit events older than this many days are deleted by housekeeping (`LATCHKEY_AUDIT_RETENTION_DAYS`); `undefined`
   * (the default): kept forever.
   */
  auditRetentionDays: number | undefined;
  limits: Limits;
}

/** A host and port to listen on; `host` is an IPv6 address without brackets, an IPv4 address or a host name. */
export interface ListenAddress {
  host: string;
  port: number;
}

/** A configuration value that cannot be used. The message names the variable and what it expects. */
export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
    this.name = "ConfigError";
  }
}

type Env = Record<string, string | undefined>;

function read(env: Env, name: string): string | undefined {
  const value = env[name];
  return value === undefined || value.trim() === "" ? undefined : value.trim();
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = read(env, name);
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw)) throw new ConfigError(name, `expected a whole number from ${min} to ${max}, got "${raw}"`);
  const value = Number(raw);
  if (value < min || value > max) throw new ConfigError(name, `expected a whole number from ${min} to ${max}, got ${value}`);
  return value;
}

function url(name: string, raw: string, protocols: string[]): URL {
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    // The error line goes to logs: a password in the unparsable value stays out of it.
    throw new ConfigError(name, `expected a URL (${protocols.join(" or ")}), got "${raw.replace(/\/\/([^:/@]*):.*@/, "//$1:***@")}"`);
  }
  if (!protocols.includes(parsed.protocol.replace(/:$/, ""))) {
    throw new ConfigError(name, `expected a ${protocols.join(" or ")} URL, got "${parsed.protocol}"`);
  }
  return parsed;
}

/**
 * `LATCHKEY_RETURN_ORIGINS`: comma-separated http(s) origins, nothing but scheme, host and port (a trailing slash is
 * fine). No wildcards: every origin a sign-in may be sent back to is named.
 */
function returnOrigins(env: Env): string[] {
  const name = "LATCHKEY_RETURN_ORIGINS";
  const entries = (read(env, name) ?? "")
    .split(",")
    .map((v) => v.trim())
    .filter(Boolean);
  return entries.map((entry) => {
    const expected = `expected comma-separated origins such as https://app.example.com (http or https, no path, no wildcard), got "${entry}"`;
    let parsed: URL;
    try {
      parsed = new URL(entry);
    } catch {
      throw new ConfigError(name, expected);
    }
    const bare = parsed.pathname === "/" && !parsed.search && !parsed.hash && !parsed.username && !parsed.password && !/[?#]/.test(entry);
    if (!["http:", "https:"].includes(parsed.protocol) || !bare || parsed.hostname.includes("*")) throw new ConfigError(name, expected);
    return parsed.origin;
  });
}

/** A DNS label as cookies and host names allow it: letters, digits and inner hyphens, 1–63 characters. */
const DOMAIN_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * `LATCHKEY_COOKIE_DOMAIN`: a registrable-looking domain (at least two labels, a top-level label that is not all
 * digits, so no IP address), that the public URL's host is or is under, with an https public URL. Browsers drop a
 * cookie whose Domain does not cover the host that set it, and a cookie every subdomain receives must never travel
 * over plain http: both mistakes would otherwise show up only as sign-ins that silently do not stick.
 */
function cookieDomain(env: Env, publicUrl: URL): string | undefined {
  const raw = read(env, "LATCHKEY_COOKIE_DOMAIN");
  if (raw === undefined) return undefined;
  const domain = raw.toLowerCase();
  const labels = domain.split(".");
  const tld = labels[labels.length - 1] ?? "";
  if (domain.length > 253 || labels.length < 2 || !labels.every((label) => DOMAIN_LABEL.test(label)) || /^\d+$/.test(tld)) {
    throw new ConfigError(
      "LATCHKEY_COOKIE_DOMAIN",
      `expected a domain like example.com (no scheme, port, path or leading dot) that LATCHKEY_PUBLIC_URL's host is part of, got "${raw}"`,
    );
  }
  if (publicUrl.protocol !== "https:") {
    throw new ConfigError(
      "LATCHKEY_COOKIE_DOMAIN",
      `needs an https LATCHKEY_PUBLIC_URL (the session cookie goes to every host under ${domain} and must be Secure), got "${publicUrl.origin}"`,
    );
  }
  const host = publicUrl.hostname;
  if (host !== domain && !host.endsWith(`.${domain}`)) {
    throw new ConfigError(
      "LATCHKEY_COOKIE_DOMAIN",
      `LATCHKEY_PUBLIC_URL's host ${host} is not ${domain} or a subdomain of it, so browsers would refuse the cookie`,
    );
  }
  return domain;
}

const METRICS_ADDR = "LATCHKEY_METRICS_ADDR";

/** Hosts that listen on every interface: a port there collides with the same port on any address. */
const WILDCARD_HOSTS = new Set(["0.0.0.0", "::", ""]);

/**
 * `LATCHKEY_METRICS_ADDR`: `host:port` (`127.0.0.1:9464`, `[::1]:9464`, `0.0.0.0:9464`), a port of 1–65535 that is
 * not the main listener's. Unset or empty: no metrics listener.
 */
function metricsAddr(env: Env, main: ListenAddress): ListenAddress | undefined {
  const raw = read(env, METRICS_ADDR);
  if (raw === undefined) return undefined;
  const expected = `expected host:port such as 127.0.0.1:9464 or [::1]:9464 (port 1–65535), got "${raw}"`;
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(raw);
  if (!match) throw new ConfigError(METRICS_ADDR, expected);
  const host = match[1] ?? match[2] ?? "";
  const port = Number(match[3]);
  if (port < 1 || port > 65535 || host.startsWith("-") || host.startsWith(".")) throw new ConfigError(METRICS_ADDR, expected);
  const sameHost = host === main.host || WILDCARD_HOSTS.has(host) || WILDCARD_HOSTS.has(main.host);
  if (port === main.port && sameHost) {
    throw new ConfigError(
      METRICS_ADDR,
      `must not be the main listener's port (${main.host}:${main.port}): metrics are served on a listener of their own, got "${raw}"`,
    );
  }
  return { host, port };
}

/** The longest audit retention accepted: a hundred years is "forever" in all but name (and keeps the arithmetic exact). */
const MAX_AUDIT_RETENTION_DAYS = 36_500;

/**
 * `LATCHKEY_AUDIT_RETENTION_DAYS`: unset keeps audit events forever (the default); otherwise whole days, at least one.
 * Zero is refused rather than read as "forever" or "nothing": it would delete the log as it is written.
 */
function auditRetention(env: Env): number | undefined {
  const name = "LATCHKEY_AUDIT_RETENTION_DAYS";
  const raw = read(env, name);
  if (raw === undefined) return undefined;
  const days = /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
  if (!(days >= 1 && days <= MAX_AUDIT_RETENTION_DAYS)) {
    throw new ConfigError(
      name,
      `expected a whole number of days from 1 to ${MAX_AUDIT_RETENTION_DAYS} (unset keeps events forever), got "${raw}"`,
    );
  }
  return days;
}

const SECRET_KEY_BYTES = 32;
const SECRET_KEY_FILE = "secret.key";

function decodeSecretKey(name: string, raw: string): Buffer {
  const key = Buffer.from(raw, "base64");
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(raw) || key.length !== SECRET_KEY_BYTES) {
    throw new ConfigError(name, `expected ${SECRET_KEY_BYTES} random bytes in base64 (e.g. \`openssl rand -base64 32\`)`);
  }
  return key;
}

/**
 * The secret key: from `LATCHKEY_SECRET_KEY`; else, for SQLite only, from `<dataDir>/secret.key`, generated there on
 * the first start. PostgreSQL deployments run several instances that must share one key, so a generated per-machine
 * key would silently break them: there the variable is required.
 */
function loadSecretKey(env: Env, dataDir: string, usesPostgres: boolean): Buffer {
  const raw = read(env, "LATCHKEY_SECRET_KEY");
  if (raw !== undefined) return decodeSecretKey("LATCHKEY_SECRET_KEY", raw);
  if (usesPostgres) {
    throw new ConfigError(
      "LATCHKEY_SECRET_KEY",
      "required with PostgreSQL (every instance must share it): set it to 32 random bytes in base64, e.g. `openssl rand -base64 32`",
    );
  }
  const file = join(dataDir, SECRET_KEY_FILE);
  if (existsSync(file)) return decodeSecretKey(`LATCHKEY_SECRET_KEY (from ${file})`, readFileSync(file, "utf8").trim());
  // 0700 when we create it, like the key itself is 0600: the directory also holds the database and the outbox.
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const key = randomBytes(SECRET_KEY_BYTES);
  // 0600: the key decrypts every TOTP secret; nobody but the service user should read it.
  writeFileSync(file, key.toString("base64") + "\n", { mode: 0o600, flag: "wx" });
  return key;
}

/** Reads and validates the environment. Throws `ConfigError` naming the first bad variable. */
export function loadConfig(env: Env = process.env): Config {
  const port = integer(env, "PORT", 3000, 1, 65535);
  const host = read(env, "HOST") ?? "127.0.0.1";
  const publicUrl = url("LATCHKEY_PUBLIC_URL", read(env, "LATCHKEY_PUBLIC_URL") ?? `http://localhost:${port}`, ["http", "https"]);
  if (publicUrl.pathname !== "/" || publicUrl.search || publicUrl.hash) {
    throw new ConfigError(
      "LATCHKEY_PUBLIC_URL",
      `expected an origin without a path, e.g. https://auth.example.com, got "${publicUrl.href}"`,
    );
  }
  const sessionCookieDomain = cookieDomain(env, publicUrl);
  const dataDir = resolve(read(env, "LATCHKEY_DATA_DIR") ?? "./data");
  const databaseUrl = read(env, "DATABASE_URL");
  if (databaseUrl !== undefined) url("DATABASE_URL", databaseUrl, ["postgres", "postgresql"]);
  const redisUrl = read(env, "REDIS_URL");
  if (redisUrl !== undefined) url("REDIS_URL", redisUrl, ["redis", "rediss"]);
  const smtpUrl = read(env, "SMTP_URL");
  if (smtpUrl !== undefined) url("SMTP_URL", smtpUrl, ["smtp", "smtps"]);
  const productName = read(env, "LATCHKEY_PRODUCT_NAME") ?? "Latchkey";
  if (productName.length > 64 || /[:\p{Cc}]/u.test(productName)) {
    throw new ConfigError("LATCHKEY_PRODUCT_NAME", "expected at most 64 characters, without colons or control characters");
  }
  const mailFrom = read(env, "MAIL_FROM") ?? `${productName} <no-reply@${publicUrl.hostname}>`;
  if (!/^([^<>]*<[^\s@<>]+@[^\s@<>]+>|[^\s@<>]+@[^\s@<>]+)$/.test(mailFrom)) {
    throw new ConfigError("MAIL_FROM", `expected an address like "Latchkey <no-reply@example.com>", got "${mailFrom}"`);
  }
  const logLevel = read(env, "LOG_LEVEL") ?? "info";
  if (!["fatal", "error", "warn", "info", "debug", "trace", "silent"].includes(logLevel)) {
    throw new ConfigError("LOG_LEVEL", `expected one of fatal, error, warn, info, debug, trace, silent, got "${logLevel}"`);
  }
  const trustRaw = read(env, "LATCHKEY_TRUST_PROXY");
  let trustProxy: boolean | number | string[] = false;
  if (trustRaw !== undefined) {
    if (trustRaw === "true" || trustRaw === "false") trustProxy = trustRaw === "true";
    else if (/^\d{1,2}$/.test(trustRaw)) trustProxy = Number(trustRaw);
    else {
      const list = trustRaw
        .split(",")
        .map((v) => v.trim())
        .filter(Boolean);
      if (list.length === 0 || !list.every((v) => /^[0-9a-fA-F:.]+(\/\d{1,3})?$/.test(v))) {
        throw new ConfigError(
          "LATCHKEY_TRUST_PROXY",
          `expected true, false, a hop count, or comma-separated proxy addresses/CIDRs (e.g. 10.0.0.0/8), got "${trustRaw}"`,
        );
      }
      trustProxy = list;
    }
  }
  const allowedReturnOrigins = returnOrigins(env);
  const metrics = metricsAddr(env, { host, port });
  const auditRetentionDays = auditRetention(env);
  const limits: Limits = {
    ...defaultLimits,
    sessionIdleTimeoutSeconds: integer(env, "LATCHKEY_SESSION_IDLE_SECONDS", defaultLimits.sessionIdleTimeoutSeconds, 60, 30 * 24 * 3600),
    sessionAbsoluteTimeoutSeconds: integer(
      env,
      "LATCHKEY_SESSION_ABSOLUTE_SECONDS",
      defaultLimits.sessionAbsoluteTimeoutSeconds,
      60,
      90 * 24 * 3600,
    ),
    passwordResetTtlSeconds: integer(env, "LATCHKEY_PASSWORD_RESET_TTL_SECONDS", defaultLimits.passwordResetTtlSeconds, 5 * 60, 24 * 3600),
    shutdownSeconds: integer(env, "LATCHKEY_SHUTDOWN_SECONDS", defaultLimits.shutdownSeconds, 1, 600),
  };
  if (limits.sessionIdleTimeoutSeconds > limits.sessionAbsoluteTimeoutSeconds) {
    throw new ConfigError("LATCHKEY_SESSION_IDLE_SECONDS", "must not be longer than LATCHKEY_SESSION_ABSOLUTE_SECONDS");
  }
  const secretKey = loadSecretKey(env, dataDir, databaseUrl !== undefined);
  const previousSecretKeys = (read(env, "LATCHKEY_PREVIOUS_SECRET_KEYS") ?? "")
    .split(",")
    .map((k) => k.trim())
    .filter(Boolean)
    .map((k) => decodeSecretKey("LATCHKEY_PREVIOUS_SECRET_KEYS", k));
  return {
    port,
    host,
    publicUrl,
    dataDir,
    databaseUrl,
    redisUrl,
    smtpUrl,
    mailFrom,
    secretKey,
    previousSecretKeys,
    productName,
    secureCookies: publicUrl.protocol === "https:",
    cookieDomain: sessionCookieDomain,
    logLevel,
    trustProxy,
    returnOrigins: allowedReturnOrigins,
    metricsAddr: metrics,
    auditRetentionDays,
    limits,
  };
}
