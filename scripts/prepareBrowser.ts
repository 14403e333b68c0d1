/**
 * Makes sure Debian's Chromium is installed for the console's browser tests
 * (playwright-core drives it; no browser is ever downloaded by playwright).
 * Run by the test command before the tests; a no-op when /usr/bin/chromium exists.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

export const CHROMIUM = '/usr/bin/chromium';

if (existsSync(CHROMIUM)) {
  console.log(`prepareBrowser: ${CHROMIUM} present`);
} else {
  const sudo = process.getuid?.() === 0 ? [] : ['sudo'];
  for (const args of [['apt-get', 'update'], ['apt-get', 'install', '-y', '--no-install-recommends', 'chromium']]) {
    console.log(`prepareBrowser: ${[...sudo, ...args].join(' ')}`);
    const r = spawnSync(sudo[0] ?? args[0]!, [...(sudo.length ? args : args.slice(1))], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    if (r.status !== 0) {
      console.error(`prepareBrowser: ${args.join(' ')} failed (${r.status ?? r.signal})`);
      process.exit(1);
    }
  }
  if (!existsSync(CHROMIUM)) {
    console.error(`prepareBrowser: ${CHROMIUM} still missing after install`);
    process.exit(1);
  }
}
