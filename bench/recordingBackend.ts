/**
 * An AccountBackend that keeps accounts in memory and records when each
 * primitive ran. Only the OS is simulated: the policy (GrantRunner), the state
 * file, the daemon loops and the HTTP client are the agent's real code.
 */
import type { Group } from '../protocol/groups.ts';
import { AccountError, assertValidName, type AccountBackend, type AccountInfo, type CreateAccountSpec, type LogoffResult } from '../agent/os/backend.ts';

export type BackendEventKind = 'created' | 'enabled' | 'deleted';
export interface BackendEvent {
  grantId: string;
  kind: BackendEventKind;
  /** ms since epoch, when the primitive completed. */
  at: number;
}

interface Account {
  info: AccountInfo;
  grantId: string;
}

let nextUid = 2_000_000;

export class RecordingBackend implements AccountBackend {
  readonly os = 'linux';
  readonly uidRange = null;
  readonly backstopSurvivesReboot = true;
  private accounts = new Map<string, Account>();

  constructor(private readonly record: (e: BackendEvent) => void) {}

  async lookup(name: string): Promise<AccountInfo | null> {
    assertValidName(name);
    const a = this.accounts.get(name);
    return a ? { ...a.info, groups: [...a.info.groups] } : null;
  }

  async createDisabled(spec: CreateAccountSpec, password: string): Promise<AccountInfo> {
    assertValidName(spec.name);
    if (!password) throw new AccountError('COMMAND_FAILED', 'empty password');
    if (this.accounts.has(spec.name)) throw new AccountError('ALREADY_EXISTS', spec.name);
    const info: AccountInfo = { name: spec.name, id: String(nextUid++), enabled: false, managed: true, groups: [spec.group] };
    this.accounts.set(spec.name, { info, grantId: spec.grantId });
    this.record({ grantId: spec.grantId, kind: 'created', at: Date.now() });
    return { ...info };
  }

  async setGroups(name: string, group: Group): Promise<void> {
    this.get(name).info.groups = [group];
  }

  async enable(name: string): Promise<void> {
    const a = this.get(name);
    a.info.enabled = true;
    this.record({ grantId: a.grantId, kind: 'enabled', at: Date.now() });
  }

  async disable(name: string): Promise<void> {
    const a = this.accounts.get(name);
    if (a) a.info.enabled = false;
  }

  async setPassword(name: string): Promise<void> {
    this.get(name);
  }

  async logoff(name: string): Promise<LogoffResult> {
    this.get(name);
    return { ended: 0 };
  }

  async delete(name: string): Promise<void> {
    const a = this.accounts.get(name);
    if (!a) return;
    this.accounts.delete(name);
    this.record({ grantId: a.grantId, kind: 'deleted', at: Date.now() });
  }

  async purge(): Promise<void> {}

  async armBackstop(): Promise<'expiry-only'> {
    return 'expiry-only';
  }

  async disarmBackstop(): Promise<void> {}

  async listManaged(): Promise<AccountInfo[]> {
    return [...this.accounts.values()].map((a) => ({ ...a.info }));
  }

  async dropMarker(): Promise<void> {}

  private get(name: string): Account {
    const a = this.accounts.get(name);
    if (!a) throw new AccountError('NOT_FOUND', `no account ${name}`);
    return a;
  }
}
