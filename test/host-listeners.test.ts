/**
 * Host code is untrusted code: listeners that throw are reported and change nothing, a
 * connection is never refused after its 101, and close() always resolves.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { Logger } from 'switchyard';
import { Client, connectAs, startEnvelope, until, type Running } from './helpers.js';

let running: Running | undefined;
afterEach(async () => {
  await running?.stop();
  running = undefined;
});

/** Rejects if `promise` has not settled within `ms` (a hang shows as a failure, not a stuck run). */
function bounded<T>(promise: Promise<T>, what: string, ms = 5000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function recordingLogger(): Logger & { errors: Array<{ msg: string; ctx?: Record<string, unknown> }> } {
  const errors: Array<{ msg: string; ctx?: Record<string, unknown> }> = [];
  return { errors, debug() {}, info() {}, warn() {}, error: (msg, ctx) => void errors.push({ msg, ...(ctx && { ctx }) }) };
}

describe('host listeners that throw', () => {
  it('a connection listener: reported, the connection works, and close() resolves', async () => {
    running = await startEnvelope();
    const errors: Array<Error & { context?: Record<string, unknown> }> = [];
    running.broker.on('error', (err) => errors.push(err));
    running.broker.on('connection', () => {
      throw new Error('host bug in connection');
    });
    let later = 0;
    running.broker.on('connection', () => later++);
    const alice = await connectAs(running, 'alice');
    // The connection is the one the 101 opened: it subscribes and receives.
    expect((await alice.request('Subscribe', { topics: ['news/#'] })).type).toBe('Ack');
    await running.broker.publish('news/a', { n: 1 });
    expect((await alice.nextOf('Broadcast')).data.payload).toEqual({ n: 1 });
    expect(later).toBe(1);
    expect(errors.map((e) => [e.message, e.context?.during])).toEqual([['host bug in connection', 'connection listener']]);
    expect(running.broker.stats()).toMatchObject({ connections: 1, rejectedHandshakes: 0 });
    await bounded(running.broker.close(), 'broker.close()');
    expect(await alice.closed).toMatchObject({ code: 1001 });
  });

  it('a connection listener: the socket gets exactly one 101 and no refusal', async () => {
    running = await startEnvelope();
    running.broker.on('error', () => {});
    running.broker.on('connection', () => {
      throw new Error('host bug in connection');
    });
    const socket = net.connect(running.port, '127.0.0.1');
    let received = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (received += chunk));
    socket.write(
      'GET /ws?token=alice HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
    // The welcome (a text frame carrying "connected") follows the 101 in the same write.
    await until(() => received.includes('connected'), 'the welcome');
    expect(received.match(/HTTP\/1\.1 101/g)).toHaveLength(1);
    await until(() => running!.broker.stats().connections === 1, 'one registered connection');
    const closing = running.broker.close();
    socket.destroy();
    await bounded(closing, 'broker.close()');
  });

  it('a disconnect listener: reported, the connection is forgotten, and close() resolves', async () => {
    running = await startEnvelope();
    const errors: Array<Error & { context?: Record<string, unknown> }> = [];
    running.broker.on('error', (err) => errors.push(err));
    running.broker.on('disconnect', () => {
      throw new Error('host bug in disconnect');
    });
    const alice = await connectAs(running, 'alice');
    const bob = await connectAs(running, 'bob');
    await alice.close();
    await until(() => running!.broker.stats().connections === 1, 'alice forgotten');
    expect(running.broker.connectionsOf('alice')).toBe(0);
    // bob is still open: close() must get past his disconnect listener too.
    await bounded(running.broker.close(), 'broker.close()');
    expect(await bob.closed).toMatchObject({ code: 1001 });
    expect(errors.map((e) => [e.message, e.context?.during])).toEqual([
      ['host bug in disconnect', 'disconnect listener'],
      ['host bug in disconnect', 'disconnect listener'],
    ]);
  });

  it('an error listener: the failure goes to the logger, the refusal still happens, and close() resolves', async () => {
    const logger = recordingLogger();
    running = await startEnvelope({
      logger,
      authenticate: () => {
        throw new Error('session store down');
      },
    });
    running.broker.on('error', () => {
      throw new Error('host bug in error');
    });
    const alice = new Client(running.url('/ws?token=alice'));
    expect(await bounded(alice.closed, 'the refusal')).toMatchObject({ code: 1011 });
    expect(logger.errors.map((e) => [e.msg, e.ctx?.during])).toEqual([['host bug in error', 'error listener']]);
    await bounded(running.broker.close(), 'broker.close()');
  });
});
