/** A broker in a child process (test/fixtures/client-broker.ts) the client tests can kill, stop and restart on the same port. */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { createClient, type Client, type ClientOptions, type ClientState } from 'switchyard/client';

const FIXTURE = new URL('./fixtures/client-broker.ts', import.meta.url).pathname;

export class ChildBroker {
  readonly dir = mkdtempSync(join(tmpdir(), 'sy-client-'));
  readonly historyFile = join(this.dir, 'history.jsonl');
  port = 0;
  child: ChildProcess | undefined;

  /** Starts (or restarts, on the same port) the broker process; resolves once it listens. */
  async start(env: Record<string, string> = {}): Promise<void> {
    const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE], {
      env: { ...process.env, PORT: String(this.port), HISTORY_FILE: this.historyFile, ...env },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    this.child = child;
    this.port = await new Promise<number>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        const line = out.split('\n').find((l) => l.startsWith('{'));
        if (line !== undefined) resolve((JSON.parse(line) as { port: number }).port);
      });
      child.once('exit', (code) => reject(new Error(`broker process exited (${code}) before listening`)));
    });
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  /** SIGKILL: no close frame, no goodbye; resolves once the process is gone. */
  async kill(): Promise<void> {
    const child = this.child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }

  signal(signal: NodeJS.Signals): void {
    this.child?.kill(signal);
  }

  async dispose(): Promise<void> {
    this.signal('SIGCONT');
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A client on `ws`, with fast reconnects, whose state changes are recorded. */
export function client(url: string, token: string | (() => string), options: Partial<ClientOptions> = {}): Client & { states: ClientState[] } {
  const c = createClient({
    url,
    WebSocket,
    getToken: typeof token === 'function' ? token : () => token,
    backoff: { minMs: 20, maxMs: 200 },
    ...options,
  });
  const states: ClientState[] = [];
  c.on('state', ({ state }) => states.push(state));
  return Object.assign(c, { states });
}

/** Resolves when the client reaches `state`. */
export function reach(c: Client, state: ClientState, timeoutMs = 10_000): Promise<void> {
  if (c.state === state) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`client did not reach ${state} within ${timeoutMs} ms (it is ${c.state})`));
    }, timeoutMs);
    const off = c.on('state', (e) => {
      if (e.state !== state) return;
      clearTimeout(timer);
      off();
      resolve();
    });
  });
}
