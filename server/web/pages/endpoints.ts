import type { Request, Response, Router } from 'express';
import { createEnrollmentToken } from '../../commands/enrollment.ts';
import { base, need, type Web } from '../page.ts';
import { listEndpoints } from '../../commands/listEndpoints.ts';
import { render } from '../render.ts';

/** The server URL agents should use, as this browser reached it. */
const serverUrl = (req: Request) => `${req.get('x-forwarded-proto')?.split(',')[0]?.trim() || req.protocol}://${req.get('host')}`;

/** Endpoints with their state, and a one-time enrollment token with the install command. */
export function endpointPages(r: Router, { ctx }: Web): void {
  const page = async (req: Request, res: Response, token?: { token: string; expiresAt: Date }) => {
    render(res, 'endpoints', {
      ...base(res, 'Endpoints', 'endpoints'),
      endpoints: await listEndpoints(ctx),
      token: token ? { ...token, command: `npm run agent -- install --server ${serverUrl(req)} --token=${token.token}` } : null,
    });
  };
  r.get('/endpoints', (req, res) => page(req, res));
  r.post('/endpoints/enrollment-tokens', async (req, res) => {
    need(res, 'endpoints.write');
    await page(req, res, await createEnrollmentToken(ctx, res.locals.actor));
  });
}
