/**
 * Who requested a grant, as the credentials email names them: a console user or API
 * token user by email, the configuration's admin token as "an administrator".
 * Actors are "admin", "user:<email>", "agent:<id>" or "system" (see store/audit.ts).
 */
export function requesterLabel(createdBy: string): string | undefined {
  if (createdBy === 'admin') return 'an administrator';
  const email = /^user:(.+)$/.exec(createdBy)?.[1];
  return email && email.length <= 320 && !/[\r\n]/.test(email) ? email : undefined;
}
