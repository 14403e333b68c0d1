import { randomUUID } from 'node:crypto';
import { emailKey, type AuditDoc, type Collections } from './collections.ts';

/** The audit actor for an endpoint's agent. */
export const agentActor = (endpointId: string): string => `agent:${endpointId}`;

export type AuditInput = Omit<AuditDoc, '_id' | 'at' | 'seq' | 'emailKey'> & { at?: Date };

/**
 * Appends one audit event. Callers pass only non-secret detail; the password
 * never reaches this module because no message that carries it exists.
 * An event whose detail names an email also gets its `emailKey`, for searches.
 */
export async function audit(c: Collections, e: AuditInput): Promise<void> {
  const email = e.detail.email;
  await c.audit.insertOne({ _id: randomUUID(), at: e.at ?? new Date(), seq: nextSeq(), ...withoutAt(e), ...(typeof email === 'string' ? { emailKey: emailKey(email) } : {}) });
}

let lastSeq = 0;
/** Strictly increasing across calls and restarts, so events sort in the order they happened. */
function nextSeq(): number {
  lastSeq = Math.max(Date.now() * 1000, lastSeq + 1);
  return lastSeq;
}

function withoutAt(e: AuditInput): Omit<AuditDoc, '_id' | 'at' | 'seq' | 'emailKey'> {
  const { at: _at, ...rest } = e;
  return rest;
}

export function timeline(c: Collections, grantId: string): Promise<AuditDoc[]> {
  return c.audit.find({ grantId }).sort({ seq: 1 }).toArray();
}
