/**
 * The admin console as a browser without JavaScript sees it: cookies kept per
 * client, forms posted url-encoded with the page's CSRF token, no redirects
 * followed. For tests against the real server.
 */
export interface Page {
  status: number;
  location: string | null;
  text: string;
}

export class ConsoleClient {
  private cookies = new Map<string, string>();

  constructor(private url: string) {}

  cookie(name: string): string | undefined {
    return this.cookies.get(name);
  }

  async request(method: string, path: string, form?: Record<string, string | string[]>, headers: Record<string, string> = {}): Promise<Page> {
    const body = form ? encodeForm(form) : undefined;
    const res = await fetch(`${this.url}${path}`, {
      method,
      redirect: 'manual',
      headers: {
        ...(this.cookies.size ? { cookie: [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ') } : {}),
        ...(body === undefined ? {} : { 'content-type': 'application/x-www-form-urlencoded' }),
        ...headers,
      },
      ...(body === undefined ? {} : { body }),
    });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq).trim();
      const value = pair!.slice(eq + 1).trim();
      if (/max-age=0(;|$)/i.test(c) || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    return { status: res.status, location: res.headers.get('location'), text: await res.text() };
  }

  get(path: string): Promise<Page> {
    return this.request('GET', path);
  }

  /** Posts a form with the CSRF token of the page at `from` (the session's token). */
  async post(path: string, fields: Record<string, string | string[]>, from = '/account'): Promise<Page> {
    const page = await this.get(from);
    const csrf = /name="_csrf" value="([^"]+)"/.exec(page.text)?.[1];
    if (!csrf) throw new Error(`no CSRF token on ${from} (status ${page.status})`);
    return this.request('POST', path, { _csrf: csrf, ...fields });
  }

  /** The login form, as a browser submits it (the double-submit CSRF cookie first). */
  async login(email: string, password: string): Promise<Page> {
    if (!this.cookies.has('jit_login_csrf')) await this.get('/login');
    return this.request('POST', '/login', { _csrf: this.cookies.get('jit_login_csrf') ?? '', email, password, next: '/' });
  }
}

function encodeForm(form: Record<string, string | string[]>): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(form)) for (const one of Array.isArray(v) ? v : [v]) p.append(k, one);
  return p.toString();
}

/** The text of every field error on a console page, by field. */
export function fieldErrors(html: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of html.matchAll(/<p class="field-error" id="err-[^"]+" data-field="([^"]+)">([^<]*)<\/p>/g)) out[m[1]!] = m[2]!;
  return out;
}
