// oidc-provider ships no types (and @types/oidc-provider is not installed): the part Latchkey uses, declared once for
// src/ and test/. Loose where the library is loose; every value read from it is checked where it matters.
declare module "oidc-provider" {
  import type { IncomingMessage, ServerResponse } from "node:http";

  /** What an adapter stores for a model instance: the library's payload. */
  export interface AdapterPayload {
    [key: string]: unknown;
    grantId?: string;
    userCode?: string;
    uid?: string;
    consumed?: unknown;
  }

  export interface Adapter {
    upsert(id: string, payload: AdapterPayload, expiresIn: number | undefined): Promise<void>;
    find(id: string): Promise<AdapterPayload | undefined>;
    findByUid(uid: string): Promise<AdapterPayload | undefined>;
    findByUserCode(userCode: string): Promise<AdapterPayload | undefined>;
    consume(id: string): Promise<void>;
    destroy(id: string): Promise<void>;
    revokeByGrantId(grantId: string): Promise<void>;
  }

  export interface InteractionResults {
    login?: { accountId: string; acr?: string; amr?: string[]; ts?: number; remember?: boolean };
    consent?: { grantId?: string };
    error?: string;
    error_description?: string;
    [key: string]: unknown;
  }

  export interface Interaction {
    uid: string;
    iat?: number;
    exp?: number;
    returnTo: string;
    prompt: { name: string; reasons: string[]; details: Record<string, unknown> };
    params: Record<string, unknown>;
    session?: { uid?: string; accountId?: string; acr?: string; amr?: string[] };
    grantId?: string;
    lastSubmission?: InteractionResults;
    result?: InteractionResults;
  }

  export interface GrantInstance {
    jti?: string;
    accountId: string;
    clientId: string;
    addOIDCScope(scope: string): void;
    addOIDCClaims(claims: string[]): void;
    save(): Promise<string>;
    destroy(): Promise<void>;
  }

  export interface SessionInstance {
    uid: string;
    jti: string;
    accountId?: string;
    authorizations?: Record<string, { sid?: string; grantId?: string }>;
    sidFor(clientId: string): string | undefined;
    grantIdFor(clientId: string): string | undefined;
    ensureClientContainer(clientId: string): void;
    destroy(): Promise<void>;
  }

  export interface ClientInstance {
    clientId: string;
    clientName?: string;
    clientSecret?: string;
    clientAuthMethod: string;
    backchannelLogoutUri?: string;
    backchannelLogout(sub: string, sid: string | undefined): Promise<void>;
    compareClientSecret(actual: string): Promise<boolean> | boolean;
    grantTypeAllowed(type: string): boolean;
    redirectUris: string[];
  }

  /** A token (or code) the provider loaded an account for: its kind, grant and account. */
  export interface TokenInstance {
    kind?: string;
    grantId?: string;
    accountId?: string;
    clientId?: string;
    sessionUid?: string;
  }

  export interface AccountClaims {
    sub: string;
    [claim: string]: unknown;
  }

  export interface Account {
    accountId: string;
    claims(use: string, scope: string, claims: unknown, rejected: string[]): Promise<AccountClaims> | AccountClaims;
  }

  export interface OIDCContext {
    route: string;
    client?: ClientInstance;
    session: SessionInstance;
    result?: InteractionResults;
    params?: Record<string, unknown>;
    provider: Provider;
    requestParamOIDCScopes: Set<string>;
    requestParamClaims: Set<string>;
    entities: Record<string, unknown>;
  }

  export interface CookieJar {
    get(name: string, options?: Record<string, unknown>): string | undefined;
    set(name: string, value: string | null, options?: Record<string, unknown>): void;
  }

  /** The Koa context oidc-provider passes to configuration functions and middleware. */
  export interface KoaContextWithOIDC {
    req: IncomingMessage;
    res: ServerResponse;
    method: string;
    path: string;
    host: string;
    ip: string;
    status: number;
    body: unknown;
    type: string;
    oidc: OIDCContext;
    cookies: CookieJar;
    /** A request header ("" when absent). */
    get(header: string): string;
    response: { get(header: string): string };
    set(header: string, value: string | string[]): void;
    append(header: string, value: string | string[]): void;
  }
  /** The name the SSO test helper uses. */
  export type ProviderContext = KoaContextWithOIDC;

  export type CheckResult = boolean | Promise<boolean>;

  export class Check {
    static readonly REQUEST_PROMPT: true;
    static readonly NO_NEED_TO_PROMPT: false;
    reason: string;
    constructor(
      reason: string,
      description: string,
      error: string,
      check: (ctx: KoaContextWithOIDC) => CheckResult,
      details?: (ctx: KoaContextWithOIDC) => Record<string, unknown> | undefined,
    );
  }

  export interface PromptChecks extends Array<Check> {
    get(reason: string): Check | undefined;
    remove(reason: string): void;
    add(check: Check, index?: number): void;
  }

  export class Prompt {
    name: string;
    checks: PromptChecks;
  }

  export interface Policy extends Array<Prompt> {
    get(name: string): Prompt | undefined;
  }

  export const interactionPolicy: {
    Check: typeof Check;
    Prompt: typeof Prompt;
    base(): Policy;
  };

  export class OIDCProviderError extends Error {
    error: string;
    error_description?: string;
    status: number;
    statusCode: number;
  }
  type ErrorClass = new (description?: string) => OIDCProviderError;
  export const errors: {
    OIDCProviderError: typeof OIDCProviderError;
    InvalidRequest: ErrorClass;
    InvalidGrant: ErrorClass;
    InvalidClient: ErrorClass;
    AccessDenied: ErrorClass;
    LoginRequired: ErrorClass;
    SessionNotFound: ErrorClass;
    UnmetAuthenticationRequirements: ErrorClass;
  };

  export interface Middleware {
    (ctx: KoaContextWithOIDC, next: () => Promise<void>): Promise<void>;
  }

  export class Provider {
    constructor(issuer: string, configuration: Record<string, unknown>);
    readonly issuer: string;
    proxy: boolean;
    callback(): (req: IncomingMessage, res: ServerResponse) => void;
    use(middleware: Middleware): this;
    on(event: string, listener: (...args: never[]) => void): this;
    interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<Interaction>;
    interactionResult(
      req: IncomingMessage,
      res: ServerResponse,
      result: InteractionResults,
      options?: { mergeWithLastSubmission?: boolean },
    ): Promise<string>;
    interactionFinished(
      req: IncomingMessage,
      res: ServerResponse,
      result: InteractionResults,
      options?: { mergeWithLastSubmission?: boolean },
    ): Promise<void>;
    Grant: {
      new (input: { accountId: string; clientId: string }): GrantInstance;
      find(id: string): Promise<GrantInstance | undefined>;
    };
    Client: {
      find(id: string): Promise<ClientInstance | undefined>;
      prototype: ClientInstance;
    };
    Session: {
      findByUid(uid: string): Promise<SessionInstance | undefined>;
    };
  }
  export default Provider;
}
