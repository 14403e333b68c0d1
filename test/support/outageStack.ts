/**
 * A stack whose database and server can be taken away and brought back: FerretDB
 * started here on a fixed port and data folder, so it can be stopped and started
 * again where the driver expects it, or frozen with SIGSTOP (a database that
 * accepts connections and never answers) and thawed with SIGCONT; the server can
 * be stopped and started again on the same port. The outage tests use it as it
 * is; chaos/harness.ts adds SMTP and agents.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import type { ServerConfig } from '../../server/config.ts';
import { startFerretDB, type EmbeddedDb } from '../../server/db/ferret.ts';
import { startServer, type RunningServer } from '../../server/server.ts';
import { Api, testConfig } from './stack.ts';

export class OutageStack {
  api = new Api('');
  server: RunningServer | null = null;
  db: EmbeddedDb | null = null;
  frozen = false;
  readonly logFile: string;
  protected logStream: WriteStream;
  /** Set to keep the stack's folder (server log, database) after stop(). */
  protected keepEnv = 'OUTAGE_KEEP';

  protected constructor(
    readonly dir: string,
    readonly config: ServerConfig,
    private readonly dbPort: number,
  ) {
    this.logFile = path.join(dir, 'server.log');
    this.logStream = createWriteStream(this.logFile, { flags: 'a' });
  }

  static async start(overrides: Partial<ServerConfig> = {}): Promise<OutageStack> {
    const { dir, db } = await OutageStack.folderAndDb('jit-outage-');
    const stack = new OutageStack(dir, testConfig(db.uri, dir, overrides), db.port);
    stack.db = db;
    await stack.startServer();
    return stack;
  }

  protected static async folderAndDb(prefix: string): Promise<{ dir: string; db: EmbeddedDb }> {
    const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
    return { dir, db: await startFerretDB({ dataDir: path.join(dir, 'db') }) };
  }

  async startServer(): Promise<void> {
    this.server = await startServer({ ...this.config }, pino({ level: 'debug' }, this.logStream));
    this.config.port = Number(new URL(this.server.url).port);
    this.api.url = this.server.url;
  }

  async stopServer(): Promise<void> {
    const s = this.server;
    this.server = null;
    await s?.stop();
  }

  /** Stops FerretDB; the server keeps its driver, with nothing to talk to. */
  async stopDb(): Promise<void> {
    this.thawDb();
    const db = this.db;
    this.db = null;
    await db?.stop();
  }

  /** Starts FerretDB again on the same port and data folder. */
  async startDb(): Promise<void> {
    if (this.db) return;
    for (let attempt = 1; ; attempt++) {
      try {
        this.db = await startFerretDB({ dataDir: path.join(this.dir, 'db'), port: this.dbPort });
        return;
      } catch (err) {
        if (attempt >= 10) throw err;
        await new Promise((r) => setTimeout(r, 300));
      }
    }
  }

  /** SIGSTOP: the port still accepts connections, nothing is ever answered. */
  freezeDb(): void {
    if (!this.db || this.frozen) return;
    process.kill(this.db.pid, 'SIGSTOP');
    this.frozen = true;
  }

  thawDb(): void {
    if (!this.db || !this.frozen) return;
    process.kill(this.db.pid, 'SIGCONT');
    this.frozen = false;
  }

  serverLog(): Promise<string> {
    return readFile(this.logFile, 'utf8').catch(() => '');
  }

  async stop(): Promise<void> {
    this.thawDb();
    if (!this.db) await this.startDb().catch(() => {});
    await this.stopServer().catch(() => {});
    await this.stopDb().catch(() => {});
    await new Promise<void>((r) => this.logStream.end(r));
    if (!process.env[this.keepEnv]) await rm(this.dir, { recursive: true, force: true });
  }
}

export interface Timed {
  ms: number;
  status: number;
  headers: Headers;
  text: string;
  /** The parsed JSON body, or null. */
  body: any;
}

/**
 * One HTTP request, timed; given up (status 0) after `limitMs`, so a request
 * that hangs fails the test instead of stalling it.
 */
export async function timed(url: string, init: RequestInit = {}, limitMs = 15_000): Promise<Timed> {
  const t0 = Date.now();
  try {
    const res = await fetch(url, { ...init, redirect: 'manual', signal: AbortSignal.timeout(limitMs) });
    const text = await res.text();
    let body: unknown = null;
    try {
      body = JSON.parse(text);
    } catch {
      /* not JSON */
    }
    return { ms: Date.now() - t0, status: res.status, headers: res.headers, text, body };
  } catch {
    return { ms: Date.now() - t0, status: 0, headers: new Headers(), text: '', body: null };
  }
}
