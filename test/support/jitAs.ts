/**
 * Runs the `jit` command as another OS user: `node --import tsx test/support/jitAs.ts UID GID ARGS…`.
 * Loaded as root (a fresh clone may sit in a folder only root can read), then the process drops
 * to the user before it connects or creates its proof, so the agent sees that user, as it would
 * see a person running `jit` in their own shell.
 */
const [uid, gid, ...args] = process.argv.slice(2);
const { main } = await import('../../agent/jit.ts');
process.setgroups!([]);
process.setgid!(Number(gid));
process.setuid!(Number(uid));
process.exit(await main(args));
