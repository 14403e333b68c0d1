import type { Response, Router } from 'express';
import { putRules, rulesDoc } from '../../commands/requestRules.ts';
import { RequestRules, RULE_ACTIONS } from '../../domain/rules.ts';
import { ApiError } from '../../errors.ts';
import { validate } from '../../http/validate.ts';
import { base, need, str, type Web } from '../page.ts';
import { render } from '../render.ts';

const pretty = (v: unknown) => JSON.stringify(v, null, 2);

/** "rule 2 (no servers), hostnames.0: …" for a RequestRules issue at "1.hostnames.0". */
function ruleIssue(field: string, message: string, parsed: unknown): string {
  const [index, ...rest] = field.split('.');
  const i = Number(index);
  if (!Number.isInteger(i) || !Array.isArray(parsed)) return `${field === '(body)' ? 'the list' : field}: ${message}`;
  const name = (parsed[i] as { name?: unknown } | undefined)?.name;
  return `rule ${i + 1}${typeof name === 'string' && name ? ` (${name})` : ''}${rest.length ? `, ${rest.join('.')}` : ''}: ${message}`;
}

/**
 * The request rules as JSON: read by every role that reads, edited by admins. The text is
 * checked with the rules' own schema (domain/rules.ts) and saved with putRules (a new version,
 * audited), as PUT /api/v1/request-rules does; nothing is saved while anything is wrong. The form
 * carries the version it was edited from: a save over someone else's newer version is refused.
 */
export function requestRulesPages(r: Router, { ctx }: Web): void {
  const page = async (res: Response, extra: { text?: string; errors?: Record<string, string[]>; saved?: string } = {}, status = 200) => {
    const d = await rulesDoc(ctx);
    render(res, 'requestRules', {
      ...base(res, 'Request rules', 'requestRules'),
      version: d.version,
      updatedBy: d.updatedBy ?? '',
      updatedAt: d.updatedAt ?? null,
      text: extra.text ?? pretty(d.rules),
      errors: extra.errors ?? {},
      saved: extra.saved ?? '',
      actions: RULE_ACTIONS,
      example: pretty([
        { name: 'no servers', hostnames: ['srv-*', 'prod-*'], action: 'deny' },
        { name: 'short workstation admin', hostnames: ['ws-*'], groups: ['Administrators'], maxMinutes: 60, action: 'auto-approve' },
        { name: 'long needs IT lead', action: 'require-approval', approvers: ['it-lead@corp.example'] },
      ]),
    }, status);
  };

  r.get('/request-rules', async (_req, res) => {
    need(res, 'read');
    await page(res);
  });

  r.post('/request-rules', async (req, res) => {
    need(res, 'settings.write');
    const text = str(req.body.rules);
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      return page(res, { text, errors: { rules: [`not valid JSON: ${(err as Error).message}`] } }, 400);
    }
    // The API's body ({"rules": [...]}) is taken too, as the docs show it.
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed) && 'rules' in parsed) parsed = (parsed as { rules: unknown }).rules;
    let rules;
    try {
      rules = validate(RequestRules, parsed);
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      return page(res, { text, errors: { rules: err.fields.map((i) => ruleIssue(i.field, i.message, parsed)) } }, 400);
    }
    const now = await rulesDoc(ctx);
    if (String(now.version) !== str(req.body.version)) {
      const by = now.updatedBy ? ` by ${now.updatedBy}` : '';
      return page(res, { text, errors: { rules: [`the rules changed meanwhile (now version ${now.version}${by}): nothing was saved; copy your text, reload and edit again`] } }, 409);
    }
    const saved = await putRules(ctx, rules, res.locals.actor);
    await page(res, { saved: `Saved as version ${saved.version} (${saved.rules.length} rule(s)).` });
  });
}
