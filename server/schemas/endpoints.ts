import { z } from 'zod';
import { MAX_TAGS, TAG, TAG_RULE } from '../domain/tags.ts';

/** An endpoint named in a path: its id, or its hostname. */
export const endpointRefSchema = z.strictObject({ id: z.string().trim().min(1).max(253) });

/**
 * `PUT /api/v1/endpoints/:id/tags`: the endpoint's whole tag list (an empty one clears it).
 * Tags are lower-cased and kept once each, in the order given.
 */
export const endpointTagsSchema = z.strictObject({
  tags: z
    .array(
      z
        .string({ error: 'a tag is a string' })
        .trim()
        .toLowerCase()
        .regex(TAG, `a tag is ${TAG_RULE}`),
      { error: 'a list of tags' },
    )
    .max(MAX_TAGS, `at most ${MAX_TAGS} tags`)
    .transform((tags) => [...new Set(tags)]),
});
export type EndpointTagsInput = z.infer<typeof endpointTagsSchema>;
