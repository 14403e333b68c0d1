/**
 * Handlebars views: every `views/*.hbs` is compiled once at start, partials
 * from `views/partials/`, and each page is wrapped in `layout.hbs`.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Response } from 'express';
import Handlebars from 'handlebars';

const DIR = path.join(import.meta.dirname, 'views');
const hb = Handlebars.create();

hb.registerHelper('eq', (a: unknown, b: unknown) => a === b);
/** A date as "2025-01-31 14:05:09 UTC" in a <time> element that the page script shows in local time. */
hb.registerHelper('time', (d: unknown) => {
  if (!(d instanceof Date) && typeof d !== 'string') return '';
  const iso = new Date(d).toISOString();
  return new hb.SafeString(`<time datetime="${iso}">${iso.slice(0, 19).replace('T', ' ')} UTC</time>`);
});

for (const f of readdirSync(path.join(DIR, 'partials'))) {
  if (f.endsWith('.hbs')) hb.registerPartial(f.slice(0, -4), readFileSync(path.join(DIR, 'partials', f), 'utf8'));
}
const views = new Map(
  readdirSync(DIR)
    .filter((f) => f.endsWith('.hbs'))
    .map((f) => [f.slice(0, -4), hb.compile(readFileSync(path.join(DIR, f), 'utf8'), { strict: false })]),
);

function view(name: string): HandlebarsTemplateDelegate {
  const v = views.get(name);
  if (!v) throw new Error(`no view ${name}`);
  return v;
}

/** What every page gets: who is signed in, what they may do, the CSRF token. */
export interface PageBase {
  title: string;
  user?: { email: string; role: string };
  may?: Record<string, boolean>;
  csrf?: string;
  /** Section of the navigation to highlight. */
  nav?: string;
  /** Reload the page every N seconds when scripts are off (live pages). */
  refreshSeconds?: number;
}

export function render(res: Response, name: string, model: PageBase & Record<string, unknown>, status = 200): void {
  const t0 = process.hrtime.bigint();
  const body = view(name)(model);
  const html = view('layout')({ ...model, body });
  res.status(status).type('html').set('Server-Timing', `render;dur=${Number(process.hrtime.bigint() - t0) / 1e6}`).send(html);
}
