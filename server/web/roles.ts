/**
 * What each role may do, on the console and the API alike: this table is the one place that says
 * it. `read` is the console's and the API's view of grants, endpoints, settings and the audit
 * trail; a requester does not have it, and sees only their own requests (commands/requests.ts).
 */
import type { Role } from '../store/collections.ts';

export const ROLES = ['admin', 'operator', 'auditor', 'approver', 'requester'] as const satisfies readonly Role[];

export type Permission =
  | 'read'
  | 'grants.write'
  | 'audit.export'
  | 'endpoints.write'
  | 'settings.write'
  | 'users.write'
  /** See requests: everyone; a role without `read` sees only their own (commands/requests.ts). */
  | 'requests.read'
  /** File requests for oneself, follow and cancel them. */
  | 'requests.file'
  /** See every request and approve or deny them (never one's own). */
  | 'requests.decide';

const PERMISSIONS: Record<Role, readonly Permission[]> = {
  admin: ['read', 'grants.write', 'audit.export', 'endpoints.write', 'settings.write', 'users.write', 'requests.read', 'requests.file', 'requests.decide'],
  operator: ['read', 'grants.write', 'requests.read', 'requests.file'],
  auditor: ['read', 'audit.export', 'requests.read'],
  approver: ['read', 'requests.read', 'requests.file', 'requests.decide'],
  requester: ['requests.read', 'requests.file'],
};

export const ROLE_LABEL: Record<Role, string> = {
  admin: 'Admin — everything, including policies, request rules and users',
  operator: 'Operator — create, revoke and resend grants',
  auditor: 'Auditor — read only, plus audit export',
  approver: 'Approver — read, and approve or deny access requests',
  requester: 'Requester — asks for access and follows their own requests only',
};

export function can(role: Role, p: Permission): boolean {
  return PERMISSIONS[role].includes(p);
}

/** Everything a role may do, for templates (`{{#if may.grantsWrite}}`). */
export function mayFlags(role: Role) {
  return {
    read: can(role, 'read'),
    grantsWrite: can(role, 'grants.write'),
    auditExport: can(role, 'audit.export'),
    endpointsWrite: can(role, 'endpoints.write'),
    settingsWrite: can(role, 'settings.write'),
    usersWrite: can(role, 'users.write'),
    requestsFile: can(role, 'requests.file'),
    requestsDecide: can(role, 'requests.decide'),
  };
}

/**
 * The permission an API call needs, by method and path under /api/v1. Writes not listed need
 * admin's 'settings.write' (the safe default for new routes); reads not listed need 'read'.
 */
export function apiPermission(method: string, path: string): Permission {
  const read = ['GET', 'HEAD', 'OPTIONS'].includes(method);
  // Users and their account mappings: admins' alone, read or written (as the console's Users page).
  if (/^\/users(\/|$)/.test(path)) return 'users.write';
  if (read) return /^\/requests(\/[^/]+)?\/?$/.test(path) ? 'requests.read' : /^\/endpoints\/?$/.test(path) ? 'requests.file' : 'read';
  if (/^\/endpoints\/[^/]+\/tags\/?$/.test(path)) return 'endpoints.write';
  if (/^\/requests\/?$/.test(path)) return 'requests.file';
  if (/^\/requests\/[^/]+\/cancel\/?$/.test(path)) return 'requests.file';
  if (/^\/requests\/[^/]+\/(approve|deny)\/?$/.test(path)) return 'requests.decide';
  if (/^\/grants(\/[^/]+\/(revoke|resend))?\/?$/.test(path)) return 'grants.write';
  if (/^\/enrollment-tokens\/?$/.test(path)) return 'endpoints.write';
  return 'settings.write';
}
