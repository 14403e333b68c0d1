/**
 * Installs the Debian packages the tests use that npm cannot bring: Chromium for
 * the console's browser tests (playwright-core drives it; no browser is ever
 * downloaded), libfaketime for the chaos test's clock jumps, and Mono's C# compiler
 * and runtime, which compile and run the Windows logoff interop (agent/os/windows-wts.test.ts),
 * and sudo, whose visudo checks the passwordless-sudo drop-in (agent/os/linux-elevation.ts).
 * Run by the test command; a no-op when all are present.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/** Debian package → a file it installs. */
const NEEDED: Record<string, string> = {
  chromium: '/usr/bin/chromium',
  faketime: '/usr/bin/faketime',
  'mono-mcs': '/usr/bin/mcs',
  sudo: '/usr/sbin/visudo',
};

const missing = Object.entries(NEEDED).filter(([, file]) => !existsSync(file)).map(([pkg]) => pkg);
if (missing.length === 0) {
  console.log(`prepareSystem: ${Object.keys(NEEDED).join(', ')} present`);
} else {
  const sudo = process.getuid?.() === 0 ? [] : ['sudo'];
  for (const args of [['apt-get', 'update'], ['apt-get', 'install', '-y', '--no-install-recommends', ...missing]]) {
    console.log(`prepareSystem: ${[...sudo, ...args].join(' ')}`);
    const r = spawnSync(sudo[0] ?? args[0]!, [...(sudo.length ? args : args.slice(1))], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    if (r.status !== 0) {
      console.error(`prepareSystem: ${args.join(' ')} failed (${r.status ?? r.signal})`);
      process.exit(1);
    }
  }
  for (const pkg of missing) {
    if (!existsSync(NEEDED[pkg]!)) {
      console.error(`prepareSystem: ${NEEDED[pkg]} still missing after installing ${pkg}`);
      process.exit(1);
    }
  }
}
