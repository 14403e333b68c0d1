/**
 * install on macOS: the launchd plist through an XML parser, launchctl recorded, and the check
 * that node loads only system libraries (dyld's answer modelled from its documented output).
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { REPO, enrollSpy, host, memoryFiles, recorder } from '../../test/support/serviceHost.ts';
import { parsePlist } from '../../test/support/serviceParsers.ts';
import { bashSyntaxError, bashWords } from '../../test/support/shellQuote.ts';
import { AGENT_NODE_FLAGS, installAgent } from './install.ts';
import { LAUNCHD_LABEL, renderLaunchdPlist } from './launchd.ts';
import { uninstallAgent } from './uninstall.ts';

const builtAgent = { [path.join(REPO, 'dist', 'agent', 'main.js')]: '' };

describe('service: launchd plist', () => {
  const runtime = '/Library/Application Support/jit-agent/runtime';
  const plistPath = `/Library/LaunchDaemons/${LAUNCHD_LABEL}.plist`;

  it('is well-formed XML whose keys make a root daemon that starts at boot, kept alive, running only the runtime copy', async () => {
    const files = memoryFiles(builtAgent);
    const rec = recorder();
    const h = host('darwin', { files, run: rec.run, nodePath: '/usr/local/bin/node' });
    await installAgent({ serverUrl: 'https://jit.example', enroll: enrollSpy().enroll }, h);
    const written = files.files.get(plistPath)!;
    assert.equal(written.mode, 0o644, 'launchd ignores a group- or world-writable plist');
    const p = parsePlist(written.text);
    const stateFile = '/Library/Application Support/jit-agent/state.json';
    assert.deepEqual(p, {
      Label: 'com.jit-access.agent',
      ProgramArguments: [`${runtime}/bin/node`, ...AGENT_NODE_FLAGS, `${runtime}/dist/agent/main.js`, 'run', '--state', stateFile],
      WorkingDirectory: runtime,
      RunAtLoad: true,
      KeepAlive: true,
      ThrottleInterval: 10,
      ExitTimeOut: 30,
      StandardOutPath: '/Library/Logs/jit-agent.log',
      StandardErrorPath: '/Library/Logs/jit-agent.log',
    });
    assert.equal(files.dirs.get('/Library/Application Support/jit-agent'), 0o700);
    assert.ok(files.copies.includes(`/usr/local/bin/node -> ${runtime}.new/bin/node`), files.copies.join('\n'));
    assert.equal(files.files.get(`${runtime}/bin/node`)?.mode, 0o755, 'moved into place');
    assert.deepEqual(rec.log, [
      ['/usr/bin/env', '-i', 'DYLD_PRINT_LIBRARIES=1', '/usr/local/bin/node', '-e', '0'],
      ['/usr/bin/env', '-i', 'DYLD_PRINT_LIBRARIES=1', `${runtime}.new/bin/node`, '-e', '0'],
      ['/bin/launchctl', 'enable', 'system/com.jit-access.agent'],
      ['/bin/launchctl', 'bootstrap', 'system', plistPath],
    ]);
  });

  it('refuses a node that loads libraries from outside the system (Homebrew), before changing anything', async () => {
    const files = memoryFiles(builtAgent);
    const rec = recorder((argv) =>
      argv.includes('DYLD_PRINT_LIBRARIES=1')
        ? { stderr: `dyld[7]: <A1> ${argv[3]}\ndyld[7]: <B2> /opt/homebrew/opt/libuv/lib/libuv.1.dylib\ndyld[7]: <C3> /usr/lib/libc++.1.dylib\n` }
        : undefined,
    );
    const spy = enrollSpy();
    const h = host('darwin', { files, run: rec.run, nodePath: '/opt/homebrew/Cellar/node/20.20.2/bin/node' });
    await assert.rejects(installAgent({ serverUrl: 'https://jit.example', enroll: spy.enroll }, h), /\/opt\/homebrew\/opt\/libuv\/lib\/libuv\.1\.dylib is not a system library[^]*nodejs\.org/);
    assert.deepEqual([rec.log.length, spy.calls, files.files.size, files.dirs.size], [1, [], 1, 0], 'only the check ran');
  });

  it('escapes XML specials and refuses control characters', () => {
    const odd = "/Users/x/a & <b> \"c\" 'd'/state.json";
    const p = parsePlist(renderLaunchdPlist({ argv: ['/usr/local/bin/node', 'run', '--state', odd], workingDirectory: '/srv/jit & co' }));
    assert.deepEqual(p.ProgramArguments, ['/usr/local/bin/node', 'run', '--state', odd]);
    assert.equal(p.WorkingDirectory, '/srv/jit & co');
    assert.throws(() => renderLaunchdPlist({ argv: ['/usr/local/bin/node', 'a\u0001b'], workingDirectory: '/x' }), /not allowed/);
  });

  it('a second install boots the loaded daemon out before bootstrapping the new one', async () => {
    const files = memoryFiles({ ...builtAgent, [plistPath]: 'old', '/Library/Application Support/jit-agent/state.json': '{}' });
    const rec = recorder();
    const spy = enrollSpy();
    await installAgent({ serverUrl: 'https://jit.example', enroll: spy.enroll }, host('darwin', { files, run: rec.run }));
    assert.deepEqual(spy.calls, []);
    assert.deepEqual(rec.log.filter((c) => c[0] === '/bin/launchctl').map((c) => c[1]), ['bootout', 'enable', 'bootstrap']);
  });

  it('every command printed is a shell line that bash parses back to the argv that ran (install and uninstall)', async () => {
    const files = memoryFiles({ ...builtAgent, [plistPath]: 'old' });
    const rec = recorder();
    const h = host('darwin', { files, run: rec.run, nodePath: "/usr/local/n o d e's/bin/node" });
    await installAgent({ serverUrl: 'https://jit.example', enroll: enrollSpy().enroll }, h);
    await uninstallAgent({}, h);
    const lines = h.printed.flatMap((l) => l.split('\n')).flatMap((l) => {
      const m = /\$ (.*)$/.exec(l);
      return m ? [m[1]!] : [];
    });
    assert.equal(bashSyntaxError(lines.join('\n')), null);
    assert.deepEqual(bashWords(lines), rec.log);
    assert.ok(rec.log.length >= 6, lines.join('\n'));
  });
});
