/**
 * npm run server: the server for a real run. Settings from config/default.json,
 * JIT_CONFIG and the environment (see config.ts); a bad setting is named and
 * the process exits 1. SIGTERM/SIGINT stop it cleanly (last-seen times stored,
 * the embedded database stopped).
 */
import pino from 'pino';
import { loadConfig } from './config.ts';
import { startServer } from './server.ts';

const log = pino({ name: 'jit-server' });

async function main(): Promise<void> {
  const server = await startServer(loadConfig(), log);
  let stopping = false;
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    process.once(sig, () => {
      if (stopping) return;
      stopping = true;
      log.info({ signal: sig }, 'stopping');
      server.stop().then(
        () => process.exit(0),
        (err: Error) => {
          log.error({ err }, 'stop failed');
          process.exit(1);
        },
      );
    });
  }
}

main().catch((err: Error) => {
  process.stderr.write(`jit-server: ${err.message}\n`);
  process.exit(1);
});
