/**
 * Console settings that are about deployment, from the environment:
 * `JIT_COOKIE_SECURE` = `auto` (default: Secure when the request came over
 * https, directly or per X-Forwarded-Proto), `always` or `never`.
 */
export interface WebOptions {
  cookieSecure: 'auto' | 'always' | 'never';
  /** Idle timeout of a session. */
  sessionIdleMinutes: number;
  /** A session ends this long after login, busy or not. */
  sessionMaxHours: number;
  /** Failed logins in a row that lock an email. */
  maxFailedLogins: number;
  lockMinutes: number;
  /** Every login answer takes at least this long, right or wrong. */
  loginMinMs: number;
}

export function webOptions(env: NodeJS.ProcessEnv = process.env): WebOptions {
  const secure = env.JIT_COOKIE_SECURE;
  return {
    cookieSecure: secure === 'always' || secure === 'never' ? secure : 'auto',
    sessionIdleMinutes: 60,
    sessionMaxHours: 12,
    maxFailedLogins: 5,
    lockMinutes: 15,
    loginMinMs: 400,
  };
}
