/**
 * Every path Latchkey serves, named once. Routes register these patterns; views, redirects and emails build their
 * links with `pathTo` / `urlTo`, never by pasting text into a string.
 *
 * Why: a link built from request text (`/support/confirm/${token}`) let a crafted token such as
 * `..%2F..%2Fsettings%2Fteam%2Fmembers%2FID%2Fremove` turn a harmless page's form into a signed form aimed at another
 * route. Here every parameter becomes exactly one path segment: percent-encoded, and refused outright when it is
 * empty or a dot segment (browsers resolve `..`, `.%2e` and `%2E%2E` alike, so encoding alone is not enough).
 * Pages must still check their parameter before drawing anything; this is the second line.
 */
export const routes = {
  home: "/",
  healthz: "/healthz",
  readyz: "/readyz",

  login: "/login",
  loginEmail: "/login/email",
  loginEmailResend: "/login/email/resend",
  loginEmailLink: "/login/email/:token",
  loginCode: "/login/code",
  loginRecovery: "/login/recovery",
  loginSso: "/login/sso",
  loginContinue: "/login/continue",
  forgotPassword: "/login/forgot",
  passwordReset: "/login/reset/:token",
  ssoCallback: "/sso/callback",
  logout: "/logout",

  invitation: "/invite/:token",
  setup: "/setup/:token",

  support: "/support",
  supportConfirm: "/support/confirm/:token",
  supportCancel: "/support/cancel/:token",

  accounts: "/accounts",
  accountsSwitch: "/accounts/switch",
  help: "/help",

  settings: "/settings",
  profile: "/settings/profile",
  password: "/settings/password",
  confirmPassword: "/settings/confirm-password",
  sessions: "/settings/sessions",
  sessionSignOut: "/settings/sessions/:id/sign-out",
  sessionsSignOutOthers: "/settings/sessions/sign-out-others",
  email: "/settings/email",
  emailWithdraw: "/settings/email/withdraw",
  emailConfirm: "/settings/email/confirm/:token",
  emailCancel: "/settings/email/cancel/:token",
  twoFactor: "/settings/two-factor",
  twoFactorSetup: "/settings/two-factor/setup",
  twoFactorSetupCodesSaved: "/settings/two-factor/setup/codes-saved",
  twoFactorSetupConfirm: "/settings/two-factor/setup/confirm",
  twoFactorDisable: "/settings/two-factor/disable",
  recoveryCodes: "/settings/two-factor/recovery-codes",
  recoveryCodesDone: "/settings/two-factor/recovery-codes/done",
  recoveryCodesText: "/settings/two-factor/recovery-codes.txt",
  recoveryCodesPrint: "/settings/two-factor/recovery-codes/print",
  team: "/settings/team",
  teamInvitations: "/settings/team/invitations",
  teamInvitationResend: "/settings/team/invitations/:id/resend",
  teamInvitationRevoke: "/settings/team/invitations/:id/revoke",
  teamMemberRole: "/settings/team/members/:userId/role",
  teamMemberRemove: "/settings/team/members/:userId/remove",
  security: "/settings/security",
  securityPolicy: "/settings/security/policy",
  audit: "/settings/audit",

  devMail: "/dev/mail",
  devMailMessage: "/dev/mail/:file",
  assetCopyCodes: "/assets/copy-codes.js",
  assetPrint: "/assets/print.js",

  apiLogin: "/api/v1/login",
  apiLoginEmailLink: "/api/v1/login/email-link",
  apiLoginCode: "/api/v1/login/code",
  apiLoginRecoveryCode: "/api/v1/login/recovery-code",
  apiLoginSso: "/api/v1/login/sso",
  apiPasswordReset: "/api/v1/password-reset",
  apiPasswordResetConfirm: "/api/v1/password-reset/confirm",
  apiSession: "/api/v1/session",
  apiSessionAccount: "/api/v1/session/account",
  apiLogout: "/api/v1/logout",
  apiSessions: "/api/v1/sessions",
  apiSessionById: "/api/v1/sessions/:id",
  apiEmailChange: "/api/v1/email-change",
  apiVerify: "/api/v1/verify",
  apiTwoFactor: "/api/v1/two-factor",
  apiAccounts: "/api/v1/accounts",
  apiTeamMembers: "/api/v1/team/members",
  apiTeamMember: "/api/v1/team/members/:userId",
  apiTeamInvitations: "/api/v1/team/invitations",
  apiTeamInvitation: "/api/v1/team/invitations/:id",
  apiTeamInvitationResend: "/api/v1/team/invitations/:id/resend",
  apiPolicy: "/api/v1/policy",
  apiAudit: "/api/v1/audit",
  apiAdminAccounts: "/api/v1/admin/accounts",
  apiAdminAccount: "/api/v1/admin/accounts/:id",
  apiAdminAccountInvitations: "/api/v1/admin/accounts/:id/invitations",
  apiAdminAccountMember: "/api/v1/admin/accounts/:id/members/:userId",
  apiOpenApi: "/api/v1/openapi.json",

  // OpenID Provider. Served by oidc-provider itself (src/http/routes/oidc.ts hands these over untouched) …
  oidcDiscovery: "/.well-known/openid-configuration",
  oauthDiscovery: "/.well-known/oauth-authorization-server",
  oidcAuthorization: "/oidc/auth",
  oidcAuthorizationResume: "/oidc/auth/:uid",
  oidcToken: "/oidc/token",
  oidcUserinfo: "/oidc/userinfo",
  oidcJwks: "/oidc/jwks",
  oidcIntrospection: "/oidc/token/introspection",
  oidcRevocation: "/oidc/token/revocation",
  oidcEndSession: "/oidc/session/end",
  oidcEndSessionConfirm: "/oidc/session/end/confirm",
  oidcEndSessionSuccess: "/oidc/session/end/success",
  // … and the sign-in it sends people to, which is Latchkey's own (Fastify routes).
  oidcInteraction: "/oidc/interaction/:uid",
  oidcInteractionReauth: "/oidc/interaction/:uid/reauth",
} as const;

export type RouteName = keyof typeof routes;

/**
 * The one path of the separate metrics listener (`LATCHKEY_METRICS_ADDR`, src/http/metrics-listener.ts). Not in
 * `routes`: the main app never serves it, and a reverse proxy must never be told to route it.
 */
export const metricsPath = "/metrics";

/** The `:name` parameters of a path pattern, as a union of names. */
type ParamNames<P extends string> = P extends `${string}:${infer Name}/${infer Rest}`
  ? Name | ParamNames<`/${Rest}`>
  : P extends `${string}:${infer Name}`
    ? Name
    : never;

/** Query values; `undefined` leaves the key out. */
export type Query = Readonly<Record<string, string | undefined>>;

/** A route with parameters needs all of them; one without takes none. Either may add a query. */
export type PathArgs<N extends RouteName> = [ParamNames<(typeof routes)[N]>] extends [never]
  ? [params?: Readonly<Record<string, never>>, query?: Query]
  : [params: Readonly<Record<ParamNames<(typeof routes)[N]>, string>>, query?: Query];

/** Thrown for a parameter no page may put in a path: a programming error, since pages check their input first. */
export class UnsafePathSegmentError extends Error {
  constructor(name: string) {
    super(`Refusing to build a path: parameter "${name}" is empty or a dot segment.`);
  }
}

const DOT_SEGMENT = /^(?:\.|%2e){1,2}$/i;

/** One path segment: percent-encoded (so `/`, `?`, `#`, `%`, `\` and non-ASCII stay inside it), never `.` or `..`. */
function pathSegment(name: string, value: string): string {
  if (value === "" || DOT_SEGMENT.test(value)) throw new UnsafePathSegmentError(name);
  return encodeURIComponent(value);
}

function withQuery(path: string, query: Query | undefined): string {
  if (!query) return path;
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) if (value !== undefined) search.append(key, value);
  const text = search.toString();
  return text ? `${path}?${text}` : path;
}

/** The path of a named route, e.g. `pathTo("supportConfirm", { token })` → `/support/confirm/<encoded token>`. */
export function pathTo<N extends RouteName>(name: N, ...[params, query]: PathArgs<N>): string {
  const values = (params ?? {}) as Readonly<Record<string, string>>;
  const { head, parts } = templateOf(name);
  let path = head;
  for (const [key, after] of parts) {
    const value = values[key];
    if (value === undefined) throw new UnsafePathSegmentError(key);
    path += pathSegment(key, value) + after;
  }
  return withQuery(path, query);
}

/**
 * A route split once into its text before the first parameter, then each parameter's name with the text after it
 * (pages link to routes hundreds of times each: a page of 100 team members has 200 links, issue 10).
 */
interface Template {
  head: string;
  parts: ReadonlyArray<readonly [key: string, after: string]>;
}

const templates = new Map<RouteName, Template>();

function templateOf(name: RouteName): Template {
  let template = templates.get(name);
  if (template === undefined) {
    const pieces = routes[name].split(/:([A-Za-z]+)/);
    const parts: (readonly [string, string])[] = [];
    for (let i = 1; i < pieces.length; i += 2) parts.push([pieces[i] ?? "", pieces[i + 1] ?? ""]);
    template = { head: pieces[0] ?? "", parts };
    templates.set(name, template);
  }
  return template;
}

/** The absolute URL of a named route under the public origin: the only way a link is put in an email. */
export function urlTo<N extends RouteName>(publicUrl: URL, name: N, ...args: PathArgs<N>): string {
  return new URL(pathTo(name, ...args), publicUrl.origin).href;
}
