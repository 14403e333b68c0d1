/** Query filters that FerretDB and MongoDB both run (a regex scan: fine on small collections). */

export const escapeRegex = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** A string field equal to `s` in any letter case. */
export const sameText = (s: string) => ({ $regex: `^${escapeRegex(s)}$`, $options: 'i' });
