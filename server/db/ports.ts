import net from 'node:net';

/**
 * A free TCP port on 127.0.0.1: the OS picks one, we release it at once and return it.
 * There is an unavoidable window in which another process could take it, so callers
 * that spawn a server on it should retry with a new port if binding fails
 * (startFerretDB does).
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close((err) => (err ? reject(err) : resolve(port)));
    });
  });
}
