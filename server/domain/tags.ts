/**
 * Endpoint tags: short labels an admin gives endpoints (`prod`, `finance`, `kiosk`) that request
 * rules can match (domain/rules.ts). Stored lower-cased; rules match them in any letter case.
 */
export const TAG = /^[a-z0-9._-]{1,40}$/;
export const MAX_TAGS = 20;
export const TAG_RULE = '1–40 characters of a–z, 0–9, ".", "_" and "-"';

/** Whether two tags are the same (tags ignore letter case). */
export const sameTag = (a: string, b: string): boolean => a.toLowerCase() === b.toLowerCase();
