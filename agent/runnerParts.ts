/** What the policy layer's step modules (grantEnd, elevation, guard) get from GrantRunner. */
import type { Logger } from 'pino';
import type { ReportType } from '../protocol/messages.ts';
import type { AccountBackend } from './os/backend.ts';
import type { CredentialSink } from './sink.ts';
import type { GrantRecord, StateStore } from './state.ts';

export interface RunnerParts {
  store: StateStore;
  backend: AccountBackend;
  sink: CredentialSink;
  log: Logger;
  now(): number;
  report(r: GrantRecord, type: ReportType, detail?: string): void;
  /** An email to the end user (the sink's ended/elevated): sent once the current pass is over, so it never holds a removal back. */
  notify(send: () => Promise<void>): void;
}
