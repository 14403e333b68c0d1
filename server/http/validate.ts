import type { z } from 'zod';
import { invalid, type FieldIssue } from '../errors.ts';

/** Parses with a zod schema or throws a 400 that names every bad field. */
export function validate<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  throw invalid(r.error.issues.flatMap(toFieldIssues));
}

function toFieldIssues(i: z.core.$ZodIssue): FieldIssue[] {
  if (i.code === 'unrecognized_keys') {
    return i.keys.map((k) => ({ field: [...i.path, k].join('.'), message: 'unknown field' }));
  }
  const field = i.path.join('.') || '(body)';
  const message = i.code === 'invalid_type' && i.input === undefined ? 'is required' : i.message;
  return [{ field, message }];
}
