import type { Request, Response, Router } from 'express';
import { z } from 'zod';
import { setEndpointTags } from '../../commands/endpointTags.ts';
import { createEnrollmentToken } from '../../commands/enrollment.ts';
import { listEndpoints } from '../../commands/listEndpoints.ts';
import { ApiError, type FieldIssue } from '../../errors.ts';
import { validate } from '../../http/validate.ts';
import { endpointTagsSchema } from '../../schemas/endpoints.ts';
import { base, need, str, type Web } from '../page.ts';
import { render } from '../render.ts';

/** The server URL agents should use, as this browser reached it. */
const serverUrl = (req: Request) => `${req.get('x-forwarded-proto')?.split(',')[0]?.trim() || req.protocol}://${req.get('host')}`;

/** A refused tags form: whose, what was typed, why. */
interface TagsRefused {
  id: string;
  typed: string;
  errors: string[];
}

/** The tags field as typed: separated by commas or spaces. */
const splitTags = (typed: string) => typed.split(/[\s,]+/).filter(Boolean);

/** The API's `tags.3` issues as the form's one field: which tag, and why. */
const tagErrors = (issues: FieldIssue[], tags: string[]) =>
  issues.map((i) => {
    const n = /^tags\.(\d+)$/.exec(i.field)?.[1];
    return n === undefined ? i.message : `"${tags[Number(n)]}": ${i.message}`;
  });

/** Endpoints with their state and tags (admins set them), and a one-time enrollment token with the install command. */
export function endpointPages(r: Router, { ctx }: Web): void {
  const page = async (req: Request, res: Response, extra: { token?: { token: string; expiresAt: Date }; saved?: string; refused?: TagsRefused } = {}, status = 200) => {
    const { token, saved, refused } = extra;
    const endpoints = await listEndpoints(ctx);
    render(res, 'endpoints', {
      ...base(res, 'Endpoints', 'endpoints'),
      endpoints: endpoints.map((e) => ({
        ...e,
        tagsText: refused?.id === e.id ? refused.typed : e.tags.join(', '),
        tagErrors: refused?.id === e.id ? { tags: refused.errors } : {},
      })),
      saved,
      tagsRefused: Boolean(refused),
      token: token ? { ...token, command: `npm run agent -- install --server ${serverUrl(req)} --token=${token.token}` } : null,
    }, status);
  };
  r.get('/endpoints', (req, res) => page(req, res));
  r.post('/endpoints/enrollment-tokens', async (req, res) => {
    need(res, 'endpoints.write');
    await page(req, res, { token: await createEnrollmentToken(ctx, res.locals.actor) });
  });
  /** An endpoint's tags, as the API's schema and command take them (`PUT /api/v1/endpoints/:id/tags`). */
  r.post('/endpoints/:id/tags', async (req, res) => {
    need(res, 'endpoints.write');
    const id = validate(z.string().min(1).max(100), req.params.id);
    const typed = str(req.body.tags);
    const tags = splitTags(typed);
    try {
      const e = await setEndpointTags(ctx, id, validate(endpointTagsSchema, { tags }).tags, res.locals.actor);
      await page(req, res, { saved: `${e.hostname}: ${e.tags?.length ? `tagged ${e.tags.join(', ')}` : 'no tags'}.` });
    } catch (err) {
      if (!(err instanceof ApiError) || !err.fields.length) throw err;
      await page(req, res, { refused: { id, typed, errors: tagErrors(err.fields, tags) } }, 400);
    }
  });
}
