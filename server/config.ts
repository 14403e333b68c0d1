/**
 * Server configuration: config/default.json, then an optional JSON file named
 * by JIT_CONFIG, then environment variables for secrets and deployment values.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { GROUPS } from '../protocol/groups.ts';

export const ServerConfig = z
  .object({
    host: z.string(),
    port: z.number().int().min(0).max(65535),
    /** MongoDB URI; when absent the server runs an embedded FerretDB in dataDir. */
    mongodbUri: z.string().optional(),
    dataDir: z.string(),
    /** Bearer token for the admin API. */
    adminToken: z.string().min(16, 'adminToken must be at least 16 characters'),
    /** How long before access start the account is enabled. */
    leadTimeSeconds: z.number().min(0),
    maxDurationMinutes: z.number().positive(),
    /** How far ahead a grant may start (its end is then at most maxDurationMinutes later). */
    maxStartAheadDays: z.number().positive(),
    /** How far in the past a start may be (clock skew, slow forms). */
    startPastToleranceSeconds: z.number().min(0),
    /** After access end, how long the endpoint has to confirm deletion. */
    verifyGraceSeconds: z.number().positive(),
    verifyRetryMaxSeconds: z.number().positive(),
    schedulerProcessEvery: z.union([z.string(), z.number()]),
    longPollSeconds: z.number().positive(),
    enrollmentTokenTtlMinutes: z.number().positive(),
    bodyLimit: z.string(),
    /** A request's headers and body must arrive within this; agents' long-polls are not cut by it (see http/app.ts). */
    requestTimeoutSeconds: z.number().positive(),
    /**
     * A request that needs the database and has no answer this long after it arrived
     * whole gets 503 db.unavailable (long-polls and SMTP tests are exempt; see http/deadline.ts).
     */
    requestDeadlineSeconds: z.number().positive(),
    /** The Retry-After of a 503 db.unavailable. */
    retryAfterSeconds: z.number().int().positive(),
    /**
     * The driver's time limits (passed as they are; see db/connect.ts for why each).
     * `timeoutMS` is not among them: driver 7.8 made it a no-op.
     */
    db: z
      .object({
        serverSelectionTimeoutMS: z.number().int().positive(),
        connectTimeoutMS: z.number().int().positive(),
        socketTimeoutMS: z.number().int().positive(),
        waitQueueTimeoutMS: z.number().int().positive(),
      })
      .strict(),
    /**
     * elevate-account: accounts never elevated (names, matched without regard to case, on every
     * endpoint); and the guard of every Administrators grant (rogueAdmins: take a member added
     * during the window out, or only report it; allowedAdmins: members it leaves alone).
     */
    elevation: z
      .object({
        excludedAccounts: z.array(z.string().min(1).max(256)).max(500),
        rogueAdmins: z.enum(['remove', 'report']),
        allowedAdmins: z.array(z.string().min(1).max(256)).max(500),
        /** Warnings before an elevation ends, in seconds before the end (the person is told; the on-endpoint notices show them). */
        endWarningsSeconds: z.array(z.number().int().positive().max(86_400)).max(10),
      })
      .strict(),
    /**
     * Access requests (server/commands/requests.ts): a pending request expires after
     * expireAfterMinutes; whether a reason is required and its minimum length (SAP Privileges: 10);
     * the longest access a request may ask for, and the groups it may ask for.
     */
    requests: z
      .object({
        expireAfterMinutes: z.number().int().min(1).max(60 * 24 * 90),
        reasonRequired: z.boolean(),
        reasonMinLength: z.number().int().min(0).max(500),
        maxMinutes: z.number().int().min(1).max(60 * 24 * 90),
        groups: z.array(z.enum(GROUPS)).min(1).max(3),
      })
      .strict(),
    /** The console's address as people reach it (https://jit.corp.example): links in emails. Else the origin of `oidc.redirectUrl`. */
    publicUrl: z.url().optional(),
    /**
     * Sign-in with OpenID Connect (server/web/oidc.ts): the authorization code flow with PKCE.
     * `redirectUrl` is this server's /login/oidc/callback as the browser reaches it (registered
     * at the IdP). Users are matched by email; `roles` maps values of the `rolesClaim` claim to
     * roles (the highest wins); someone with none gets `defaultRole`, or is refused when it is null.
     */
    oidc: z
      .object({
        issuer: z.url(),
        clientId: z.string().min(1),
        clientSecret: z.string().min(1),
        redirectUrl: z.url(),
        scopes: z.string().default('openid email profile'),
        rolesClaim: z.string().min(1).default('groups'),
        roles: z.record(z.string(), z.enum(['admin', 'operator', 'auditor', 'approver', 'requester'])).default({}),
        defaultRole: z.enum(['admin', 'operator', 'auditor', 'approver', 'requester']).nullable().default('requester'),
        label: z.string().min(1).max(60).default('Sign in with SSO'),
      })
      .strict()
      .optional(),
    /** 32-byte key (64 hex chars or base64) that encrypts stored SMTP passwords. Never stored in the database. */
    secretKey: z.string().optional(),
    /** Folder whose email templates replace the built-in ones, file by file. */
    templatesDir: z.string().optional(),
  })
  .strict();
export type ServerConfig = z.infer<typeof ServerConfig>;

const readJson = (path: string | URL): unknown => JSON.parse(readFileSync(path, 'utf8'));

export function defaultConfig(): Omit<ServerConfig, 'adminToken'> {
  return readJson(new URL('../config/default.json', import.meta.url)) as Omit<ServerConfig, 'adminToken'>;
}

/** Loads the configuration for a real run; throws with every bad field named. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): ServerConfig {
  const file = env.JIT_CONFIG ? (readJson(env.JIT_CONFIG) as object) : {};
  const fromEnv = {
    ...(env.MONGODB_URI ? { mongodbUri: env.MONGODB_URI } : {}),
    ...(env.JIT_ADMIN_TOKEN ? { adminToken: env.JIT_ADMIN_TOKEN } : {}),
    ...(env.PORT ? { port: Number(env.PORT) } : {}),
    ...(env.JIT_DATA_DIR ? { dataDir: env.JIT_DATA_DIR } : {}),
    ...(env.JIT_SECRET_KEY ? { secretKey: env.JIT_SECRET_KEY } : {}),
    ...(env.JIT_TEMPLATES_DIR ? { templatesDir: env.JIT_TEMPLATES_DIR } : {}),
  };
  const parsed = ServerConfig.safeParse({ ...defaultConfig(), ...file, ...fromEnv });
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.') || '(config)'}: ${i.message}`);
    throw new Error(`invalid configuration:\n${lines.join('\n')}`);
  }
  return parsed.data;
}
