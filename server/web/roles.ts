/**
 * What each console role may do. The API and the console check the same table.
 */
import type { Role } from '../store/collections.ts';

export const ROLES = ['admin', 'operator', 'auditor'] as const satisfies readonly Role[];

/** A kind of write; reading is open to every role. */
export type Permission = 'grants.write' | 'audit.export' | 'endpoints.write' | 'settings.write' | 'users.write';

const PERMISSIONS: Record<Role, readonly Permission[]> = {
  admin: ['grants.write', 'audit.export', 'endpoints.write', 'settings.write', 'users.write'],
  operator: ['grants.write'],
  auditor: ['audit.export'],
};

export const ROLE_LABEL: Record<Role, string> = {
  admin: 'Admin — everything, including policies and users',
  operator: 'Operator — create, revoke and resend grants',
  auditor: 'Auditor — read only, plus audit export',
};

export function can(role: Role, p: Permission): boolean {
  return PERMISSIONS[role].includes(p);
}

/** Everything a role may do, for templates (`{{#if may.grantsWrite}}`). */
export function mayFlags(role: Role) {
  return {
    grantsWrite: can(role, 'grants.write'),
    auditExport: can(role, 'audit.export'),
    endpointsWrite: can(role, 'endpoints.write'),
    settingsWrite: can(role, 'settings.write'),
    usersWrite: can(role, 'users.write'),
  };
}

/**
 * The permission an API write needs, by path under /api/v1. Writes not listed
 * need admin's 'settings.write' (the safe default for new routes).
 */
export function apiWritePermission(path: string): Permission {
  if (/^\/grants(\/[^/]+\/(revoke|resend))?\/?$/.test(path)) return 'grants.write';
  if (/^\/enrollment-tokens\/?$/.test(path)) return 'endpoints.write';
  return 'settings.write';
}
