/**
 * Sign-in with OpenID Connect: the authorization code flow with PKCE, through openid-client.
 *
 *   GET /login/oidc           a new transaction (state, nonce, PKCE verifier) stored under the
 *                             sha256 of a random browser cookie, then a redirect to the IdP
 *   GET /login/oidc/callback  the transaction taken (once) by that cookie; openid-client checks
 *                             the state, exchanges the code with the verifier, and checks the ID
 *                             token: signature (the IdP's JWKS), issuer, audience, expiry, nonce.
 *                             Then the user, matched by email (users.ts ssoUser), and a session.
 *
 * The transaction cookie is SameSite=Lax (it must come back on the IdP's redirect, a top-level
 * navigation from another site) and lives 10 minutes. The session cookie stays Strict, so the
 * callback answers with a page that moves on by itself: a redirect would still count as the
 * IdP's navigation, and the browser would not send a Strict cookie with it.
 */
import type { Request, Response } from 'express';
import * as client from 'openid-client';
import type { ServerConfig } from '../config.ts';
import type { Ctx } from '../context.ts';
import { hashToken, newToken } from '../secrets.ts';
import type { Role } from '../store/collections.ts';
import type { WebOptions } from './options.ts';
import { readCookie, setCookie } from './sessions.ts';

type OidcConfig = NonNullable<ServerConfig['oidc']>;

const TX_COOKIE = 'jit_oidc';
const TX_SECONDS = 600;
/** Highest first: someone in several mapped groups gets the most capable role. */
const ROLE_ORDER: readonly Role[] = ['admin', 'operator', 'approver', 'auditor', 'requester'];

/** Why a sign-in was refused, for the person (a clear page) and the audit trail. */
export class SsoRefused extends Error {}

const discovered = new Map<string, Promise<client.Configuration>>();

/** The IdP's metadata, fetched once per process (again after a failure). Plain http only on loopback (tests). */
function configuration(o: OidcConfig): Promise<client.Configuration> {
  const key = `${o.issuer}|${o.clientId}`;
  let c = discovered.get(key);
  if (!c) {
    const loopback = /^http:\/\/(127\.0\.0\.1|localhost|\[::1\])(:\d+)?(\/|$)/.test(o.issuer);
    // enableNonRepudiationChecks: the ID token's signature is checked against the IdP's keys even
    // though it comes straight from the token endpoint (where the spec lets TLS stand in for it).
    const execute = [client.enableNonRepudiationChecks, ...(loopback ? [client.allowInsecureRequests] : [])];
    c = client.discovery(new URL(o.issuer), o.clientId, o.clientSecret, undefined, { execute });
    c.catch(() => discovered.delete(key));
    discovered.set(key, c);
  }
  return c;
}

/** Starts a sign-in: the transaction stored, the browser sent to the IdP. */
export async function startSso(ctx: Ctx, o: OidcConfig, opts: WebOptions, req: Request, res: Response, next: string): Promise<void> {
  const config = await configuration(o);
  const codeVerifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const id = newToken('oidc');
  await ctx.c.oidcLogins.deleteMany({ expiresAt: { $lt: new Date() } });
  await ctx.c.oidcLogins.insertOne({ _id: hashToken(id), state, nonce, codeVerifier, next, expiresAt: new Date(Date.now() + TX_SECONDS * 1000) });
  setCookie(req, res, opts, TX_COOKIE, id, TX_SECONDS, 'Lax');
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: o.redirectUrl, scope: o.scopes, state, nonce, code_challenge: await client.calculatePKCECodeChallenge(codeVerifier), code_challenge_method: 'S256',
  });
  res.redirect(303, url.href);
}

/** What the IdP says of the person, checked: the email and the role the claims give. */
export interface SsoIdentity {
  email: string;
  /** From the claims (`mapped`), else the configured default; null: no role for this person. */
  role: Role | null;
  mapped: boolean;
  /** The `rolesClaim` claim's values (request rules match them as `group:<value>`). */
  groups: string[];
  subject: string;
}

/**
 * Finishes a sign-in: the transaction taken once, the code exchanged, the ID token checked.
 * Throws SsoRefused with the reason for anything not right.
 */
export async function finishSso(ctx: Ctx, o: OidcConfig, opts: WebOptions, req: Request, res: Response): Promise<{ identity: SsoIdentity; next: string }> {
  const cookie = readCookie(req, TX_COOKIE);
  setCookie(req, res, opts, TX_COOKIE, '', 0, 'Lax');
  if (!cookie) throw new SsoRefused('the sign-in expired or was started in another browser: start again');
  const tx = await ctx.c.oidcLogins.findOneAndDelete({ _id: hashToken(cookie) });
  if (!tx || tx.expiresAt < new Date()) throw new SsoRefused('the sign-in expired or was used already: start again');
  const config = await configuration(o);
  // The URL the IdP sent the browser to: this server's redirect URL with the query it carried.
  const current = new URL(o.redirectUrl);
  current.search = new URL(req.originalUrl, 'http://x').search;
  let tokens: client.TokenEndpointResponse & client.TokenEndpointResponseHelpers;
  try {
    tokens = await client.authorizationCodeGrant(config, current, { pkceCodeVerifier: tx.codeVerifier, expectedState: tx.state, expectedNonce: tx.nonce, idTokenExpected: true });
  } catch (err) {
    throw new SsoRefused(`the identity provider's answer was refused: ${(err as Error).message}`);
  }
  const claims = tokens.claims();
  if (!claims) throw new SsoRefused('no ID token');
  const email = typeof claims.email === 'string' ? claims.email.trim().toLowerCase() : '';
  if (!email) throw new SsoRefused('the identity provider gave no email (ask for the "email" scope)');
  if (claims.email_verified === false) throw new SsoRefused(`the identity provider has not verified ${email}`);
  const mapped = mappedRole(o, claims[o.rolesClaim]);
  return { identity: { email, role: mapped ?? o.defaultRole, mapped: mapped !== null, groups: claimValues(claims[o.rolesClaim]), subject: String(claims.sub) }, next: tx.next };
}

const claimValues = (claim: unknown): string[] => (Array.isArray(claim) ? claim.map(String) : typeof claim === 'string' ? [claim] : []).slice(0, 200);

/** The most capable role the claim's values map to, or null. */
export function mappedRole(o: Pick<OidcConfig, 'roles'>, claim: unknown): Role | null {
  const mapped = claimValues(claim).flatMap((v) => (o.roles[v] ? [o.roles[v]] : []));
  return ROLE_ORDER.find((r) => mapped.includes(r)) ?? null;
}
