/**
 * Access requests and the request rules as stored (commands/requests.ts, commands/requestRules.ts).
 */
import type { Group, OperatingSystem } from '../../protocol/groups.ts';
import type { Operation } from '../../protocol/messages.ts';
import type { RequestState } from '../domain/requests.ts';
import type { RequestRule, RuleAction } from '../domain/rules.ts';

export interface RequestDoc {
  _id: string;
  requesterEmail: string;
  /** emailKey(requesterEmail): what "my requests" and "one open request" match on. */
  requesterKey: string;
  /** The requester's role when filing (rules match on it). */
  requesterRole: string;
  endpointId: string;
  hostname: string;
  os: OperatingSystem;
  operation: Operation;
  /** elevate-account: the requester's own account on the endpoint (the mapping's default: the email's local part). */
  account?: string;
  group: Group;
  /** How long access was asked for. */
  minutes: number;
  /** When access should start; none = when approved. */
  startAt?: Date;
  reason: string;
  state: RequestState;
  /** The rule that routed the request, and what it said. */
  rule: string;
  ruleAction: RuleAction;
  /** Who may decide (lower-cased emails); empty = any approver. */
  approvers: string[];
  decidedBy?: string;
  decidedAt?: Date;
  /** The approver's note (a denial's reason), shown to the requester. */
  note?: string;
  /** The grant an approval created, with the window it got. */
  grantId?: string;
  grantStartAt?: Date;
  grantEndAt?: Date;
  createdAt: Date;
  updatedAt: Date;
  /** A pending request past this is expired. */
  expiresAt: Date;
}

/** The ordered rule list: one document, replaced as a whole, each version audited. */
export interface RequestRulesDoc {
  _id: 'rules';
  version: number;
  rules: RequestRule[];
  updatedBy: string;
  updatedAt: Date;
}
