/**
 * A real SMTP server for tests (smtp-server on 127.0.0.1), with STARTTLS or implicit
 * TLS on a self-signed certificate made by the openssl CLI, optional AUTH, and every
 * received message parsed by mailparser.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { simpleParser, type ParsedMail } from 'mailparser';
import { SMTPServer } from 'smtp-server';

/** Options of `startSmtpServer`. */
export interface TestSmtpOptions {
  /** Accounts (username → password); when given, AUTH PLAIN/LOGIN is required, else disabled. */
  users?: Record<string, string>;
  /** Implicit TLS from the first byte (like port 465) instead of STARTTLS. */
  tls?: boolean;
}

/** A running test SMTP server. */
export interface TestSmtpServer {
  port: number;
  /** PEM of the server's self-signed certificate, to pass as `tlsCa`. */
  ca: string;
  /** Every accepted message, in arrival order. */
  messages: ParsedMail[];
  /** When a message of `messages` arrived (the end of its DATA), for ordering it among other events. */
  receivedAt(m: ParsedMail): Date | undefined;
  /** The first message (already received or still to come) matching `pred`; rejects after `ms`. */
  waitFor(pred: (m: ParsedMail) => boolean, ms?: number): Promise<ParsedMail>;
  /** Stops listening, so connections are refused. */
  down(): Promise<void>;
  /** Listens again on the same port. */
  up(): Promise<void>;
  /** Stops for good (the certificate's temp dir is already gone, see selfSigned). */
  stop(): Promise<void>;
}

/** A key and self-signed certificate for localhost / 127.0.0.1, valid one day. */
async function selfSigned(): Promise<{ key: string; cert: string }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'jit-smtp-'));
  try {
    await promisify(execFile)('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'),
    ]);
    return { key: await readFile(path.join(dir, 'key.pem'), 'utf8'), cert: await readFile(path.join(dir, 'cert.pem'), 'utf8') };
  } finally {
    // Removed as soon as read: nothing is left behind even if a test never calls stop().
    await rm(dir, { recursive: true, force: true });
  }
}

/** Starts a server on a free port of 127.0.0.1. */
export async function startSmtpServer(opts: TestSmtpOptions = {}): Promise<TestSmtpServer> {
  const { key, cert } = await selfSigned();
  const messages: ParsedMail[] = [];
  const arrivals = new WeakMap<ParsedMail, Date>();
  const users = opts.users;
  // A closed smtp-server can listen again but answers 421 to everyone, so up() makes a new one.
  const make = () => {
    const s = new SMTPServer({
      key,
      cert,
      secure: opts.tls ?? false,
      logger: false,
      authOptional: users === undefined,
      disabledCommands: users === undefined ? ['AUTH'] : [],
      authMethods: ['PLAIN', 'LOGIN'],
      // Connections still open at close() are cut after this instead of the default 30 s.
      closeTimeout: 500,
      onAuth(auth, _session, cb) {
        if (users !== undefined && auth.username !== undefined && users[auth.username] === auth.password) {
          cb(null, { user: auth.username });
        } else {
          // Echoes the attempt, as a careless server might, so tests can check that the
          // password never reaches our error texts. smtp-server answers 535.
          cb(new Error(`Invalid username or password: ${auth.username}/${auth.password}`));
        }
      },
      onData(stream, _session, cb) {
        // Parsed before the 250 reply, so a message is in `messages` once sendMail resolves.
        simpleParser(stream).then((m) => {
          arrivals.set(m, new Date());
          messages.push(m);
          cb();
        }, cb);
      },
    });
    // Clients failing a handshake on purpose (wrong CA, wrong mode) surface here as 'error'
    // events, which would crash the test process if nobody listened.
    s.on('error', () => {});
    return s;
  };
  const listen = (server: SMTPServer, port: number) =>
    new Promise<number>((resolve, reject) => {
      server.server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve((server.server.address() as AddressInfo).port));
    });
  const close = (server: SMTPServer) => new Promise<void>((resolve) => server.close(() => resolve()));

  let server: SMTPServer | undefined = make();
  const port = await listen(server, 0);
  const down = async () => {
    if (server) await close(server);
    server = undefined;
  };

  return {
    port,
    ca: cert,
    messages,
    receivedAt: (m) => arrivals.get(m),
    async waitFor(pred, ms = 5000) {
      const deadline = Date.now() + ms;
      for (;;) {
        const found = messages.find(pred);
        if (found) return found;
        if (Date.now() > deadline) throw new Error(`no matching message within ${ms} ms (${messages.length} received)`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    down,
    async up() {
      if (server) return;
      server = make();
      await listen(server, port);
    },
    stop: down,
  };
}
