/**
 * Subscription filters (seed 003) over real sockets: every validation error is a 400 that leaves
 * the connection up, and odd payloads never stop delivery. Also several subscribers on one
 * wildcard pattern and `stats().patterns`. Written from `npm run mutate` survivors (issue 19).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { type Client, connectAs, type Running, startEnvelope } from './helpers.js';

let running: Running | undefined;
const clients: Client[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await running?.stop();
  running = undefined;
});

async function as(id: string): Promise<Client> {
  const c = await connectAs(running!, id);
  clients.push(c);
  return c;
}

/**
 * Publishes each payload to `topic`, then a marker, and returns the ids each client received
 * before its marker: deliveries to one connection keep their order, so anything not received
 * by then was not delivered.
 */
async function deliveries(topic: string, payloads: Array<Record<string, unknown>>, to: Client[]): Promise<unknown[][]> {
  const marker = `m${Math.random()}`;
  for (const p of payloads) await running!.broker.publish(topic, p);
  await running!.broker.publish(topic, { marker });
  return Promise.all(
    to.map(async (c) => {
      await c.nextOf('Broadcast', (f) => f.data.payload.marker === marker);
      const got = c.frames.filter((f) => f.type === 'Broadcast' && f.data.topic === topic).map((f) => f.data.payload);
      const end = got.findIndex((p) => p.marker === marker);
      const ids = got.slice(0, end).map((p) => p.id);
      c.frames.length = 0;
      return ids;
    }),
  );
}

describe('every filter validation error is a 400 and the connection stays up', () => {
  const many = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`f${i}`, [i]]));
  const values = (n: number) => Array.from({ length: n }, (_, i) => i);

  it.each([
    ['an array', [['sev', 'high']], 'filters must be an object of field → array of values'],
    ['a string', 'sev=high', 'filters must be an object of field → array of values'],
    ['a number', 5, 'filters must be an object of field → array of values'],
    ['a boolean', true, 'filters must be an object of field → array of values'],
    ['an empty field name', { '': ['x'] }, 'filters. must be a non-empty array of at most 64 values'],
    ['a value that is not an array', { sev: 'high' }, 'filters.sev must be a non-empty array of at most 64 values'],
    ['an empty value list', { sev: [] }, 'filters.sev must be a non-empty array of at most 64 values'],
    ['65 values', { sev: values(65) }, 'filters.sev must be a non-empty array of at most 64 values'],
    ['an object value', { sev: ['high', { level: 3 }] }, 'filters.sev values must be strings, numbers, booleans or null'],
    ['an array value', { sev: [['high']] }, 'filters.sev values must be strings, numbers, booleans or null'],
    ['17 fields', many(17), 'filters may name at most 16 fields'],
  ])('%s', async (_name, filters, message) => {
    running = await startEnvelope();
    const c = await as('alice');
    const reply = await c.request('Subscribe', { topics: ['alerts'], filters });
    expect(reply.type).toBe('Error');
    expect(reply.data.code).toBe(400);
    expect(reply.data.message).toContain(message);
    // nothing was subscribed, and the connection still works
    await running.broker.publish('alerts', { id: 1 });
    expect((await c.request('Ping', {})).type).toBe('Ack');
    expect(c.frames.filter((f) => f.type === 'Broadcast')).toEqual([]);
    expect(running.broker.stats().subscriptions).toBe(0);
  });

  it('accepts the limits themselves: 16 fields, 64 values, null among the values', async () => {
    running = await startEnvelope();
    const c = await as('alice');
    expect((await c.request('Subscribe', { topics: ['a'], filters: many(16) })).type).toBe('Ack');
    expect((await c.request('Subscribe', { topics: ['b'], filters: { sev: values(64) } })).type).toBe('Ack');
    expect((await c.request('Subscribe', { topics: ['c'], filters: { sev: [null, 'x', 1, true] } })).type).toBe('Ack');
  });

  it('treats a null or empty filter as no filter', async () => {
    running = await startEnvelope();
    const nul = await as('n');
    const empty = await as('e');
    expect((await nul.request('Subscribe', { topics: ['t'], filters: null })).type).toBe('Ack');
    expect((await empty.request('Subscribe', { topics: ['t'], filters: {} })).type).toBe('Ack');
    expect(await deliveries('t', [{ id: 1, sev: 'low' }, { id: 2 }], [nul, empty])).toEqual([
      [1, 2],
      [1, 2],
    ]);
  });
});

describe('filter evaluation', () => {
  it('a path through null or a primitive neither throws nor stops delivery to others', async () => {
    running = await startEnvelope();
    const filtered = await as('f');
    const plain = await as('p');
    await filtered.request('Subscribe', { topics: ['alerts'], filters: { 'meta.sev': ['high'] } });
    await plain.request('Subscribe', { topics: ['alerts'] });
    const payloads = [
      { id: 1, meta: null },
      { id: 2, meta: 5 },
      { id: 3, meta: 'high' },
      { id: 4, meta: { sev: 'low' } },
      { id: 5, meta: { sev: 'high' } },
      { id: 6 },
      { id: 7, meta: { sev: null } },
      { id: 8, meta: { other: 1 } },
    ];
    expect(await deliveries('alerts', payloads, [filtered, plain])).toEqual([
      [1, 2, 3, 5, 6, 8], // missing on the way: passes; a present value must be allowed
      [1, 2, 3, 4, 5, 6, 7, 8],
    ]);
  });

  it('does not read properties of a string along the path', async () => {
    running = await startEnvelope();
    const c = await as('f');
    await c.request('Subscribe', { topics: ['t'], filters: { 'name.length': [99] } });
    // 'abc'.length is 3, but a string has no fields here: the path is missing, so it passes
    expect(await deliveries('t', [{ id: 1, name: 'abc' }, { id: 2, name: { length: 3 } }, { id: 3, name: { length: 99 } }], [c])).toEqual([[1, 3]]);
  });

  it('requires every named field to pass, and compares values by type', async () => {
    running = await startEnvelope();
    const c = await as('f');
    await c.request('Subscribe', { topics: ['t'], filters: { sev: ['high', 1], 'src.zone': ['eu', null] } });
    const payloads = [
      { id: 1, sev: 'high', src: { zone: 'eu' } },
      { id: 2, sev: 'high', src: { zone: 'us' } },
      { id: 3, sev: 'low', src: { zone: 'eu' } },
      { id: 4, sev: 1, src: { zone: null } },
      { id: 5, sev: '1' },
      { id: 6, sev: true },
      { id: 7, src: { zone: 'eu' } },
      { id: 8, sev: 'high', src: 'eu' },
    ];
    expect(await deliveries('t', payloads, [c])).toEqual([[1, 4, 7, 8]]);
  });

  it('keeps each subscription’s own filter on one pattern shared by several subscribers', async () => {
    running = await startEnvelope();
    const high = await as('h');
    const low = await as('l');
    await high.request('Subscribe', { topics: ['alerts/+'], filters: { sev: ['high'] } });
    await low.request('Subscribe', { topics: ['alerts/+'], filters: { sev: ['low'] } });
    expect(await deliveries('alerts/x', [{ id: 1, sev: 'high' }, { id: 2, sev: 'low' }], [high, low])).toEqual([[1], [2]]);
  });
});

describe('several subscribers on one wildcard pattern', () => {
  it('removing one leaves the others receiving; stats().patterns counts the pattern once', async () => {
    running = await startEnvelope();
    const [a, b, c] = [await as('a'), await as('b'), await as('c')];
    for (const x of [a, b, c]) expect((await x.request('Subscribe', { topics: ['room/+'] })).type).toBe('Ack');
    expect(running.broker.stats()).toMatchObject({ patterns: 1, subscriptions: 3 });
    expect((await b.request('Unsubscribe', { topics: ['room/+'] })).type).toBe('Ack');
    expect(running.broker.stats()).toMatchObject({ patterns: 1, subscriptions: 2 });
    expect(await deliveries('room/1', [{ id: 1 }], [a, c])).toEqual([[1], [1]]);
    expect(b.frames.filter((f) => f.type === 'Broadcast')).toEqual([]);
    await a.close();
    await c.request('Unsubscribe', { topics: ['room/+'] });
    expect(running.broker.stats()).toMatchObject({ patterns: 0, subscriptions: 0 });
  });

  it('unsubscribing a/+/c leaves a sibling a/+/d, and a/# leaves a/+', async () => {
    running = await startEnvelope();
    const c = await as('x');
    await c.request('Subscribe', { topics: ['a/+/c', 'a/+/d', 'a/#', 'a/+'] });
    expect(running.broker.stats().patterns).toBe(4);
    await c.request('Unsubscribe', { topics: ['a/+/c', 'a/#'] });
    expect(running.broker.stats().patterns).toBe(2);
    await running.broker.publish('a/1/c', { id: 'c' });
    await running.broker.publish('a/1/d', { id: 'd' });
    await running.broker.publish('a/1', { id: 'one' });
    await running.broker.publish('a', { id: 'a' });
    await running.broker.publish('a/end', { marker: 'end' });
    await c.nextOf('Broadcast', (f) => f.data.payload.marker === 'end');
    expect(c.frames.filter((f) => f.type === 'Broadcast').map((f) => f.data.payload.id ?? f.data.payload.marker)).toEqual(['d', 'one', 'end']);
  });
});
