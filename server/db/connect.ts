import { MongoClient } from 'mongodb';

/**
 * Connects to MongoDB or FerretDB.
 * Why one connection for FerretDB: its SQLite backend runs each update as a
 * read-then-write transaction, and two of those at once fail with SQLITE_BUSY
 * instead of waiting. FerretDB serves one connection's requests in order, so a
 * pool of one serialises them. MongoDB keeps the driver's normal pool.
 */
export async function connectDb(uri: string): Promise<MongoClient> {
  const probe = await MongoClient.connect(uri);
  const info = await probe.db('admin').command({ buildInfo: 1 });
  if (!info.ferretdbVersion) return probe;
  await probe.close();
  return MongoClient.connect(uri, { maxPoolSize: 1 });
}
