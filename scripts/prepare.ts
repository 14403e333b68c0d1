/** Installs what the tests and the demo need that npm does not: the embedded database. */
import { ensureFerretDB } from '../server/db/ferret.ts';

try {
  const bin = await ensureFerretDB((m) => console.log(m));
  console.log(`FerretDB ready: ${bin}`);
} catch (err) {
  console.error(`prepare: ${(err as Error).message}`);
  process.exit(1);
}
