/**
 * The endpoint's fully qualified name for the credentials email's `ssh user@host`
 * hint, found the way `hostname -f` does: the name's address (getaddrinfo: /etc/hosts,
 * then DNS), then that address's name (getnameinfo). Looked up at send time, so a
 * machine that joins a domain later gets its new name.
 */
import { promises as dns } from 'node:dns';
import { isIP } from 'node:net';

/** The two resolver calls used (node:dns/promises by default; tests pass their own). */
export interface NameResolver {
  lookup(name: string): Promise<{ address: string }>;
  lookupService(address: string, port: number): Promise<{ hostname: string }>;
}

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$/;

/**
 * `name` made fully qualified, or undefined when no such name is known (within `ms`).
 * A name that already has a dot is kept as it is. The resolved name counts only when it
 * extends `name` (web-01 → web-01.corp.example): a reverse lookup answering "localhost"
 * or another machine's name is not this endpoint's name.
 */
export async function fqdnOf(name: string, resolver: NameResolver = dns, ms = 2000): Promise<string | undefined> {
  const valid = (n: string) => (HOSTNAME.test(n) && isIP(n) === 0 ? n : undefined);
  if (name.includes('.')) return valid(name.replace(/\.$/, ''));
  let timer: NodeJS.Timeout | undefined;
  try {
    const timeout = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), ms);
    });
    const lookup = (async () => {
      const { address } = await resolver.lookup(name);
      return (await resolver.lookupService(address, 0)).hostname.replace(/\.$/, '');
    })();
    const canonical = await Promise.race([lookup, timeout]);
    lookup.catch(() => {}); // a lookup still running after the timeout must not reject unheard
    if (canonical === undefined || !canonical.toLowerCase().startsWith(`${name.toLowerCase()}.`)) return undefined;
    return valid(canonical);
  } catch {
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}
