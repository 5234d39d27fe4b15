/** Raw sockets for the hardening tests: requests no well-behaved client would send. */
import net from 'node:net';
import { inspect } from 'node:util';
import type { Logger } from 'switchyard';

/** Sends a raw upgrade request and resolves with the status code of the answer (101, 404, …). */
export function rawUpgrade(port: number, target: string, extraHeaders: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let head = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer to ${target}`));
    }, 10_000);
    socket.setEncoding('latin1');
    socket.on('connect', () => {
      let extra = '';
      for (const [name, value] of Object.entries(extraHeaders)) extra += `${name}: ${value}\r\n`;
      socket.write(
        `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`,
      );
    });
    socket.on('data', (chunk: string) => {
      head += chunk;
      const m = /^HTTP\/1\.1 (\d{3})/.exec(head);
      if (m === null) return;
      clearTimeout(timer);
      socket.destroy();
      resolve(Number(m[1]));
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      if (!/^HTTP\/1\.1 \d{3}/.test(head)) resolve(0); // closed without an answer
    });
  });
}

/** A logger and an `error` listener that keep everything they are given, fully inspected. */
export class Capture {
  readonly lines: string[] = [];
  readonly logger: Logger = {
    debug: (msg, ctx) => this.add('debug', msg, ctx),
    info: (msg, ctx) => this.add('info', msg, ctx),
    warn: (msg, ctx) => this.add('warn', msg, ctx),
    error: (msg, ctx) => this.add('error', msg, ctx),
  };

  readonly onError = (err: unknown): void => this.add('error-event', '', err);

  add(level: string, msg: string, value: unknown): void {
    // showHidden: non-enumerable properties too (a Node error's `input`, its stack).
    const extra = value instanceof Error ? `${value.stack ?? ''} ${String(Object.getOwnPropertyNames(value).map((k) => String((value as unknown as Record<string, unknown>)[k])))}` : '';
    this.lines.push(`${level} ${msg} ${inspect(value, { showHidden: true, depth: 20 })} ${extra}`);
  }

  containing(secret: string): string[] {
    return this.lines.filter((l) => l.includes(secret));
  }
}
