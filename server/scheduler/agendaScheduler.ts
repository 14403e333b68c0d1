import type { Agenda } from 'agenda';
import type { Db } from 'mongodb';
import type { Ctx, JobName, Scheduler } from '../context.ts';
import { JOBS_COLLECTION } from '../db/agenda.ts';
import { jobHandlers, type JobData } from './jobs.ts';
import { StartupHold, attachHold, startupSettleMs } from './startupHold.ts';

/**
 * Agenda as the durable scheduler. Each job is unique by (name, grant, due
 * time) and inserted only once, so rescheduling everything at start (to rebuild
 * from the grants, the truth) never runs a step twice or moves a deadline.
 */
export function agendaScheduler(agenda: Agenda, db: Db): Scheduler {
  return {
    async schedule(name, at, data) {
      const due = at.toISOString();
      await agenda
        .create(name, { ...data, due })
        .unique({ name, 'data.grantId': data.grantId, 'data.due': due }, { insertOnly: true })
        .schedule(at)
        .save();
    },
    async forget(grantId) {
      await agenda.cancel({ data: { grantId } });
    },
    async pending(name, grantIds) {
      const out = new Map<string, Date[]>();
      if (!grantIds.length) return out;
      // Agenda's own fields: a job still to run has a nextRunAt (a one-off job that ran has null).
      const jobs = db.collection<{ data?: { grantId?: string }; nextRunAt?: Date | null }>(JOBS_COLLECTION);
      const found = await jobs.find({ name, 'data.grantId': { $in: grantIds }, nextRunAt: { $ne: null } }, { projection: { 'data.grantId': 1, nextRunAt: 1 } }).toArray();
      for (const j of found) {
        const id = j.data?.grantId;
        if (typeof id === 'string' && j.nextRunAt) out.set(id, [...(out.get(id) ?? []), j.nextRunAt]);
      }
      return out;
    },
  };
}

/**
 * Registers the grant jobs' handlers; call before `agenda.start()`. Returns the
 * hold on deletion checks after this start: call its `listening()` once the
 * HTTP server listens (see startupHold.ts).
 */
export function defineJobs(agenda: Agenda, ctx: Ctx): StartupHold {
  const hold = new StartupHold(startupSettleMs(ctx.config));
  attachHold(ctx, hold);
  const handlers = jobHandlers(ctx, hold);
  for (const name of Object.keys(handlers) as JobName[]) {
    agenda.define(name, async (job) => {
      await handlers[name](job.attrs.data as JobData);
    });
  }
  return hold;
}
