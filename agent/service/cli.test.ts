/**
 * `npm run agent -- install …` and `… uninstall`, as the README runs them, as real processes:
 * with --dry-run, so they only read this machine (who owns /var/lib, /opt, /etc/systemd/system,
 * what node loads, which accounts are managed) and print the plan.
 */
import assert from 'node:assert/strict';
import { REPO, capture } from '../../test/support/serviceHost.ts';

const npm = (args: string[]) => capture('/usr/bin/env', ['npm', 'run', '--silent', 'agent', '--', ...args], REPO);

describe('service: the jit-agent command (npm run agent)', function () {
  this.timeout(60_000);

  it('install --dry-run plans the copy into /opt/jit-agent and a unit that runs only from there', async () => {
    const r = await npm(['install', '--server', 'https://jit.example', '--token', 'T0KEN-not-shown', '--dry-run']);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    for (const step of [
      /^install: check the libraries .*node loads: \$ \/usr\/bin\/env -i \/usr\/bin\/ldd /m,
      /^install: checked: .*node loads \d+ libraries, all root's$/m,
      /^install: \[dry run\] would create \/var\/lib\/jit-agent \(or keep it\), root's alone/m,
      /^install: \[dry run\] would copy node \(.*\) and the built agent into \/opt\/jit-agent\.new: \d+ files, [\d.]+ MiB: node [\d.]+ MiB, \d+ packages [\d.]+ MiB, agent [\d.]+ MiB$/m,
      /^install: \[dry run\] would move \/opt\/jit-agent\.new to \/opt\/jit-agent$/m,
      /^install: \[dry run\] would (write|replace) the systemd unit \/etc\/systemd\/system\/jit-agent\.service \(it runs only what is in \/opt\/jit-agent\)$/m,
      /^install: \[dry run\] would \$ \/usr\/bin\/systemctl /m,
      /^install: dry run: nothing was changed$/m,
    ]) assert.match(r.stdout, step);
    assert.doesNotMatch(r.stdout + r.stderr, /T0KEN/);
  });

  it('uninstall --dry-run plans the removal of the service, the runtime folder and the marker group', async () => {
    const r = await npm(['uninstall', '--dry-run']);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /^uninstall: \[dry run\] would remove the jit-managed marker group/m);
    assert.match(r.stdout, /^uninstall: dry run: nothing was changed$/m);
  });

  it('install without --server or --token exits 2 with the usage', async () => {
    const r = await npm(['install', '--server', 'https://jit.example']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /jit-agent: install needs --server and --token\nusage:/);
  });
});
