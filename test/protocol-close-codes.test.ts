/**
 * The close codes and error frames the stream (seeds 002/004), tagged (seed 000) and events
 * (seed 003) protocols give for input that breaks their rules, at the edges the main protocol
 * tests leave out: a bind that returns the wrong shape, a publish topic that is not valid, a
 * subscription limit, a rate-limited frame, a tag list that is not URL-encoded properly, a frame
 * whose message is null, a revoke without a reason, and the options each protocol refuses.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { BrokerError, events, stream, tagged, type BrokerOptions, type Principal, type Protocol } from 'switchyard';
import { Client, start, until, type Running } from './helpers.js';
import { open, refused, subscriptions } from './wire-helpers.js';

let running: Running | undefined;
const clients: Client[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await running?.stop();
  running = undefined;
});

const WRITER: Principal = { id: 'writer', grants: [{ topic: '#', access: 'readwrite' }] };
const authenticate: BrokerOptions['authenticate'] = ({ credentials }) => (credentials?.token === 'w' ? WRITER : null);

async function serve(protocol: Protocol, extra: Partial<BrokerOptions> = {}, path = '/ws/:id'): Promise<Running> {
  running = await start({ endpoints: [{ path, protocol }], authenticate, heartbeat: false, ...extra });
  return running;
}

async function client(path: string, headers: Record<string, string> = {}): Promise<Client> {
  const c = await open(running!.url(path), { headers: { Authorization: 'Bearer w', ...headers } });
  clients.push(c);
  return c;
}

describe('stream', () => {
  it('closes 1011 and reports it when bind returns something that is not a binding', async () => {
    const shapes: Record<string, unknown> = {
      string: { subscribe: 'devices/a' },
      numbers: { subscribe: [1] },
      publish: { subscribe: [], publish: 5 },
      scalar: 'devices/a',
    };
    await serve(stream({ bind: ({ id }) => shapes[id!] as never }));
    const errors: Error[] = [];
    running!.broker.on('error', (e) => errors.push(e));
    for (const id of Object.keys(shapes)) {
      const c = await client(`/ws/${id}`);
      expect((await c.closed).code, id).toBe(1011);
    }
    expect(errors.map((e) => e.message)).toEqual(Object.keys(shapes).map(() => 'stream: bind must return { subscribe: string[], publish?: string } or null'));
    // A valid one with an empty subscribe list and no publish topic stays open.
    await running!.stop();
    await serve(stream({ bind: () => ({ subscribe: [] }) }));
    const ok = await client('/ws/x');
    ok.sendJson({ ignored: true });
    await ok.roundTrip();
    expect(running!.broker.stats().connections).toBe(1);
  });

  it('closes 1008 naming the topic when the bound publish topic is not a valid topic', async () => {
    await serve(stream({ bind: ({ id }) => ({ subscribe: [], publish: `devices/${id}/+` }) }));
    const c = await client('/ws/d1');
    c.sendJson({ t: 1 });
    const closed = await c.closed;
    expect(closed.code).toBe(1008);
    expect(closed.reason).toMatch(/^invalid topic: /);
  });

  it('closes 1008 when the path binds more topics than limits.maxSubscriptions', async () => {
    await serve(stream({ bind: () => ({ subscribe: ['a', 'b', 'c'] }) }), { limits: { maxSubscriptions: 2 } });
    const c = await client('/ws/x');
    expect((await c.closed).code).toBe(1008);
    expect(running!.broker.stats().subscriptions).toBe(0);
  });

  it('drops a rate-limited frame and stays open; adds version to object payloads only', async () => {
    await serve(stream({ bind: ({ id }) => ({ subscribe: [`s/${id}`], publish: `s/${id}` }), version: 2 }), {
      limits: { rate: { perSecond: 0.001, burst: 1 } },
    });
    const device = await client('/ws/a');
    const viewer = await client('/ws/a');
    await subscriptions(running!.broker, 2);
    device.sendJson({ n: 1 });
    device.sendJson({ n: 2 }); // over the rate: dropped, no frame, no close
    expect(await viewer.next()).toEqual({ n: 1, version: 2 });
    await running!.broker.publish('s/a', [1, 2]);
    await running!.broker.publish('s/a', 'text');
    await until(() => viewer.frames.length === 3, 'the array and the string');
    expect(viewer.frames.slice(1)).toEqual([[1, 2], 'text']);
    await device.roundTrip();
    expect(device.frames).toEqual([[1, 2], 'text']);
    expect(viewer.frames.some((f) => (f as { n?: number }).n === 2)).toBe(false);
  });

  it('refuses options that are not what they must be', () => {
    const bind = () => null;
    expect(() => stream(null as never)).toThrow(new TypeError('stream: options.bind must be a function (params, principal) => { subscribe, publish? }'));
    expect(() => stream({ bind: 'x' as never })).toThrow(TypeError);
    expect(() => stream({ bind, version: -2 })).toThrow(new TypeError('stream: options.version must be a positive integer'));
    expect(() => stream({ bind, maxInvalidFrames: 1.5 })).toThrow(new TypeError('stream: options.maxInvalidFrames must be a positive integer'));
    expect(() => stream({ bind, version: 1, maxInvalidFrames: 1, transform: (p) => p })).not.toThrow();
  });
});

describe('tagged', () => {
  const serveTagged = (extra: Partial<BrokerOptions> = {}, protocol = tagged()) => serve(protocol, extra, '/tags');

  it('closes 4003 "malformed tag list" for a Tag header that is not valid percent-encoding', async () => {
    await serveTagged();
    const r = await refused(running!.url('/tags'), { headers: { Authorization: 'Bearer w', Tag: 'alerts/%E0%A4%A' } });
    expect(r).toMatchObject({ code: 4003, reason: 'malformed tag list' });
  });

  it('falls back to ?tags= when the Tag header is empty, and does not decode the query a second time', async () => {
    await serveTagged();
    const c = await client(`/tags?tags=${encodeURIComponent('a%25b')}`, { Tag: '' });
    await subscriptions(running!.broker, 1);
    await running!.broker.publish('a%b', 'decoded twice');
    await running!.broker.publish('a%25b', 'as sent');
    expect(await c.next()).toEqual({ tag: 'a%25b', message: 'as sent' });
    expect(c.frames).toHaveLength(1);
  });

  it('closes 1008 when the tags are more than limits.maxSubscriptions', async () => {
    await serveTagged({ limits: { maxSubscriptions: 1 } });
    const r = await refused(running!.url('/tags'), { headers: { Authorization: 'Bearer w', Tag: 'a,b' } });
    expect(r.code).toBe(1008);
  });

  it('publishes a frame whose message is null, closes 1008 naming an empty tag, and drops a rate-limited frame', async () => {
    await serveTagged({ limits: { rate: { perSecond: 0.001, burst: 2 } } });
    const reader = await client('/tags', { Tag: 't' });
    const writer = await client('/tags', { Tag: 'other' });
    const careless = await client('/tags', { Tag: 'other' });
    await subscriptions(running!.broker, 3);
    writer.sendJson({ tag: 't', message: null });
    writer.sendJson({ tag: 't', message: 1 });
    writer.sendJson({ tag: 't', message: 2 }); // the third in a row: refused by the rate limit, dropped
    await until(() => reader.frames.length === 2, 'two messages');
    await writer.roundTrip();
    expect(reader.frames).toEqual([{ tag: 't', message: null }, { tag: 't', message: 1 }]);
    expect(writer.ws.readyState).toBe(writer.ws.OPEN);
    careless.sendJson({ tag: '', message: 1 });
    expect(await careless.closed).toEqual({ code: 1008, reason: '"tag" must be a non-empty string' });
  });

  it('delivers no binary publish (a tagged frame is JSON)', async () => {
    await serveTagged();
    const c = await client('/tags', { Tag: 't' });
    await subscriptions(running!.broker, 1);
    await running!.broker.publish('t', null, { binary: Buffer.from([1, 2]) });
    await running!.broker.publish('t', 'after');
    expect(await c.next()).toEqual({ tag: 't', message: 'after' });
    expect(c.binary).toEqual([]);
  });

  it('refuses an empty query name and a header that is not a string', () => {
    expect(() => tagged({ query: '' })).toThrow(new TypeError('tagged: query must be a non-empty string or false'));
    expect(() => tagged({ header: 5 as never })).toThrow(new TypeError('tagged: header must be a non-empty string or false'));
    expect(() => tagged({ header: false })).not.toThrow();
    expect(() => tagged({ query: false })).not.toThrow();
  });
});

describe('events', () => {
  const serveEvents = (extra: Partial<BrokerOptions> = {}, protocol = events()) => serve(protocol, extra, '/events');

  it("says 'credentials revoked' when a revoke gives no reason, and AUTH_ERROR with the reason for a 4003 close", async () => {
    await serveEvents();
    const a = await client('/events');
    running!.broker.revoke({ principal: 'writer' }, '');
    expect(await a.nextOf('error')).toMatchObject({ code: 'AUTH_ERROR', message: 'credentials revoked' });
    expect((await a.closed).code).toBe(4002);
    const b = await client('/events');
    expect(running!.broker.disconnect(running!.broker.connectionIds('writer')[0]!, 4003, 'no longer allowed')).toBe(true);
    expect(await b.nextOf('error')).toMatchObject({ code: 'AUTH_ERROR', message: 'no longer allowed' });
    expect(await b.closed).toEqual({ code: 4003, reason: 'no longer allowed' });
    // Another close code sends no frame first.
    const c = await client('/events');
    running!.broker.disconnect(running!.broker.connectionIds('writer')[0]!, 4000, 'bye');
    expect(await c.closed).toEqual({ code: 4000, reason: 'bye' });
    expect(c.frames).toEqual([]);
  });

  it('confirms subscriptions the host makes and removes, as it confirms the client\'s own', async () => {
    await serveEvents();
    const c = await client('/events');
    const id = running!.broker.connectionIds('writer')[0]!;
    await running!.broker.subscribe(id, ['devices']);
    expect(await c.nextOf('subscription_confirmed')).toMatchObject({ topics: ['devices'], timestamp: expect.any(String) });
    running!.broker.unsubscribe(id, ['devices']);
    expect(await c.nextOf('unsubscription_confirmed')).toMatchObject({ topics: ['devices'] });
  });

  it('sends no event for a binary publish or a direct message', async () => {
    await serveEvents();
    const c = await client('/events');
    c.sendJson({ type: 'subscribe', topics: ['t'] });
    await c.nextOf('subscription_confirmed');
    await running!.broker.publish('t', null, { binary: Buffer.from([1]) });
    await running!.broker.sendTo('writer', { direct: true });
    await running!.broker.publish('t', { last: true });
    expect((await c.nextOf('event')).data).toEqual({ last: true });
    expect(c.frames.map((f) => f.type)).toEqual(['subscription_confirmed', 'event']);
    expect(c.binary).toEqual([]);
  });

  it("CONNECTION_ERROR for an empty type, SUBSCRIPTION_ERROR with the core's message for an empty filter field under filterRoot", async () => {
    await serveEvents({}, events({ filterRoot: 'data' }));
    const c = await client('/events');
    c.sendJson({ type: '' });
    expect(await c.nextOf('error')).toMatchObject({ code: 'CONNECTION_ERROR', message: "a message needs a 'type' string" });
    c.sendJson({ type: 'subscribe', topics: ['t'], filters: { '': ['x'] } });
    const error = await c.nextOf('error');
    expect(error.code).toBe('SUBSCRIPTION_ERROR');
    expect(error).not.toHaveProperty('topics');
    c.sendJson({ type: 'subscribe', topics: ['n'], filters: null }); // null: no filter, under a filterRoot too
    expect(await c.nextOf('subscription_confirmed')).toMatchObject({ topics: ['n'] });
    c.sendJson({ type: 'subscribe', topics: ['t'], filters: { sev: ['high'] } });
    await c.nextOf('subscription_confirmed');
    await running!.broker.publish('t', { data: { sev: 'low' } });
    await running!.broker.publish('t', { sev: 'low', data: { sev: 'high' } });
    expect((await c.nextOf('event')).data).toEqual({ sev: 'low', data: { sev: 'high' } });
    expect(c.frames.filter((f) => f.type === 'event')).toHaveLength(1);
  });

  it('refuses a filterRoot that is not a dot path', () => {
    for (const root of ['.a', 'a.', 5]) {
      expect(() => events({ filterRoot: root as never }), String(root)).toThrow(new TypeError('events: filterRoot must be a dot path such as "data"'));
    }
    expect(() => events({ filterRoot: 'a.b' })).not.toThrow();
  });
});

describe('messages that say what was wrong', () => {
  it('events: a binary frame, a non-object, a missing type or bad topics each get their own CONNECTION_ERROR / SUBSCRIPTION_ERROR message', async () => {
    await serve(events(), {}, '/events');
    const c = await client('/events');
    const cases: Array<[string | Buffer, string, string]> = [
      [Buffer.from('{"type":"subscribe","topics":["t"]}'), 'CONNECTION_ERROR', 'binary frames are not supported; send JSON messages'],
      ['null', 'CONNECTION_ERROR', 'a message must be a JSON object'],
      ['5', 'CONNECTION_ERROR', 'a message must be a JSON object'],
      ['{"topics":["t"]}', 'CONNECTION_ERROR', "a message needs a 'type' string"],
      ['{"type":"publish"}', 'CONNECTION_ERROR', "unknown message type 'publish'"],
      ['{"type":"subscribe","topics":[]}', 'SUBSCRIPTION_ERROR', 'topics must be a non-empty array of strings'],
      ['{"type":"subscribe","topics":["t",1]}', 'SUBSCRIPTION_ERROR', 'topics must be a non-empty array of strings'],
      ['{"type":"unsubscribe","topics":"t"}', 'SUBSCRIPTION_ERROR', 'topics must be a non-empty array of strings'],
    ];
    for (const [frame, code, message] of cases) {
      c.ws.send(frame);
      expect(await c.nextOf('error'), String(frame)).toMatchObject({ code, message });
    }
    expect(running!.broker.stats().subscriptions).toBe(0);
  });

  it('events: a permission revoked live names the topics in the message too', async () => {
    await serve(events(), {}, '/events');
    const c = await client('/events');
    c.sendJson({ type: 'subscribe', topics: ['a', 'b'] });
    await c.nextOf('subscription_confirmed');
    await running!.broker.reauthorize('writer', { id: 'writer', grants: [{ topic: 'b', access: 'read' }] });
    expect(await c.nextOf('error')).toMatchObject({ code: 'SUBSCRIPTION_ERROR', message: 'permission revoked; unsubscribed from a', topics: ['a'] });
  });

  it('tagged: a binary frame closes 1008 saying frames are JSON', async () => {
    await serve(tagged(), {}, '/tags');
    const c = await client('/tags', { Tag: 't' });
    c.ws.send(Buffer.from('{"tag":"t","message":1}'));
    expect(await c.closed).toEqual({ code: 1008, reason: 'binary frames are not supported; send {"tag", "message"} JSON' });
  });
});

describe('stream: what reaches a stream and what does not', () => {
  it('closes 1008 when bind returns undefined, and 1011 when it throws a BrokerError without a close code', async () => {
    const errors: Error[] = [];
    await serve(stream({ bind: ({ id }) => (id === 'none' ? (undefined as never) : Promise.reject(new BrokerError('SY_ERR_BAD_FRAME', 'bad path'))) }));
    running!.broker.on('error', (e) => errors.push(e));
    expect(await (await client('/ws/none')).closed).toEqual({ code: 1008, reason: 'no stream for this path' });
    expect((await (await client('/ws/x')).closed).code).toBe(1011);
    expect(errors.map((e) => e.message)).toEqual(['bad path']);
  });

  it('counts a binary frame as invalid even when it holds JSON, and publishes nothing from it', async () => {
    await serve(stream({ bind: ({ id }) => ({ subscribe: [`s/${id}`], publish: `s/${id}` }), maxInvalidFrames: 1 }));
    const viewer = await client('/ws/a');
    const device = await client('/ws/a');
    await subscriptions(running!.broker, 2);
    device.ws.send(Buffer.from('{"n":1}'));
    expect(await device.closed).toEqual({ code: 1008, reason: 'frames must be JSON text' });
    await viewer.roundTrip();
    expect(viewer.frames).toEqual([]);
  });

  it('drops notifications and deliveries the transform turns into undefined', async () => {
    const seen: unknown[] = [];
    const transform = (p: unknown) => {
      seen.push(p);
      return (p as { skip?: boolean }).skip ? undefined : p;
    };
    await serve(stream({ bind: ({ id }) => ({ subscribe: [`s/${id}`] }), transform }));
    const c = await client('/ws/a');
    await subscriptions(running!.broker, 1);
    await running!.broker.notify({ principal: 'writer' }, { note: 1 });
    await running!.broker.publish('s/a', { skip: true });
    await running!.broker.publish('s/a', { last: true });
    expect(await c.next()).toEqual({ last: true });
    expect(c.frames).toEqual([{ last: true }]);
    // The transform sees the publishes only: a notification is not a stream delivery.
    expect(seen).toEqual([{ skip: true }, { last: true }]);
  });

  it('closes 1011 when a publish fails on the server (an authorize hook that throws)', async () => {
    running = await start({
      endpoints: [{ path: '/ws/:id', protocol: stream({ bind: ({ id }) => ({ subscribe: [], publish: `s/${id}` }) }) }],
      authenticate,
      authorize: (_principal, action) => {
        if (action === 'publish') throw new Error('policy store down');
        return true;
      },
      heartbeat: false,
    });
    running.broker.on('error', () => {});
    const c = await client('/ws/a');
    c.sendJson({ n: 1 });
    expect((await c.closed).code).toBe(1011);
  });
});
