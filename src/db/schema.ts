import type { Generated, Selectable } from "kysely";

/**
 * The one schema of Latchkey, for SQLite and PostgreSQL alike. Times are milliseconds since the epoch (integers,
 * `bigint` in PostgreSQL, parsed back to numbers). Ids are random text. Secrets are stored only as SHA-256 hashes
 * (`*_hash`) or encrypted (`*_encrypted`).
 */
export interface Database {
  accounts: AccountTable;
  users: UserTable;
  memberships: MembershipTable;
  invitations: InvitationTable;
  setup_tokens: SetupTokenTable;
  sessions: SessionTable;
  challenges: ChallengeTable;
  email_links: EmailLinkTable;
  attempt_counters: AttemptCounterTable;
  audit_events: AuditEventTable;
  totp_setups: TotpSetupTable;
  recovery_codes: RecoveryCodeTable;
  recovery_code_reveals: RecoveryCodeRevealTable;
  support_requests: SupportRequestTable;
  sso_connections: SsoConnectionTable;
  sso_domains: SsoDomainTable;
  sso_logins: SsoLoginTable;
  api_tokens: ApiTokenTable;
  oidc_models: OidcModelTable;
  oidc_signing_keys: OidcSigningKeyTable;
  oidc_clients: OidcClientTable;
  oidc_grants: OidcGrantTable;
  leases: LeaseTable;
  password_resets: PasswordResetTable;
  email_changes: EmailChangeTable;
}

export type TwoFactorPolicy = "email_link" | "auth_app_required";
export type TwoFactorMethod = "email_link" | "auth_app";
export type Role = "admin" | "member";
export type SignInMethod = "password" | "sso";

export interface AccountTable {
  id: string;
  name: string;
  two_factor_policy: TwoFactorPolicy;
  created_at: number;
}

export interface UserTable {
  id: string;
  /** Lower-cased, NFC-normalised: unique case-insensitively. */
  email: string;
  name: string;
  /** argon2id PHC string; null until the invitation is accepted, and for SSO-only users. */
  password_hash: string | null;
  two_factor_method: TwoFactorMethod;
  created_at: number;
  updated_at: number;
  /** The TOTP key, sealed (AES-256-GCM, bound to the user id); null unless the auth app is on. */
  totp_secret_sealed: Generated<string | null>;
  /** The newest accepted TOTP time step: a code of this step or older is refused (replay). */
  totp_last_step: Generated<number | null>;
  totp_enabled_at: Generated<number | null>;
  /** The recovery-code batch in force; codes of any other batch are void. */
  recovery_batch_id: Generated<string | null>;
  /** When the person last changed the address (confirmed from the new inbox); null if never. */
  email_changed_at: Generated<number | null>;
}

export interface MembershipTable {
  id: string;
  account_id: string;
  user_id: string;
  role: Role;
  sign_in_method: SignInMethod;
  created_at: number;
  last_sign_in_at: number | null;
}

export interface InvitationTable {
  id: string;
  account_id: string;
  email: string;
  role: Role;
  token_hash: string;
  created_by_user_id: string | null;
  created_at: number;
  expires_at: number;
  accepted_at: number | null;
  revoked_at: number | null;
}

export interface SetupTokenTable {
  id: string;
  token_hash: string;
  created_at: number;
  expires_at: number;
  used_at: number | null;
}

export interface SessionTable {
  id: string;
  token_hash: string;
  user_id: string;
  account_id: string;
  created_at: number;
  last_seen_at: number;
  /** Absolute end: sign-in time + the absolute timeout. */
  expires_at: number;
  /** When the person last proved a factor (password or second factor): gates sensitive changes. */
  fresh_proof_at: number;
  ip: string | null;
  user_agent: string | null;
  /** What finished the sign-in (`SignInProof`); null in sessions from before it was recorded. */
  sign_in_proof: Generated<SignInProof | null>;
  /** After SSO: the upstream provider's `amr` values, a JSON array of strings; null otherwise. */
  upstream_amr: Generated<string | null>;
}

/** What proved the person at the end of a sign-in: a password login's second factor, or the account's SSO provider. */
export type SignInProof = "email_link" | "auth_app" | "recovery_code" | "sso";

export interface ChallengeTable {
  id: string;
  /** Hash of the challenge cookie's value: the email link works only in the browser holding that cookie. */
  token_hash: string;
  user_id: string;
  created_at: number;
  expires_at: number;
  /** Set when the challenge turns into a session (or is ended): a challenge is redeemed once. */
  consumed_at: number | null;
  failed_attempts: Generated<number>;
  links_sent: Generated<number>;
  last_link_sent_at: number | null;
  ip: string | null;
  user_agent: string | null;
}

export interface EmailLinkTable {
  id: string;
  challenge_id: string;
  token_hash: string;
  created_at: number;
  expires_at: number;
  used_at: number | null;
  /** Set when a newer link for the same challenge was sent. */
  voided_at: number | null;
}

export interface AttemptCounterTable {
  key: string;
  count: number;
  /** The window ends here; a hit after it starts a new window. */
  reset_at: number;
}

export interface AuditEventTable {
  id: string;
  account_id: string | null;
  user_id: string | null;
  actor_user_id: string | null;
  type: string;
  ip: string | null;
  user_agent: string | null;
  /** JSON object with event-specific facts; never a secret. */
  detail: string;
  created_at: number;
}

export type Account = Selectable<AccountTable>;
export type User = Selectable<UserTable>;
export type Session = Selectable<SessionTable>;
export type Challenge = Selectable<ChallengeTable>;

export interface TotpSetupTable {
  user_id: string;
  secret_sealed: string;
  codes_acknowledged_at: number | null;
  created_at: number;
  expires_at: number;
}

export interface RecoveryCodeTable {
  id: string;
  user_id: string;
  batch_id: string;
  /** HMAC-SHA-256 of the normalised code under a key derived from the secret key. */
  code_hash: string;
  created_at: number;
  used_at: number | null;
}

export interface RecoveryCodeRevealTable {
  user_id: string;
  batch_id: string;
  codes_sealed: string;
  created_at: number;
  expires_at: number;
}

/**
 * unconfirmed → (owner confirms from their inbox) pending → (operator) approved | denied;
 * approved → (owner cancels) cancelled | (waiting period over) completed.
 */
export type SupportStatus = "unconfirmed" | "pending" | "approved" | "denied" | "cancelled" | "completed";

export interface SupportRequestTable {
  id: string;
  user_id: string;
  email: string;
  message: string;
  status: SupportStatus;
  confirm_token_hash: string;
  cancel_token_hash: string | null;
  created_at: number;
  confirm_expires_at: number;
  confirmed_at: number | null;
  decided_at: number | null;
  /** Who decided, as given to the CLI (defaults to the operating system user). */
  decided_by: string | null;
  decision_note: string | null;
  resets_at: number | null;
  completed_at: number | null;
  ip: string | null;
  user_agent: string | null;
}

/** An account's OpenID Connect provider. */
export interface SsoConnectionTable {
  account_id: string;
  /** The issuer identifier (https, or http on a loopback host), exactly as the provider's discovery document names it. */
  issuer: string;
  client_id: string;
  /** Sealed (AES-256-GCM, bound to the account id). */
  client_secret_sealed: string;
  created_at: number;
  updated_at: number;
}

/** An email domain (lower-case, ASCII) whose people sign in through the account's provider; each domain leads to one account. */
export interface SsoDomainTable {
  domain: string;
  account_id: string;
}

/** An authorization request in flight: single use, bound to the browser that started it. */
export interface SsoLoginTable {
  /** SHA-256 of the `state` parameter. */
  state_hash: string;
  /** SHA-256 of the `latchkey_sso` cookie set in the browser that started it. */
  browser_hash: string;
  account_id: string;
  /** The PKCE code verifier, sealed (bound to the state hash). */
  code_verifier_sealed: string;
  nonce: string;
  created_at: number;
  expires_at: number;
  used_at: number | null;
  ip: string | null;
  user_agent: string | null;
}

/** An operator API token (`latchkey api-token create`): the bearer credential of `/api/v1/admin/*`. */
export interface ApiTokenTable {
  id: string;
  /** The operator's label for it ("provisioning"), named in the audit events of its calls. */
  name: string;
  /** SHA-256 of the token (`lk_` + 256 random bits); the token itself is shown once and never stored. */
  token_hash: string;
  created_at: number;
  /** Written at most once a minute (`apiTokenTouchIntervalSeconds`). */
  last_used_at: number | null;
  /** Set by `latchkey api-token revoke`: the token is refused from then on. */
  revoked_at: number | null;
}

/** One instance of an oidc-provider model (session, interaction, grant, code, token …): its JSON payload and look-ups. */
export interface OidcModelTable {
  model: string;
  id: string;
  /** The library's payload, JSON. */
  payload: string;
  grant_id: string | null;
  user_code: string | null;
  /** A Session's fixed uid. */
  uid: string | null;
  /** Null: does not expire. */
  expires_at: number | null;
  consumed_at: number | null;
}

/** A signing key of the OpenID Provider. */
export interface OidcSigningKeyTable {
  kid: string;
  alg: string;
  /** The private JWK, sealed (AES-256-GCM under the secret key, bound to the kid). */
  private_jwk_sealed: string;
  created_at: number;
  /** The newest key whose time has come signs; a newer one retires it. */
  signs_from: number;
}

/** A relying party registered by the operator. */
export interface OidcClientTable {
  client_id: string;
  name: string;
  /** SHA-256 of the client secret (256 random bits); null for a public client (PKCE, no secret). */
  secret_hash: string | null;
  /** JSON array of strings. */
  redirect_uris: string;
  /** JSON array of strings. */
  post_logout_redirect_uris: string;
  backchannel_logout_uri: string | null;
  created_at: number;
}

/** A grant to a client and the Latchkey session it was made from: the client's tokens live as long as that session. */
export interface OidcGrantTable {
  grant_id: string;
  session_id: string;
  user_id: string;
  /** The account chosen at sign-in: the one the `account` scope describes. */
  account_id: string;
  client_id: string;
  /** The session id the client knows (ID token and logout token `sid`). */
  sid: string;
  created_at: number;
  /** Set when something other than the session's end (a password change) ends the grant. */
  ended_at: number | null;
}

/** A "Forgot your password?" link: single use, valid `passwordResetTtlSeconds`, in any browser. */
export interface PasswordResetTable {
  id: string;
  user_id: string;
  /** SHA-256 of the emailed token. */
  token_hash: string;
  created_at: number;
  expires_at: number;
  /** Set by the guarded UPDATE that redeems it: a link resets the password once. */
  used_at: number | null;
  /** Set when a newer link was asked for, the password changed, or too many wrong codes were entered with it. */
  voided_at: number | null;
  /** Second-factor tries made with this link (auth-app users), claimed before each check. */
  code_attempts: Generated<number>;
  ip: string | null;
  user_agent: string | null;
}

/**
 * A person's request to change their login's email address: pending until confirmed from the new inbox, cancelled
 * from the old one, voided by a newer request, or expired.
 */
export interface EmailChangeTable {
  id: string;
  user_id: string;
  /** The address when the change was asked for: the change applies only while the login still has it. */
  old_email: string;
  /** Normalised like every stored address (auth/emails.ts). */
  new_email: string;
  /** SHA-256 of the confirmation link's token (emailed to the new address). */
  token_hash: string;
  /** SHA-256 of the cancel link's token (emailed to the old address). */
  cancel_token_hash: string;
  created_at: number;
  expires_at: number;
  confirmed_at: number | null;
  cancelled_at: number | null;
  /** Set when a newer request of the same user replaced this one. */
  voided_at: number | null;
  ip: string | null;
  user_agent: string | null;
}

/** A named right to do one thing at a time across instances (e.g. housekeeping); see src/db/lease.ts. */
export interface LeaseTable {
  name: string;
  /** Who holds it: host, process and run, readable in the CLI's "held by" message. */
  holder: string;
  /** When the current holder took it (a run's start). */
  taken_at: number;
  /** The lease is free from then on; the holder renews it while it works, and sets it to the present when done. */
  expires_at: number;
}
