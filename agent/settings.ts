/**
 * Agent Settings as the agent keeps them: fetched when the server's revision
 * changes, stored with the SMTP password sealed by the local key.
 */
import type { SmtpSettingsInput } from '../mail/smtp.ts';
import { decryptSecret, encryptSecret } from '../mail/secretBox.ts';
import type { AgentSettings } from '../protocol/messages.ts';
import type { StateStore } from './state.ts';

export class SettingsStore {
  constructor(
    private readonly store: StateStore,
    private readonly key: Buffer,
  ) {}

  get revision(): string | undefined {
    return this.store.state.settings?.revision;
  }

  async update(s: AgentSettings): Promise<void> {
    let smtp = null;
    if (s.smtp) {
      const { password, ...rest } = s.smtp;
      smtp = { ...rest, ...(password ? { passwordBox: encryptSecret(password, this.key) } : {}) };
    }
    this.store.state.settings = { revision: s.revision, smtp };
    await this.store.save();
  }

  /** The endpoint's SMTP settings, password unsealed in memory; null when none are set. */
  smtp(): SmtpSettingsInput | null {
    const smtp = this.store.state.settings?.smtp;
    if (!smtp) return null;
    const { passwordBox, ...rest } = smtp;
    return { ...rest, ...(passwordBox ? { password: decryptSecret(passwordBox, this.key) } : {}) };
  }
}
