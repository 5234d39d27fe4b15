/**
 * switchyard/client against a broker in its own process: killed with SIGKILL and restarted on the
 * same port, frozen with SIGSTOP (a missed heartbeat), and refusing for good (terminal codes).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { SwitchyardError, type Client, type Message } from 'switchyard/client';
import { eventually } from './conformance/wait.js';
import { ChildBroker, client, reach } from './client-helpers.js';

const cleanup: Array<() => unknown> = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

async function broker(env?: Record<string, string>): Promise<ChildBroker> {
  const b = new ChildBroker();
  cleanup.push(() => b.dispose());
  await b.start(env);
  return b;
}

function track<C extends Client>(c: C): C {
  cleanup.push(() => c.close());
  return c.connect();
}

describe('switchyard/client: a broker killed and restarted', () => {
  it('reconnects, resubscribes and recovers what was published while it was away: no gap, no duplicate, in order', async () => {
    const b = await broker();
    const alice = track(client(b.url, 'alice'));
    const bob = track(client(b.url, 'bob'));
    const got: Message[] = [];
    const sub = alice.subscribe('chat/room');
    sub.on('message', (m) => got.push(m));
    await eventually(() => sub.state, (s) => s === 'subscribed', 'subscribed', 10_000);
    await reach(bob, 'connected');
    for (let n = 1; n <= 5; n++) await bob.publish('chat/room', { n });
    await eventually(() => got.length, (l) => l === 5, 'five live messages', 10_000);

    await b.kill();
    await reach(alice, 'disconnected');
    // The new process publishes 6..8 before it listens: alice can only have them by recovering.
    await b.start({ PUBLISH_ON_START: 'chat/room:6:3' });
    await eventually(() => sub.recovered, (r) => r === true, 'recovered', 15_000);
    await eventually(() => got.length, (l) => l >= 8, 'eight messages', 10_000);

    await reach(bob, 'connected');
    for (let n = 9; n <= 10; n++) await bob.publish('chat/room', { n }, { retry: true });
    await eventually(() => got.length, (l) => l >= 10, 'ten messages', 10_000);
    // Any late duplicate would arrive before this round trip's answer.
    await alice.ping();
    expect(got.map((m) => (m.payload as { n: number }).n)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(got.map((m) => m.offset)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(sub.state).toBe('subscribed');
    expect(alice.states).toEqual(['connecting', 'connected', 'disconnected', ...alice.states.slice(3, -1), 'connected']);
  });

  it('drops replayed messages it already has (a store that replays from before the position)', async () => {
    const b = await broker();
    const alice = track(client(b.url, 'alice'));
    const bob = track(client(b.url, 'bob'));
    const got: number[] = [];
    const sub = alice.subscribe('chat/dup');
    sub.on('message', (m) => got.push((m.payload as { n: number }).n));
    await eventually(() => sub.state, (s) => s === 'subscribed', 'subscribed', 10_000);
    await reach(bob, 'connected');
    for (let n = 1; n <= 4; n++) await bob.publish('chat/dup', { n });
    await eventually(() => got.length, (l) => l === 4, 'four messages', 10_000);
    await b.kill();
    await reach(alice, 'disconnected');
    await b.start({ PUBLISH_ON_START: 'chat/dup:5:2', SLOPPY_REPLAY: '1' });
    await eventually(() => got.length, (l) => l >= 6, 'six messages', 15_000);
    await alice.ping();
    expect(got).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('recovers from the position of a subscription that had seen no message yet', async () => {
    const b = await broker();
    const bob = track(client(b.url, 'bob'));
    await reach(bob, 'connected');
    await bob.publish('chat/quiet', { n: 1 }); // history exists, alice never sees it
    const alice = track(client(b.url, 'alice'));
    const got: number[] = [];
    const sub = alice.subscribe('chat/quiet');
    sub.on('message', (m) => got.push((m.payload as { n: number }).n));
    await eventually(() => sub.position, (p) => p?.offset === 1, 'the position from the server', 10_000);
    await b.kill();
    await reach(alice, 'disconnected');
    await b.start({ PUBLISH_ON_START: 'chat/quiet:2:2' });
    await eventually(() => got.length, (l) => l >= 2, 'recovered messages', 15_000);
    await alice.ping();
    expect(got).toEqual([2, 3]);
    expect(sub.recovered).toBe(true);
  });

  it('fails a pending request at once when the connection drops, and retries one that asked for it', async () => {
    const b = await broker();
    const alice = track(client(b.url, 'alice'));
    await reach(alice, 'connected');
    const hanging = alice.call('X-Hang', {}, { timeoutMs: 60_000 }).catch((e: unknown) => e);
    const retried = alice.call('X-Echo', { x: 1 }, { retry: true, timeoutMs: 60_000 });
    b.signal('SIGSTOP'); // X-Echo is not answered before the kill
    await b.kill();
    expect(await hanging).toMatchObject({ code: 'DISCONNECTED' });
    await b.start();
    await expect(retried).resolves.toEqual({ x: 1 });
  });

  it('a missed heartbeat (the broker frozen with SIGSTOP) reconnects instead of waiting', async () => {
    const b = await broker();
    const alice = track(client(b.url, 'alice', { heartbeat: { idleMs: 200, timeoutMs: 300 } }));
    await reach(alice, 'connected');
    const reasons: string[] = [];
    alice.on('state', (e) => reasons.push(`${e.state}:${e.reason ?? ''}`));
    b.signal('SIGSTOP');
    await reach(alice, 'disconnected');
    expect(reasons[0]).toBe('disconnected:heartbeat timeout');
    b.signal('SIGCONT');
    await reach(alice, 'connected');
  });
});

describe('switchyard/client: terminal close codes', () => {
  it.each([
    ['bad', 4003],
    ['solo', 4009],
  ])('token %s: close %i stops reconnecting and surfaces an error', async (token, code) => {
    const b = await broker();
    if (token === 'solo') await reach(track(client(b.url, 'solo')), 'connected'); // the identity is already connected
    const errors: SwitchyardError[] = [];
    // No backoff at all: a reconnect would be a 0 ms timer, long fired by the end of the round trip below.
    const c = client(b.url, token, { backoff: { minMs: 0, maxMs: 0 } });
    c.on('error', (e) => errors.push(e as SwitchyardError));
    track(c);
    await reach(c, 'closed');
    expect(errors.map((e) => e.code)).toEqual([code]);
    const other = track(client(b.url, 'carol'));
    await reach(other, 'connected');
    await other.ping();
    expect(c.states).toEqual(['connecting', 'closed']);
  });

  it('4002 (token revoked or expired) gets a fresh token and reconnects', async () => {
    const b = await broker();
    let calls = 0;
    const c = track(client(b.url, () => (calls++, 'dave')));
    await reach(c, 'connected');
    expect(calls).toBe(1);
    // X-Expire makes the fixture close the caller with 4002, as a revoked or expired token would.
    await c.call('X-Expire').catch(() => {});
    await eventually(() => calls, (n) => n === 2, 'a second getToken', 10_000);
    await reach(c, 'connected');
  });
});
