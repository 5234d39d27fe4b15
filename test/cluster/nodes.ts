/** Broker nodes as child processes (test/fixtures/cluster-node.ts run through tsx), driven over stdin/stdout. */
import { spawn, type ChildProcess } from 'node:child_process';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { until } from './procs.js';

const fixture = fileURLToPath(new URL('../fixtures/cluster-node.ts', import.meta.url));
const root = fileURLToPath(new URL('../..', import.meta.url));

export type NodeEvent = Record<string, unknown> & { event: string };

export class NodeProcess {
  readonly events: NodeEvent[] = [];
  readonly exited: Promise<number | null>;
  port = 0;
  readonly #child: ChildProcess;
  #ids = 0;

  private constructor(env: Record<string, string>) {
    this.#child = spawn(process.execPath, ['--import', 'tsx', fixture], {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    this.exited = new Promise((resolve) => this.#child.once('exit', (code) => resolve(code)));
    readline.createInterface({ input: this.#child.stdout! }).on('line', (line) => {
      try {
        this.events.push(JSON.parse(line) as NodeEvent);
      } catch {
        this.events.push({ event: 'output', line });
      }
    });
  }

  /** Starts a node and resolves once it listens and its bus is started. */
  static async start(env: Record<string, string>): Promise<NodeProcess> {
    const node = new NodeProcess(env);
    let exitCode: number | null | undefined;
    void node.exited.then((code) => (exitCode = code));
    await until(() => {
      if (exitCode !== undefined) throw new Error(`node exited (${exitCode}) before it was ready`);
      return node.events.some((e) => e.event === 'ready');
    }, 'a node to be ready', 60_000);
    node.port = Number(node.events.find((e) => e.event === 'ready')!.port);
    return node;
  }

  url(token: string): string {
    return `ws://127.0.0.1:${this.port}/ws?token=${encodeURIComponent(token)}`;
  }

  /** Runs a host API call in the node (see the fixture) and resolves with its result. */
  async command(cmd: Record<string, unknown>): Promise<unknown> {
    const id = `c${++this.#ids}`;
    this.#child.stdin!.write(`${JSON.stringify({ ...cmd, id })}\n`);
    await until(() => this.events.some((e) => e.event === 'done' && e.id === id), `command ${String(cmd.cmd)}`);
    return this.events.find((e) => e.event === 'done' && e.id === id)!.result;
  }

  errors(code?: string): NodeEvent[] {
    return this.events.filter((e) => e.event === 'error' && (code === undefined || e.code === code));
  }

  /** This node's broker id (what cluster messages and `missing_nodes` name it by). */
  get nodeId(): string {
    return String(this.events.find((e) => e.event === 'ready')!.node);
  }

  /** Sends a signal without waiting for an exit (SIGSTOP, SIGCONT). */
  signal(signal: NodeJS.Signals): void {
    this.#child.kill(signal);
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<number | null> {
    if (this.#child.exitCode === null && this.#child.signalCode === null) this.#child.kill(signal);
    return this.exited;
  }
}
