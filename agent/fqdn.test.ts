import assert from 'node:assert/strict';
import os from 'node:os';
import { fqdnOf, type NameResolver } from './fqdn.ts';

/** A resolver answering from a table, like /etc/hosts would. */
const table = (forward: Record<string, string>, reverse: Record<string, string>): NameResolver => ({
  async lookup(name) {
    const address = forward[name];
    if (!address) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${name}`), { code: 'ENOTFOUND' });
    return { address };
  },
  async lookupService(address) {
    const hostname = reverse[address];
    if (!hostname) throw Object.assign(new Error(`getnameinfo ENOTFOUND ${address}`), { code: 'ENOTFOUND' });
    return { hostname };
  },
});

describe('fqdnOf', () => {
  it('finds the fully qualified name the way hostname -f does', async () => {
    const r = table({ 'web-01': '127.0.1.1' }, { '127.0.1.1': 'web-01.corp.example' });
    assert.equal(await fqdnOf('web-01', r), 'web-01.corp.example');
  });

  it('keeps a name that is already qualified, and refuses one that is not a host name', async () => {
    assert.equal(await fqdnOf('web-01.corp.example.', table({}, {})), 'web-01.corp.example');
    assert.equal(await fqdnOf('web-<b>01</b>', table({}, {})), undefined);
  });

  it('ignores a reverse name that is not an extension of the name (localhost, another host)', async () => {
    assert.equal(await fqdnOf('vm', table({ vm: '127.0.0.1' }, { '127.0.0.1': 'localhost' })), undefined);
    assert.equal(await fqdnOf('web-01', table({ 'web-01': '10.0.0.5' }, { '10.0.0.5': 'web-017.corp.example' })), undefined);
  });

  it('gives up on a resolver error or after the timeout', async () => {
    assert.equal(await fqdnOf('nowhere', table({}, {})), undefined);
    const hanging: NameResolver = { lookup: () => new Promise(() => {}), lookupService: () => new Promise(() => {}) };
    const t0 = Date.now();
    assert.equal(await fqdnOf('slow', hanging, 100), undefined);
    assert.ok(Date.now() - t0 < 1000);
  });

  it('answers for this machine with the real resolver: a qualified extension of its name, or nothing', async () => {
    const name = os.hostname();
    const fqdn = await fqdnOf(name);
    assert.ok(fqdn === undefined || fqdn.startsWith(`${name}.`), String(fqdn));
  });
});
