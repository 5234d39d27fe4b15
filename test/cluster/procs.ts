/**
 * Real processes for fault tests: a redis-server or nats-server of the test's own on a spare port
 * (never the shared ones), and a TCP proxy whose open connections can be frozen (bytes stop, the
 * sockets stay open: a silent link).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { reachable } from './services.js';

/** Debian's binaries where they are (sbin may be missing from a CI PATH), else whatever PATH finds. */
const binary = (name: string, ...paths: string[]) => paths.find((p) => existsSync(p)) ?? name;

/** A port nothing listens on right now. */
export async function sparePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Polls `check` every 20 ms until it holds; rejects after `timeoutMs`. */
export async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A server process of the test's own, on a fixed port so it can be killed and started again there. */
export class OwnServer {
  readonly port: number;
  readonly #command: string;
  readonly #args: string[];
  #child: ChildProcess | null = null;

  private constructor(command: string, args: string[], port: number) {
    this.#command = command;
    this.#args = args;
    this.port = port;
  }

  static async redis(): Promise<OwnServer> {
    const port = await sparePort();
    return new OwnServer(binary('redis-server', '/usr/bin/redis-server'), ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], port);
  }

  /** With `monitorPort`, the server's HTTP monitoring (`/connz`) listens there. */
  static async nats(monitorPort?: number): Promise<OwnServer> {
    const port = await sparePort();
    const monitor = monitorPort === undefined ? [] : ['-m', String(monitorPort)];
    return new OwnServer(binary('nats-server', '/usr/sbin/nats-server', '/usr/bin/nats-server'), ['-a', '127.0.0.1', '-p', String(port), ...monitor], port);
  }

  async start(): Promise<void> {
    const child = spawn(this.#command, this.#args, { stdio: 'ignore' });
    this.#child = child;
    const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`${this.#command} exited (${code}) at start`))));
    exited.catch(() => undefined);
    await Promise.race([until(() => reachable(this.port), `${this.#command} on ${this.port}`), exited]);
  }

  /** SIGKILL, then waits until the port is free. */
  async kill(): Promise<void> {
    const child = this.#child;
    this.#child = null;
    if (child === null || child.exitCode !== null) return;
    const gone = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await gone;
    await until(async () => !(await reachable(this.port)), `port ${this.port} to be free`);
  }
}

/** Forwards 127.0.0.1:<port> to a target; `freeze()` stops the bytes of the connections open now. */
export class FreezableProxy {
  readonly #server: net.Server;
  readonly #pairs = new Set<{ client: net.Socket; upstream: net.Socket }>();
  port = 0;

  constructor(targetPort: number) {
    this.#server = net.createServer((client) => {
      const upstream = net.connect(targetPort, '127.0.0.1');
      const pair = { client, upstream };
      this.#pairs.add(pair);
      client.pipe(upstream);
      upstream.pipe(client);
      const end = () => {
        client.destroy();
        upstream.destroy();
        this.#pairs.delete(pair);
      };
      client.on('error', end).on('close', end);
      upstream.on('error', end).on('close', end);
    });
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    this.port = (this.#server.address() as net.AddressInfo).port;
  }

  /** Open connections stop passing bytes either way, and stay open. New connections pass. */
  freeze(): void {
    for (const { client, upstream } of this.#pairs) {
      client.unpipe(upstream);
      upstream.unpipe(client);
      client.pause();
      upstream.pause();
    }
  }

  async close(): Promise<void> {
    for (const { client, upstream } of this.#pairs) {
      client.destroy();
      upstream.destroy();
    }
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
