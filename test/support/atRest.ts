/**
 * Where a secret must never end up: every collection (the audit trail included), the
 * server log, each agent's log and the files in its state folder (except the local
 * key). Tests search these texts for the generated passwords they were mailed.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Db } from 'mongodb';

/** The generated password in a credentials email's text part, if there is one. */
export function passwordIn(text: string | undefined): string | undefined {
  return /Password: (\S+)/.exec(text ?? '')?.[1];
}

export interface TextAtRest {
  kind: 'collection' | 'server log' | 'agent log' | 'agent file';
  /** e.g. "collection grants", "agent file web-01/state.json". */
  where: string;
  text: string;
}

/** Reads everything kept at rest; a missing agent log or state folder reads as empty. */
export async function textsAtRest(
  db: Db,
  serverLog: string,
  agents: readonly { hostname: string; stateFile: string; log(): Promise<string> }[],
): Promise<TextAtRest[]> {
  const texts: TextAtRest[] = [{ kind: 'server log', where: 'server log', text: serverLog }];
  for (const { name } of await db.listCollections().toArray()) {
    texts.push({ kind: 'collection', where: `collection ${name}`, text: JSON.stringify(await db.collection(name).find().toArray()) });
  }
  for (const a of agents) {
    texts.push({ kind: 'agent log', where: `agent log ${a.hostname}`, text: await a.log() });
    const dir = path.dirname(a.stateFile);
    for (const f of await readdir(dir).catch(() => [] as string[])) {
      if (f.endsWith('.key')) continue;
      texts.push({ kind: 'agent file', where: `agent file ${a.hostname}/${f}`, text: await readFile(path.join(dir, f), 'utf8').catch(() => '') });
    }
  }
  return texts;
}
