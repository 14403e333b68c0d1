/**
 * Creates a console user, by default the first admin:
 *
 *   npm run create-admin -- --email a@b.c [--role admin|operator|auditor]
 *
 * The password is read from stdin when it is not a terminal (`… < file`, a pipe),
 * else prompted twice without echo. Never from argv, where `ps` would show it.
 * Uses MONGODB_URI, else the embedded database in the data folder (stop the server first).
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { defaultConfig } from '../server/config.ts';
import { connectDb } from '../server/db/connect.ts';
import { startFerretDB } from '../server/db/ferret.ts';
import { ApiError } from '../server/errors.ts';
import { collections, ensureIndexes, type Role } from '../server/store/collections.ts';
import { ROLES } from '../server/web/roles.ts';
import { checkPassword, createUser } from '../server/web/users.ts';

function fail(msg: string): never {
  console.error(`create-admin: ${msg}`);
  process.exit(1);
}

async function readStdin(): Promise<string> {
  let s = '';
  for await (const chunk of process.stdin) s += chunk;
  return s.split(/\r?\n/)[0] ?? '';
}

/** Reads one line from the terminal without echoing it. */
function prompt(question: string): Promise<string> {
  return new Promise((resolve, reject) => {
    process.stderr.write(question);
    const stdin = process.stdin;
    stdin.setRawMode(true);
    stdin.resume();
    stdin.setEncoding('utf8');
    let s = '';
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n') {
          stdin.setRawMode(false);
          stdin.pause();
          stdin.off('data', onData);
          process.stderr.write('\n');
          return resolve(s);
        }
        if (ch === '\u0003') {
          stdin.setRawMode(false);
          return reject(new Error('interrupted'));
        }
        if (ch === '\u007f' || ch === '\b') s = s.slice(0, -1);
        else s += ch;
      }
    };
    stdin.on('data', onData);
  });
}

async function password(): Promise<string> {
  if (!process.stdin.isTTY) return readStdin();
  const p = await prompt('Password (at least 12 characters): ');
  if ((await prompt('Again: ')) !== p) fail('the passwords differ');
  return p;
}

function pidAlive(file: string): boolean {
  if (!existsSync(file)) return false;
  try {
    process.kill(Number(readFileSync(file, 'utf8').trim()), 0);
    return true;
  } catch {
    return false;
  }
}

const { values } = parseArgs({ options: { email: { type: 'string' }, role: { type: 'string', default: 'admin' }, password: { type: 'string' } } });
if (values.password !== undefined) fail('--password is refused: a password on the command line shows in ps and shell history; pipe it on stdin');
if (!values.email) fail('usage: npm run create-admin -- --email a@b.c [--role admin|operator|auditor] (password on stdin or prompted)');
if (!(ROLES as readonly string[]).includes(values.role!)) fail(`--role must be one of ${ROLES.join(', ')}`);

const pw = await password();
try {
  checkPassword(pw);
} catch (err) {
  fail(`password ${(err as ApiError).fields[0]?.message ?? 'is not valid'}`);
}

const config = { ...defaultConfig(), ...(process.env.JIT_CONFIG ? JSON.parse(readFileSync(process.env.JIT_CONFIG, 'utf8')) : {}) };
const mongodbUri: string | undefined = process.env.MONGODB_URI ?? config.mongodbUri;
const dataDir = path.resolve(process.env.JIT_DATA_DIR ?? config.dataDir, 'db');
if (!mongodbUri && pidAlive(path.join(dataDir, 'ferretdb.pid'))) fail('the server is running on the embedded database: stop it first, or set MONGODB_URI');
const embedded = mongodbUri ? null : await startFerretDB({ dataDir });
// No socket timeout: ensureIndexes may build indexes and migrate a large database (see db/connect.ts).
const client = await connectDb(mongodbUri ?? embedded!.uri, config.db, 'startup');
try {
  const c = collections(client.db());
  await ensureIndexes(c);
  const user = await createUser({ c }, { email: values.email, role: values.role as Role, password: pw }, 'cli:create-admin');
  console.log(`create-admin: created ${user.email} with role ${user.role}`);
} catch (err) {
  if (err instanceof ApiError) fail(err.fields[0] ? `${err.fields[0].field} ${err.fields[0].message}` : err.message);
  throw err;
} finally {
  await client.close();
  await embedded?.stop();
}
