/**
 * Installs what the tests and the demo need that npm does not: the embedded database
 * (FerretDB, compiled with Go on first use and cached; see server/db/ferret.ts).
 * Run by `npm test` before the tests; fast when the binary is already cached.
 */
import { ensureFerretDB } from '../server/db/ferret.ts';

const t0 = Date.now();
try {
  const bin = await ensureFerretDB((msg) => console.log(`prepare: ${msg}`));
  console.log(`prepare: FerretDB ready (${bin}, ${Date.now() - t0} ms)`);
} catch (err) {
  console.error(`prepare: ${(err as Error).message}`);
  process.exit(1);
}
