import { randomUUID } from 'node:crypto';
import type { GrantState } from '../domain/lifecycle.ts';
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
  await c.audit.insertOne(toDoc(randomUUID(), e));
}

/**
 * Appends the event under an id derived from what it records, unless an event
 * with that id is stored already; returns whether it wrote. Why: a step that
 * is retried (a report sent again after a timeout, a request repeated after a
 * database outage) then audits once, without a read before the write. The
 * duplicate insert fails with E11000 on `_id`, the one check FerretDB and
 * MongoDB both make atomically.
 */
export async function auditOnce(c: Collections, id: string, e: AuditInput): Promise<boolean> {
  try {
    await c.audit.insertOne(toDoc(id, e));
    return true;
  } catch (err) {
    if ((err as { code?: number }).code === 11000) return false;
    throw err;
  }
}

/** The audit id of an agent's report: report ids are made by the agent, hence the endpoint in it. */
export const reportAuditId = (endpointId: string, reportId: string): string => `report:${endpointId}:${reportId}`;

/**
 * The audit id of a grant's move into `state`. A grant enters each state at
 * most once (the lifecycle has no cycles; see domain/lifecycle.test.ts), so
 * this names one event, and `hasEntered` can look it up by `_id` alone. Also
 * for what happens to a grant once: `requested` (its creation), `never-enabled`,
 * `revoke-requested` (a revoke that moved no state; see commands/transition.ts).
 */
export const transitionAuditId = (grantId: string, state: GrantState | 'never-enabled' | 'revoke-requested'): string => `grant:${grantId}:${state}`;

/** Whether the grant ever entered `state`, by its transition's audit event. */
export async function hasEntered(c: Collections, grantId: string, state: GrantState): Promise<boolean> {
  if (await c.audit.findOne({ _id: transitionAuditId(grantId, state) }, { projection: { _id: 1 } })) return true;
  // Transitions stored before their ids were derived have random ids: search by type
  // (a scan on FerretDB, so only as the fallback for the rare caller that needs it).
  return (await c.audit.findOne({ grantId, type: `grant.${state}` }, { projection: { _id: 1 } })) !== null;
}

function toDoc(id: string, e: AuditInput): AuditDoc {
  const email = e.detail.email;
  return { _id: id, at: e.at ?? new Date(), seq: nextSeq(), ...withoutAt(e), ...(typeof email === 'string' ? { emailKey: emailKey(email) } : {}) };
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
