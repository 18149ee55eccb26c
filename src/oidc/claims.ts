import type { AccountClaims } from "oidc-provider";
import type { Role, SignInProof } from "../db/schema.js";

/**
 * What Latchkey tells a client about the person and how they signed in.
 *
 * Claims: `sub` is the user id (stable, never reused, the same for every client), `email` (always verified: an
 * invitation or the SSO provider proved it), `name`; the scope `account` adds the account chosen at sign-in
 * (`account_id`, `account_name`) and the person's `role` in it.
 *
 * `amr` (RFC 8176) names the methods used, `acr` the level reached:
 *
 * | sign-in                          | amr                            | acr                     |
 * | -------------------------------- | ------------------------------ | ----------------------- |
 * | password + emailed link          | pwd                            | urn:latchkey:loa:email  |
 * | password + auth app              | pwd, otp, mfa                  | urn:latchkey:loa:app    |
 * | password + recovery code         | pwd, otp, mfa                  | urn:latchkey:loa:app    |
 * | single sign-on                   | ext, then the provider's amr   | urn:latchkey:loa:sso    |
 *
 * The emailed link adds no amr value and no `mfa`: it is not an authenticator (NIST SP 800-63B §5.1.3.1 excludes
 * email from out-of-band authentication) and RFC 8176 registers no value for it; the acr says what happened. A recovery
 * code is the auth app's one-time backup, so it counts as the app.
 */

export const ACR = {
  email: "urn:latchkey:loa:email",
  app: "urn:latchkey:loa:app",
  sso: "urn:latchkey:loa:sso",
} as const;
export type Acr = (typeof ACR)[keyof typeof ACR];
export const ACR_VALUES: readonly Acr[] = [ACR.email, ACR.app, ACR.sso];

export function isAcr(value: string): value is Acr {
  return (ACR_VALUES as readonly string[]).includes(value);
}

export function acrFor(proof: SignInProof): Acr {
  switch (proof) {
    case "email_link":
      return ACR.email;
    case "auth_app":
    case "recovery_code":
      return ACR.app;
    case "sso":
      return ACR.sso;
  }
}

export function amrFor(proof: SignInProof, upstreamAmr: readonly string[]): string[] {
  switch (proof) {
    case "email_link":
      return ["pwd"];
    case "auth_app":
    case "recovery_code":
      return ["pwd", "otp", "mfa"];
    case "sso":
      return [...new Set(["ext", ...upstreamAmr])];
  }
}

/** Whether a sign-in at `acr` meets a client's `acr_values` (its acceptable levels): the app level covers the email level. */
export function acrSatisfies(acr: Acr, requested: readonly Acr[]): boolean {
  if (requested.length === 0 || requested.includes(acr)) return true;
  return acr === ACR.app && requested.includes(ACR.email);
}

/** Which claims each scope releases (oidc-provider's `claims` configuration). */
export const CLAIMS_BY_SCOPE = {
  // acr, amr and auth_time in every ID token (the library releases them only when asked for, by default): clients
  // decide on them, and the step-up (acr_values) is worth nothing if the answer does not say what happened.
  openid: ["sub", "acr", "amr", "auth_time"],
  email: ["email", "email_verified"],
  profile: ["name"],
  account: ["account_id", "account_name", "role"],
  sid: null,
  iss: null,
} as const;

export const SCOPES = ["openid", "offline_access", "email", "profile", "account"] as const;

export interface ClaimSource {
  userId: string;
  email: string;
  name: string;
  accountId: string;
  accountName: string;
  role: Role;
}

/** Every claim the person has; oidc-provider releases those the granted scopes name. */
export function claimsOf(source: ClaimSource): AccountClaims {
  return {
    sub: source.userId,
    email: source.email,
    email_verified: true,
    name: source.name,
    account_id: source.accountId,
    account_name: source.accountName,
    role: source.role,
  };
}
