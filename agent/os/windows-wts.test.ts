/**
 * The C# behind logoff ([JitAccess.Wts], windows-logoff.ts), compiled and run without Windows:
 * Mono's C# compiler (mcs) compiles the exact text the script hands to Add-Type, and a small C
 * library written from wtsapi32's documented signatures (WTS_SESSION_INFOW, UTF-16 strings,
 * BOOL results, the last error) stands in for wtsapi32.dll through Mono's dllmap. This checks
 * the struct layout, the pointer walk, the string and BOOL marshalling and the error path; it
 * cannot check wtsapi32 itself. Skipped where mcs, mono or a C compiler is missing
 * (`apt-get install mono-mcs gcc`).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { WTS_SOURCE } from './windows-logoff.ts';

const FAKE_WTSAPI = String.raw`
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
typedef struct { uint32_t SessionId; uint16_t *pWinStationName; int32_t State; } WTS_SESSION_INFOW;
static uint16_t *wide(const char *s) {
  size_t n = strlen(s);
  uint16_t *w = malloc((n + 1) * 2);
  for (size_t i = 0; i <= n; i++) w[i] = (unsigned char)s[i];
  return w;
}
int WTSEnumerateSessionsW(void *server, uint32_t reserved, uint32_t version, WTS_SESSION_INFOW **out, uint32_t *count) {
  if (server || reserved || version != 1) { errno = 87; return 0; }
  WTS_SESSION_INFOW *s = calloc(3, sizeof *s);
  s[0].SessionId = 0; s[0].pWinStationName = wide("Services"); s[0].State = 4;
  s[1].SessionId = 2; s[1].pWinStationName = wide("Console"); s[1].State = 0;
  s[2].SessionId = 7; s[2].pWinStationName = wide("RDP-Tcp#1"); s[2].State = 0;
  *out = s; *count = 3;
  return 1;
}
int WTSQuerySessionInformationW(void *server, uint32_t id, int cls, uint16_t **buf, uint32_t *bytes) {
  const char *v = 0;
  if (server) { errno = 87; return 0; }
  if (cls == 5) v = id == 0 ? "" : id == 2 ? "jtabc" : id == 7 ? "alice" : 0;
  if (cls == 7) v = id == 0 ? "" : id <= 7 ? "WKS01" : 0;
  if (!v) { errno = 2; return 0; }
  *buf = wide(v); *bytes = (uint32_t)(strlen(v) + 1) * 2;
  return 1;
}
void WTSFreeMemory(void *p) { free(p); }
int WTSLogoffSession(void *server, uint32_t id, int wait) {
  if (server || wait != 1) { errno = 87; return 0; }
  if (id == 7) { errno = 5; return 0; }
  return 1;
}
`;

const DRIVER = String.raw`
using System;
public static class Driver {
  public static void Main() {
    foreach (int id in JitAccess.Wts.SessionIds()) {
      Console.WriteLine(id + "|" + JitAccess.Wts.Query(id, 5) + "|" + JitAccess.Wts.Query(id, 7) + "|" + JitAccess.Wts.Logoff(id));
    }
    Console.WriteLine("99|" + (JitAccess.Wts.Query(99, 5) == null ? "null" : "?"));
  }
}
`;

const has = (tool: string) => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;

function run(file: string, args: string[], cwd: string): string {
  const r = spawnSync(file, args, { cwd, encoding: 'utf8' });
  assert.equal(r.status, 0, `${file} ${args.join(' ')}: ${r.stdout}${r.stderr}`);
  return r.stdout;
}

describe('WindowsBackend logoff: the WTS interop (mono, a stand-in wtsapi32)', function () {
  let dir: string;

  before(function () {
    if (!has('mcs') || !has('mono') || !has('cc')) this.skip();
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('compiles without a warning and enumerates, names and logs off sessions as documented', async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'jit-wts-'));
    await writeFile(path.join(dir, 'wts.cs'), WTS_SOURCE.join('\n'));
    await writeFile(path.join(dir, 'driver.cs'), DRIVER);
    await writeFile(path.join(dir, 'fake.c'), FAKE_WTSAPI);
    run('mcs', ['-target:library', '-warn:4', '-warnaserror+', '-out:wts.dll', 'wts.cs'], dir);
    run('cc', ['-shared', '-fPIC', '-o', 'libfakewts.so', 'fake.c'], dir);
    run('mcs', ['-r:wts.dll', '-out:driver.exe', 'driver.cs'], dir);
    const lib = path.join(dir, 'libfakewts.so');
    await writeFile(path.join(dir, 'wts.dll.config'), `<configuration><dllmap dll="wtsapi32.dll" target="${lib}"/></configuration>`);
    const out = run('mono', ['driver.exe'], dir).trim().split('\n');
    // id | WTSUserName | WTSDomainName | WTSLogoffSession's result (0 = logged off, else the error)
    assert.deepEqual(out, ['0|||0', '2|jtabc|WKS01|0', '7|alice|WKS01|5', '99|null']);
  });
});
