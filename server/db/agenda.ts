import { Agenda } from 'agenda';
import { MongoBackend } from '@agendajs/mongo-backend';
import type { Db } from 'mongodb';

/**
 * Agenda on our database, with one worker and one job at a time.
 * Why: FerretDB's findAndModify is not atomic, so two workers could both lock
 * one job; our job handlers are idempotent anyway, and the work is tiny.
 */
export function createAgenda(db: Db, opts: { processEvery: string | number; name?: string }): Agenda {
  return new Agenda({
    backend: new MongoBackend({ mongo: db, ...(opts.name ? { name: opts.name } : {}) }),
    processEvery: opts.processEvery,
    maxConcurrency: 1,
    defaultConcurrency: 1,
    lockLimit: 1,
    defaultLockLimit: 1,
  });
}
