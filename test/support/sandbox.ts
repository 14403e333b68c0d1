import { readFile } from 'node:fs/promises';
import path from 'node:path';

/** The sandbox's passwd, shadow and group lines that mention `name` (as account or member). */
export async function readSandboxEntry(
  root: string,
  name: string,
): Promise<{ passwd: string | undefined; shadow: string | undefined; groups: string[] }> {
  const lines = async (file: string) => (await readFile(path.join(root, 'etc', file), 'utf8')).split('\n');
  const own = (l: string) => l.split(':')[0] === name;
  return {
    passwd: (await lines('passwd')).find(own),
    shadow: (await lines('shadow')).find(own),
    groups: (await lines('group')).filter((l) => own(l) || (l.split(':')[3] ?? '').split(',').includes(name)),
  };
}
