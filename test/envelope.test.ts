import { afterEach, describe, expect, it, vi } from 'vitest';
import { envelope, type BrokerOptions } from 'switchyard';
import { Client, connect, connectAs, type Running, start, startEnvelope, tokenAuth, until } from './helpers.js';

let running: Running | undefined;
afterEach(async () => {
  await running?.stop();
  running = undefined;
});

async function broker(extra: Partial<BrokerOptions> = {}, protocol = envelope()): Promise<Running> {
  running = await startEnvelope(extra, protocol);
  return running;
}

function as(token: string): Promise<Client> {
  return connectAs(running!, token);
}

describe('welcome and ping', () => {
  it('welcomes with connection_id, server_time, protocol_version and features', async () => {
    await broker();
    const before = Date.now();
    const client = new Client(running!.url('/ws?token=alice'));
    const welcome = await client.nextOf('Status');
    expect(welcome.data.status).toBe('connected');
    expect(welcome.data.details).toMatchObject({ protocol_version: '1.0', features: expect.arrayContaining(['broadcast', 'direct_message']) });
    expect(typeof welcome.data.details.connection_id).toBe('string');
    expect(welcome.data.details.server_time).toBeGreaterThanOrEqual(before);
    await client.close();
  });

  it('answers Ping with Pong (the timestamp echoed), then the Ack', async () => {
    await broker();
    const c = await as('alice');
    c.sendJson({ type: 'Ping', data: { timestamp: 1234567890 }, id: 'p1' });
    expect(await c.next()).toEqual({ type: 'Pong', data: { timestamp: 1234567890 } });
    expect(await c.next()).toEqual({ type: 'Ack', data: { message_id: 'p1', status: 'ok' } });
    c.sendJson({ type: 'Ping' }); // no id: Pong only
    expect((await c.next()).type).toBe('Pong');
    await c.close();
  });
});

describe('Subscribe / Unsubscribe', () => {
  it('replies Status with topics and active_subscriptions, then the Ack', async () => {
    await broker({ topics: { separator: '.', single: '*', multi: '>' } });
    const c = await as('alice:>');
    c.sendJson({ type: 'Subscribe', data: { topics: ['notifications', 'chat.general', 'updates.*'] }, id: 's1' });
    expect(await c.next()).toEqual({
      type: 'Status',
      data: { status: 'subscribed', details: { topics: ['notifications', 'chat.general', 'updates.*'], active_subscriptions: 3 } },
    });
    expect(await c.next()).toEqual({ type: 'Ack', data: { message_id: 's1', status: 'ok' } });
    c.sendJson({ type: 'Unsubscribe', data: { topics: ['chat.general'] }, id: 'u1' });
    expect(await c.next()).toEqual({
      type: 'Status',
      data: { status: 'unsubscribed', details: { topics: ['chat.general'], active_subscriptions: 2 } },
    });
    expect((await c.next()).data.message_id).toBe('u1');
    await c.close();
  });

  it('is all-or-nothing: one denied topic refuses all, and the 403 lists the denied ones', async () => {
    await broker();
    const c = await as('bob:chat/#=r,news/+=r');
    const reply = await c.request('Subscribe', { topics: ['chat/a', 'admin/x', 'news/#', 'news/today'] });
    expect(reply.type).toBe('Error');
    expect(reply.data.code).toBe(403);
    expect(reply.data.details.topics).toEqual(['admin/x', 'news/#']);
    const publisher = await as('pub:#');
    const ack = await publisher.request('Broadcast', { topic: 'chat/a', payload: 1 });
    expect(ack.data.recipients).toBe(0); // nothing was added
    await c.close();
    await publisher.close();
  });

  it.each([
    [[''], 'empty'],
    [['a'.repeat(300)], 'longer than'],
    [[Array(20).fill('x').join('/')], 'levels'],
    [['a/#/b'], "'#'"],
    [['bad\ud800'], 'UTF-8'],
  ])('refuses invalid pattern %j with 400', async (topics, why) => {
    await broker();
    const c = await as('alice');
    const reply = await c.request('Subscribe', { topics });
    expect(reply.data.code).toBe(400);
    expect(reply.data.message).toContain(why);
    expect(reply.data.details.topics).toEqual(topics);
    await c.close();
  });

  it('enforces the subscription limit per connection', async () => {
    await broker({ limits: { maxSubscriptions: 2 } });
    const c = await as('alice');
    expect((await c.request('Subscribe', { topics: ['a', 'b'] })).type).toBe('Ack');
    const reply = await c.request('Subscribe', { topics: ['c'] });
    expect(reply.data).toMatchObject({ code: 400, details: { limit: 2 } });
    expect((await c.request('Subscribe', { topics: ['a'] })).type).toBe('Ack'); // re-subscribing is not new
    await c.close();
  });
});

describe('Broadcast', () => {
  it('delivers with metadata and acks with the recipient count (connections, once each)', async () => {
    await broker();
    const a = await as('alice');
    const b = await as('bob');
    const pub = await as('carol');
    await a.request('Subscribe', { topics: ['chat/general', 'chat/#'] }); // overlapping: receives once
    await b.request('Subscribe', { topics: ['chat/+'] });
    const before = Date.now();
    const ack = await pub.request('Broadcast', { topic: 'chat/general', payload: { message: 'Hello everyone!' } });
    expect(ack.data).toEqual({ message_id: 'r1', status: 'delivered', recipients: 2 });
    for (const c of [a, b]) {
      const got = await c.nextOf('Broadcast');
      expect(got.data.topic).toBe('chat/general');
      expect(got.data.payload).toEqual({ message: 'Hello everyone!' });
      expect(got.data.metadata.sent_at).toBeGreaterThanOrEqual(before);
      expect(typeof got.data.metadata.message_id).toBe('string');
    }
    await pub.request('Ping', {}); // a second round trip: no duplicate arrived meanwhile
    await a.request('Ping', {});
    expect(a.frames.filter((f) => f.type === 'Broadcast')).toHaveLength(1);
    await Promise.all([a.close(), b.close(), pub.close()]);
  });

  it('does not echo to the publishing connection unless asked, but reaches its other connections', async () => {
    await broker();
    const one = await as('alice');
    const two = await as('alice');
    await one.request('Subscribe', { topics: ['room'] });
    await two.request('Subscribe', { topics: ['room'] });
    expect((await one.request('Broadcast', { topic: 'room', payload: 1 })).data.recipients).toBe(1);
    expect((await two.nextOf('Broadcast')).data.payload).toBe(1);
    expect((await one.request('Broadcast', { topic: 'room', payload: 2, echo: true })).data.recipients).toBe(2);
    expect((await one.nextOf('Broadcast')).data.payload).toBe(2);
    await one.close();
    await two.close();
  });

  it('refuses wildcards and topics without readwrite', async () => {
    await broker();
    const c = await as('reader:news/#=r');
    const wild = await c.request('Broadcast', { topic: 'news/+', payload: 1 });
    expect(wild.data).toMatchObject({ code: 400, details: { message_id: 'r1', topics: ['news/+'] } });
    const ro = await c.request('Broadcast', { topic: 'news/today', payload: 1 });
    expect(ro.data).toMatchObject({ code: 403, details: { message_id: 'r2', topics: ['news/today'] } });
    await c.close();
  });

  it('lets the host publish, with messageId and recipients', async () => {
    await broker();
    const c = await as('alice');
    await c.request('Subscribe', { topics: ['chat/#'] });
    const result = await running!.broker.publish('chat/general', { text: 'hi' });
    expect(result.recipients).toBe(1);
    const got = await c.nextOf('Broadcast');
    expect(got.data.metadata.message_id).toBe(result.messageId);
    await expect(running!.broker.publish('chat/#', 1)).rejects.toMatchObject({ code: 'SY_ERR_BAD_TOPIC' });
    await c.close();
  });
});

describe('DirectMessage', () => {
  it('reaches every connection of the target and acks with delivered_to', async () => {
    await broker();
    const b1 = await as('bob');
    const b2 = await as('bob');
    const a = await as('alice');
    const ack = await a.request('DirectMessage', { target_user: 'bob', payload: { message: 'Private message' } });
    expect(ack.data.status).toBe('delivered');
    expect(ack.data.delivered_to).toHaveLength(2);
    for (const b of [b1, b2]) {
      const dm = await b.nextOf('DirectMessage');
      expect(dm.data.from_user).toBe('alice');
      expect(dm.data.payload).toEqual({ message: 'Private message' });
      expect(dm.data.metadata.message_id).toEqual(expect.any(String));
    }
    await Promise.all([a.close(), b1.close(), b2.close()]);
  });

  it('answers 404 {queued: true} for an offline user and delivers on the next connection', async () => {
    await broker();
    const a = await as('alice');
    const reply = await a.request('DirectMessage', { target_user: 'user456', payload: { n: 1 } });
    expect(reply).toEqual({
      type: 'Error',
      data: { code: 404, message: 'User user456 not found or not connected', details: { message_id: 'r1', queued: true } },
    });
    await a.request('DirectMessage', { target_user: 'user456', payload: { n: 2 } });
    const later = await as('user456');
    expect((await later.nextOf('DirectMessage')).data.payload).toEqual({ n: 1 });
    expect((await later.nextOf('DirectMessage')).data).toMatchObject({ from_user: 'alice', payload: { n: 2 } });
    const again = await as('user456'); // drained: not delivered twice
    await again.request('Ping', {});
    expect(again.frames.some((f) => f.type === 'DirectMessage')).toBe(false);
    await Promise.all([a.close(), later.close(), again.close()]);
  });

  it('says queued: false when offline queueing is off', async () => {
    await broker({ offlineQueue: false });
    const a = await as('alice');
    const reply = await a.request('DirectMessage', { target_user: 'nobody', payload: 1 });
    expect(reply.data.details).toEqual({ message_id: 'r1', queued: false });
    await a.close();
  });

  it('lets the host send with from_user null', async () => {
    await broker();
    const b = await as('bob');
    const result = await running!.broker.sendTo('bob', { hi: 1 });
    expect(result.deliveredTo).toHaveLength(1);
    expect((await b.nextOf('DirectMessage')).data.from_user).toBeNull();
    await b.close();
  });

  it('asks authorize for direct messages', async () => {
    await broker({ authorize: (p, action) => !(action === 'direct' && p.id === 'mallory') });
    const m = await as('mallory');
    expect((await m.request('DirectMessage', { target_user: 'bob', payload: 1 })).data.code).toBe(403);
    await m.close();
  });
});

describe('malformed input: Error 400, connection stays up, every id answered once', () => {
  it.each([
    ['not json', '{"type":', 'invalid JSON'],
    ['an array', '[1,2]', 'JSON object'],
    ['missing type', '{"data":{}}', "missing 'type'"],
    ['numeric type', '{"type":5}', "'type' must be"],
    ['unknown type', '{"type":"Teleport","data":{}}', "unknown message type 'Teleport'"],
    ['topics not an array', '{"type":"Subscribe","data":{"topics":"chat"}}', 'non-empty array of strings'],
    ['data not an object', '{"type":"Broadcast","data":"x"}', "'data' to be an object"],
    ['topic not a string', '{"type":"Broadcast","data":{"topic":7,"payload":1}}', 'data.topic'],
    ['missing payload', '{"type":"Broadcast","data":{"topic":"a"}}', 'data.payload'],
    ['numeric id', '{"type":"Ping","id":5}', 'id must be'],
    ['unregistered custom type', '{"type":"X-Custom","data":{}}', "no handler is registered for custom type 'X-Custom'"],
    ['bad filters', '{"type":"Subscribe","data":{"topics":["a"],"filters":{"severity":"high"}}}', 'filters.severity'],
  ])('%s', async (_name, raw, message) => {
    await broker();
    const c = await as('alice');
    c.ws.send(raw);
    const error = await c.nextOf('Error');
    expect(error.data.code).toBe(400);
    expect(error.data.message).toContain(message);
    const pong = await c.request('Ping', {});
    expect(pong.type).toBe('Ack');
    await c.close();
  });

  it('names the request id in the Error', async () => {
    await broker();
    const c = await as('alice');
    c.sendJson({ type: 'Nope', id: 'x1' });
    c.sendJson({ id: 'x2' });
    expect((await c.nextOf('Error')).data.details.message_id).toBe('x1');
    expect((await c.nextOf('Error')).data.details.message_id).toBe('x2');
    await c.close();
  });

  it('answers each of many pipelined requests exactly once', async () => {
    await broker();
    const c = await as('alice');
    const kinds = ['Ping', 'Subscribe', 'Broadcast', 'Nope', 'Unsubscribe'];
    for (let i = 0; i < 50; i++) {
      const type = kinds[i % kinds.length]!;
      const data = type === 'Ping' || type === 'Nope' ? {} : type === 'Broadcast' ? { topic: 't', payload: i } : { topics: ['t'] };
      c.sendJson({ type, data, id: `m${i}` });
    }
    await until(() => c.frames.filter((f) => f.type === 'Ack' || f.type === 'Error').length >= 50, '50 replies');
    await c.request('Ping', {});
    const ids = c.frames
      .filter((f) => f.type === 'Ack' || f.type === 'Error')
      .map((f) => f.data.message_id ?? f.data.details?.message_id)
      .filter((id: string) => id.startsWith('m'));
    expect(ids).toEqual(Array.from({ length: 50 }, (_, i) => `m${i}`)); // once each, in order
    await c.close();
  });
});

describe('request ids at the end of a frame (read without JSON.parse, issue 17)', () => {
  // The server reads a trailing `,"id":"…"}` itself; every frame here must be answered exactly as
  // JSON.parse reads it: the same id, once, or the same refusal.
  const long = 'i'.repeat(129);
  it.each([
    ['a short id, last', '{"type":"Ping","id":"c1"}', { ack: 'c1' }],
    ['an id with an escaped quote', '{"type":"Ping","id":"a\\"b"}', { ack: 'a"b' }],
    ['an id with an escaped slash', '{"type":"Ping","id":"a\\/b"}', { ack: 'a/b' }],
    ['a non-ASCII id', '{"type":"Ping","id":"é€"}', { ack: 'é€' }],
    ['an id of printable punctuation', '{"type":"Ping","id":"a,\'b:{}[]"}', { ack: "a,'b:{}[]" }],
    ['two ids: the last one wins', '{"type":"Ping","id":"first","id":"last"}', { ack: 'last' }],
    ['an id after nested data', '{"type":"Ping","data":{"id":"inner"},"id":"outer"}', { ack: 'outer' }],
    ['an id after a number', '{"type":"Ping","x":12,"id":"n1"}', { ack: 'n1' }],
    ['a refused request names a trailing id', '{"type":"Broadcast","data":{"topic":"t","payload":1,"echo":1},"id":"n2"}', { error: 'n2' }],
    ['a refused request names an escaped id', '{"type":"Broadcast","data":{"topic":"t","payload":1,"echo":1},"id":"e\\/1"}', { error: 'e/1' }],
    ['an id after null', '{"type":"Ping","data":null,"id":"z1"}', { ack: 'z1' }],
    ['an id after true', '{"type":"Ping","x":true,"id":"z2"}', { ack: 'z2' }],
    ['an id after an array', '{"type":"Ping","x":[1],"id":"z3"}', { ack: 'z3' }],
    ['whitespace before the id', '{"type":"Ping", "id":"w1"}', { ack: 'w1' }],
    ['whitespace after the frame', '{"type":"Ping","id":"w2"} ', { ack: 'w2' }],
    ['an id that only looks like one, inside a string', '{"type":"Ping","data":{"note":"x\\",\\"id\\":\\"fake"}}', { none: true }],
    ['an id nested in data, last', '{"type":"Ping","data":{"id":"inner"}}', { none: true }],
    ['an empty id', '{"type":"Ping","id":""}', { refused: 'id must be' }],
    ['an id too long', `{"type":"Ping","id":"${long}"}`, { refused: 'id must be' }],
    ['an object that is only an id after a comma', '{,"id":"c2"}', { refused: 'invalid JSON' }],
    ['a member missing its value before the id', '{"type":"Ping","x","id":"c3"}', { refused: 'invalid JSON' }],
    ['a comma twice before the id', '{"type":"Ping",,"id":"c4"}', { refused: 'invalid JSON' }],
    ['a control character in the id', '{"type":"Ping","id":"a\tb"}', { refused: 'invalid JSON' }],
  ] as Array<[string, string, { ack?: string; error?: string; none?: true; refused?: string }]>)('%s', async (_name, raw, want) => {
    await broker();
    const c = await as('alice:#');
    // Checked against JSON.parse, so the table itself cannot drift from what JSON means.
    let parsed: { id?: unknown } | undefined;
    try {
      parsed = JSON.parse(raw) as { id?: unknown };
    } catch {
      parsed = undefined;
    }
    if (want.ack !== undefined || want.error !== undefined) expect(parsed?.id).toBe(want.ack ?? want.error);
    if (want.refused === 'invalid JSON') expect(parsed).toBeUndefined();
    c.ws.send(raw);
    await c.request('Ping', {});
    const replies = c.frames.filter((f) => (f.type === 'Ack' || f.type === 'Error') && !String(f.data.message_id ?? f.data.details?.message_id).startsWith('r'));
    if (want.ack !== undefined) expect(replies).toEqual([{ type: 'Ack', data: { message_id: want.ack, status: 'ok' } }]);
    else if (want.error !== undefined) expect(replies.map((f) => [f.type, f.data.details?.message_id])).toEqual([['Error', want.error]]);
    else if (want.none) expect(replies).toEqual([]);
    else {
      expect(replies).toHaveLength(1);
      expect(replies[0]!.type).toBe('Error');
      expect(replies[0]!.data.message).toContain(want.refused);
    }
    await c.close();
  });

  it('acks a Broadcast with the id and recipients whichever way the id was read', async () => {
    await broker();
    const sub = await as('bob:#');
    await sub.request('Subscribe', { topics: ['t'] });
    const c = await as('alice:#');
    c.ws.send('{"type":"Broadcast","data":{"topic":"t","payload":{"id":"p"}},"id":"b1"}');
    c.ws.send('{"type":"Broadcast","data":{"topic":"t","payload":2},"id":"b\\u0032"}');
    c.ws.send('{"type":"Broadcast","id":"b3","data":{"topic":"t","payload":3}}');
    const acks = [await c.nextOf('Ack'), await c.nextOf('Ack'), await c.nextOf('Ack')];
    expect(acks.map((a) => a.data)).toEqual(['b1', 'b2', 'b3'].map((id) => ({ message_id: id, status: 'delivered', recipients: 1 })));
    expect((await sub.nextOf('Broadcast')).data.payload).toEqual({ id: 'p' });
    await c.close();
    await sub.close();
  });
});

describe('custom X- types', () => {
  it('dispatches to host handlers and returns their result in the Ack', async () => {
    await broker({}, envelope({ handlers: { 'X-CustomAction': (conn, data) => ({ who: conn.principal.id, echo: data }) } }));
    const c = await as('alice');
    const reply = await c.request('X-CustomAction', { action: 'special_operation' });
    expect(reply.data).toEqual({ message_id: 'r1', status: 'ok', result: { who: 'alice', echo: { action: 'special_operation' } } });
    await c.close();
  });
});

describe('filters (seed 003) in Subscribe', () => {
  it('delivers only payloads whose field has an allowed value; payloads without the field pass', async () => {
    await broker();
    const c = await as('alice');
    await c.request('Subscribe', { topics: ['alerts', 'devices'], filters: { severity: ['high', 'critical'] } });
    await running!.broker.publish('alerts', { id: 1, severity: 'low' });
    await running!.broker.publish('alerts', { id: 2, severity: 'critical' });
    await running!.broker.publish('devices', { id: 3, status: 'online' });
    expect((await c.nextOf('Broadcast')).data.payload.id).toBe(2);
    expect((await c.nextOf('Broadcast')).data.payload.id).toBe(3);
    await c.close();
  });
});

describe('live permission changes', () => {
  it('revoke closes every connection of a principal with 4002', async () => {
    await broker();
    const a1 = await as('alice');
    const a2 = await as('alice');
    const b = await as('bob');
    expect(running!.broker.revoke({ principal: 'alice' })).toBe(2);
    expect(await a1.closed).toMatchObject({ code: 4002 });
    expect(await a2.closed).toMatchObject({ code: 4002 });
    expect((await b.request('Ping', {})).type).toBe('Ack');
    await b.close();
  });

  it('revoke by token id closes only that token’s connections', async () => {
    running = await start({
      endpoints: [{ path: '/ws', protocol: envelope() }],
      authenticate: ({ credentials }) => ({ id: 'alice', tokenId: credentials!.token }),
    });
    const t1 = await connect(running.url('/ws?token=t1'));
    const t2 = await connect(running.url('/ws?token=t2'));
    running.broker.revoke({ tokenId: 't1' });
    expect(await t1.closed).toMatchObject({ code: 4002 });
    expect((await t2.request('Ping', {})).type).toBe('Ack');
    await t2.close();
  });

  it('reauthorize drops subscriptions no longer allowed, with an Error 403 naming them', async () => {
    await broker();
    const c = await as('alice:chat/#,news/#');
    await c.request('Subscribe', { topics: ['chat/a', 'news/b'] });
    const dropped = await running!.broker.reauthorize('alice', { id: 'alice', grants: [{ topic: 'chat/#', access: 'readwrite' }] });
    expect(dropped).toBe(1);
    const error = await c.nextOf('Error');
    expect(error.data).toMatchObject({ code: 403, details: { topics: ['news/b'] } });
    expect((await running!.broker.publish('news/b', 1)).recipients).toBe(0);
    expect((await running!.broker.publish('chat/a', 1)).recipients).toBe(1);
    const reply = await c.request('Unsubscribe', { topics: ['chat/a'] });
    expect(reply.type).toBe('Ack');
    expect(c.frames.at(-2)?.data.details.active_subscriptions).toBe(0);
    await c.close();
  });

  it('warns with AuthStatus token_expiring once (a reauthorize keeping expiresAt re-arms nothing), then closes 4002 at expiry', async () => {
    // The session's clock and timers are faked; sockets, setImmediate and the heartbeat stay real.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    try {
      const expiresAt = Date.now() + 10 * 60_000;
      const principal = { id: 'alice', expiresAt };
      running = await start({
        endpoints: [{ path: '/ws', protocol: envelope() }],
        authenticate: () => principal,
        expiryWarningMs: 60_000,
      });
      const c = await connect(running.url('/ws?token=t'));
      await c.request('Ping', {}); // the connection's open (and its expiry) is done
      await running.broker.reauthorize('alice', { ...principal });
      await running.broker.reauthorize('alice', { ...principal });
      const warnings = () => c.frames.filter((f) => f.type === 'AuthStatus');
      vi.advanceTimersByTime(9 * 60_000 - 1);
      await c.request('Ping', {}); // a round trip on the same connection: nothing was on its way
      expect(warnings()).toHaveLength(0);
      vi.advanceTimersByTime(1);
      const warning = await c.nextOf('AuthStatus');
      expect(warning.data).toEqual({ status: 'token_expiring', expires_at: expiresAt, refresh_required: true });
      await c.request('Ping', {});
      expect(warnings()).toHaveLength(1);
      vi.advanceTimersByTime(60_000 - 1);
      await c.request('Ping', {});
      vi.advanceTimersByTime(1);
      expect(await c.closed).toMatchObject({ code: 4002 });
    } finally {
      vi.useRealTimers();
    }
  });
});
