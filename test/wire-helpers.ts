/** Helpers for the protocols with no welcome frame (tagged, events): open, refuse, wait on counts. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Broker } from 'switchyard';
import { Client, until } from './helpers.js';

export interface OpenOptions {
  /** Request headers (Authorization, Tag…). */
  headers?: Record<string, string>;
  protocols?: string | string[];
}

/** Opens a client (the 101 arrived) without waiting for any frame. */
export async function open(url: string, options: OpenOptions = {}): Promise<Client> {
  const client = new Client(url, options.protocols, options.headers && { headers: options.headers });
  await client.opened;
  return client;
}

/** Connects expecting a refusal by close code; resolves with the code, the reason and the frames read before it. */
export async function refused(url: string, options: OpenOptions = {}): Promise<{ code: number; reason: string; frames: unknown[] }> {
  const client = new Client(url, options.protocols, options.headers && { headers: options.headers });
  const { code, reason } = await client.closed;
  return { code, reason, frames: client.frames };
}

/**
 * Waits until the broker holds `count` subscriptions in total. Subscriptions taken in a
 * protocol's `open()` land after the 101, so a test that publishes right away waits on this.
 */
export function subscriptions(broker: Broker, count: number): Promise<void> {
  return until(() => broker.stats().subscriptions === count, `${count} subscriptions (have ${broker.stats().subscriptions})`);
}

/** Waits until the broker has `count` open connections. */
export function connections(broker: Broker, count: number): Promise<void> {
  return until(() => broker.stats().connections === count, `${count} connections (have ${broker.stats().connections})`);
}

/** A child process whose output a test waits on line by line (the seed's Python client, an example's CLI). */
export class Proc {
  readonly child: ChildProcess;
  readonly lines: string[] = [];
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #waiters: Array<{ re: RegExp; resolve: (line: string) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }> = [];
  #cursor = 0;

  constructor(command: string, args: string[], env: Record<string, string> = {}) {
    this.child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        for (const w of this.#waiters.splice(0)) {
          clearTimeout(w.timer);
          w.reject(new Error(`process exited (${code ?? signal}) while waiting for ${w.re}; stderr: ${this.stderr}`));
        }
        resolve({ code, signal });
      });
    });
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      this.lines.push(line);
      for (const w of [...this.#waiters]) {
        if (w.re.test(line)) {
          this.#waiters.splice(this.#waiters.indexOf(w), 1);
          clearTimeout(w.timer);
          this.#cursor = this.lines.length;
          w.resolve(line);
        }
      }
    });
    this.child.stderr!.on('data', (chunk: Buffer) => (this.stderr += chunk.toString()));
  }

  /** Resolves with the next line (from the last one matched on) that matches. */
  next(re: RegExp, timeoutMs = 10_000): Promise<string> {
    for (let i = this.#cursor; i < this.lines.length; i++) {
      if (re.test(this.lines[i]!)) {
        this.#cursor = i + 1;
        return Promise.resolve(this.lines[i]!);
      }
    }
    this.#cursor = this.lines.length;
    if (this.child.exitCode !== null || this.child.signalCode !== null) {
      return Promise.reject(new Error(`process already exited; stderr: ${this.stderr}`));
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.splice(this.#waiters.findIndex((w) => w.timer === timer), 1);
        reject(new Error(`timed out waiting for ${re}; output: ${this.lines.slice(-5).join('\n')}; stderr: ${this.stderr}`));
      }, timeoutMs);
      this.#waiters.push({ re, resolve, reject, timer });
    });
  }

  /** Ends the process (SIGTERM) if it still runs and waits for it. */
  async stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    return this.exited;
  }
}
