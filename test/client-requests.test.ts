/**
 * switchyard/client's requests and subscriptions against a real broker on port 0 (in this
 * process): promises with Acks and typed errors, timeouts, no offline buffering, idempotent
 * subscriptions, callback errors, binary frames, presence and history.
 */
import WebSocket from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { envelope, type BrokerOptions } from 'switchyard';
import { createClient, SwitchyardError, type Client, type Message } from 'switchyard/client';
import { eventually } from './conformance/wait.js';
import { start, type Running } from './helpers.js';
import { reach } from './client-helpers.js';

const cleanup: Array<() => unknown> = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

let release: (() => void) | undefined;

async function broker(options: Partial<BrokerOptions> = {}): Promise<Running> {
  const running = await start({
    endpoints: [
      {
        path: '/ws',
        protocol: envelope({
          handlers: {
            // Answers only when the test says so: a late answer for a request that timed out.
            'X-Late': () => new Promise<string>((resolve) => (release = () => resolve('late'))),
            'X-Echo': (_conn, data) => data,
          },
        }),
      },
    ],
    authenticate: ({ credentials }) =>
      credentials === undefined ? null : { id: credentials.token, grants: [{ topic: '#', access: 'readwrite' }, { topic: '$presence/#', access: 'read' }] },
    history: { topics: ['chat/#'] },
    heartbeat: false,
    ...options,
  });
  cleanup.push(() => running.stop());
  return running;
}

async function connected(running: Running, token: string): Promise<Client> {
  const c = createClient({ url: running.url(), WebSocket, getToken: () => token, backoff: { minMs: 10, maxMs: 50 } });
  cleanup.push(() => c.close());
  c.connect();
  await reach(c, 'connected');
  return c;
}

describe('switchyard/client requests', () => {
  it('publish, direct message, history, X- call and ping resolve with their answers', async () => {
    const b = await broker();
    const alice = await connected(b, 'alice');
    const bob = await connected(b, 'bob');
    const sub = bob.subscribe('chat/a');
    await eventually(() => sub.state, (s) => s === 'subscribed', 'subscribed');
    expect(await alice.publish('chat/a', { text: 'hi' })).toMatchObject({ status: 'delivered', recipients: 1, offset: 1 });
    const direct = new Promise((resolve) => bob.on('direct', resolve));
    expect((await alice.send('bob', { psst: true })).delivered_to).toHaveLength(1);
    expect(await direct).toMatchObject({ from: 'alice', payload: { psst: true } });
    const page = await alice.history('chat/a');
    expect(page).toMatchObject({ topic: 'chat/a', latest_offset: 1, complete: true });
    expect(page.messages.map((m) => m.payload)).toEqual([{ text: 'hi' }]);
    expect(await alice.call('X-Echo', { a: 1 })).toEqual({ a: 1 });
    expect(await alice.ping()).toBeGreaterThanOrEqual(0);
  });

  it('rejects with a typed error: code, message, details', async () => {
    const b = await broker();
    const alice = await connected(b, 'alice');
    const error = await alice.send('nobody', {}).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SwitchyardError);
    expect(error).toMatchObject({ code: 404, details: { queued: true } });
    await expect(alice.publish('chat/#', {})).rejects.toMatchObject({ code: 400 });
    await expect(alice.call('X-Unknown')).rejects.toMatchObject({ code: 400 });
  });

  it('times out, and the late answer is not taken for the next request', async () => {
    const b = await broker();
    const alice = await connected(b, 'alice');
    await expect(alice.call('X-Late', {}, { timeoutMs: 100 })).rejects.toMatchObject({ code: 'TIMEOUT' });
    // Requests behind it wait for it on the server; release it, then ask again.
    const echo = alice.call('X-Echo', 'second');
    release!();
    expect(await echo).toBe('second');
  });

  it('fails at once while not connected: no silent offline buffering', async () => {
    const b = await broker();
    const c = createClient({ url: b.url(), WebSocket, getToken: () => 'alice' });
    cleanup.push(() => c.close());
    await expect(c.publish('chat/a', {})).rejects.toMatchObject({ code: 'DISCONNECTED' });
    c.close();
    await expect(c.publish('chat/a', {})).rejects.toMatchObject({ code: 'CLOSED' });
  });

  it('binary publish and receive in the server format; presence query and $presence watching', async () => {
    const b = await broker();
    const alice = await connected(b, 'alice');
    const watch = alice.watchPresence('bob');
    const seen: unknown[] = [];
    watch.on('message', (m) => seen.push(m.payload));
    const bin = alice.subscribe('files/x');
    const got = new Promise<Message>((resolve) => bin.on('message', resolve));
    await eventually(() => [watch.state, bin.state], (s) => s.every((x) => x === 'subscribed'), 'subscribed');
    const bob = await connected(b, 'bob');
    await eventually(() => seen, (s) => s.length === 1, 'bob online');
    expect(seen[0]).toMatchObject({ user_id: 'bob', status: 'online' });
    expect(await alice.presence(['bob', 'zed'])).toMatchObject([
      { user_id: 'bob', status: 'online' },
      { user_id: 'zed', status: 'offline' },
    ]);
    const details = await bob.publishBinary('files/x', new Uint8Array([1, 2, 3]));
    expect(details).toMatchObject({ size: 3, type: 'broadcast', recipients: 1 });
    const message = await got;
    expect(message.topic).toBe('files/x');
    expect([...message.binary!]).toEqual([1, 2, 3]);
  });
});

describe('switchyard/client subscriptions', () => {
  it('is idempotent under double subscribe and unsubscribe (React StrictMode)', async () => {
    const b = await broker();
    const alice = await connected(b, 'alice');
    const a = alice.subscribe('chat/x');
    const again = alice.subscribe('chat/x');
    expect(again).toBe(a);
    a.unsubscribe();
    a.subscribe(); // StrictMode: mount, unmount, mount
    await eventually(() => a.state, (s) => s === 'subscribed', 'subscribed');
    await alice.ping();
    expect(b.broker.stats().subscriptions).toBe(1);
    const got: unknown[] = [];
    a.on('message', (m) => got.push(m.payload));
    const other = await connected(b, 'bob');
    await other.publish('chat/x', 1);
    await eventually(() => got.length, (n) => n === 1, 'one message');
    a.unsubscribe();
    a.unsubscribe();
    await eventually(() => a.state, (s) => s === 'unsubscribed', 'unsubscribed');
    await alice.ping();
    expect(b.broker.stats().subscriptions).toBe(0);
    alice.subscribe('chat/z');
    await eventually(() => alice.subscription('chat/z')?.state, (s) => s === 'subscribed', 'chat/z subscribed');
    alice.removeSubscription('chat/z');
    expect(alice.subscription('chat/z')).toBeUndefined();
    await alice.ping();
    expect(b.broker.stats().subscriptions).toBe(0);
  });

  it('a throwing listener goes to the error event and breaks nothing', async () => {
    const b = await broker();
    const alice = await connected(b, 'alice');
    const errors: Error[] = [];
    alice.on('error', (e) => errors.push(e));
    alice.on('state', () => {
      throw new Error('state listener');
    });
    const sub = alice.subscribe('chat/y');
    const got: unknown[] = [];
    sub.on('message', (m) => {
      got.push(m.payload);
      throw new Error(`listener ${String(m.payload)}`);
    });
    await eventually(() => sub.state, (s) => s === 'subscribed', 'subscribed');
    const bob = await connected(b, 'bob');
    await bob.publish('chat/y', 1);
    await bob.publish('chat/y', 2);
    await eventually(() => got.length, (n) => n === 2, 'both messages');
    expect(errors.map((e) => e.message)).toEqual(['listener 1', 'listener 2']);
    // The connection's own state machine still works: a forced reconnect goes through.
    b.broker.revoke({ principal: 'alice' });
    await reach(alice, 'disconnected');
    await reach(alice, 'connected');
    await eventually(() => sub.state, (s) => s === 'subscribed', 'resubscribed');
    expect(errors.filter((e) => e.message === 'state listener').length).toBeGreaterThanOrEqual(2);
  });

  it('a subscription the server refuses or drops reports an error and is unsubscribed', async () => {
    let allowed = true;
    const b = await broker({ authorize: (_p, _a, topic) => allowed || !topic.startsWith('secret') });
    const alice = await connected(b, 'alice');
    const sub = alice.subscribe('secret/a');
    const errors: SwitchyardError[] = [];
    sub.on('error', (e) => errors.push(e));
    await eventually(() => sub.state, (s) => s === 'subscribed', 'subscribed');
    allowed = false;
    await b.broker.reauthorize('alice');
    await eventually(() => sub.state, (s) => s === 'unsubscribed', 'dropped');
    expect(errors[0]).toMatchObject({ code: 403 });
    sub.subscribe();
    await eventually(() => errors.length, (n) => n === 2, 'refused');
    expect(sub.state).toBe('unsubscribed');
  });
});
