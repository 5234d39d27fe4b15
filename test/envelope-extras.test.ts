import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { envelope, MemoryStore, type BrokerOptions, type Store } from 'switchyard';
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

/**
 * The memory store with a turn of the event loop around every call, as a networked store
 * (Redis, Postgres) has: publishes and a recovery then really interleave.
 */
class LatentStore implements Store {
  readonly #inner = new MemoryStore();
  async #slow<T>(work: () => T | Promise<T>): Promise<T> {
    await new Promise((r) => setImmediate(r));
    const result = await work();
    await new Promise((r) => setImmediate(r));
    return result;
  }
  enqueueDirect: Store['enqueueDirect'] = (m) => this.#slow(() => this.#inner.enqueueDirect(m));
  drainDirect: Store['drainDirect'] = (id) => this.#slow(() => this.#inner.drainDirect(id));
  appendHistory: Store['appendHistory'] = (r, l) => this.#slow(() => this.#inner.appendHistory(r, l));
  readHistory: Store['readHistory'] = (t, q, l) => this.#slow(() => this.#inner.readHistory(t, q, l));
  close: Store['close'] = () => this.#inner.close();
}

function as(token: string): Promise<Client> {
  return connectAs(running!, token);
}

/** `[type][4-byte length][2-byte name length][name][data]` (seed 001 + DESIGN.md). */
function binary(type: number, name: string, data: Buffer): Buffer {
  const n = Buffer.from(name);
  const head = Buffer.alloc(7);
  head[0] = type;
  head.writeUInt32BE(2 + n.length + data.length, 1);
  head.writeUInt16BE(n.length, 5);
  return Buffer.concat([head, n, data]);
}

describe('Notification', () => {
  it('reaches everyone, one principal, or a topic’s subscribers', async () => {
    await broker();
    const a = await as('alice');
    const b = await as('bob');
    await b.request('Subscribe', { topics: ['ops/#'] });
    const notice = { level: 'info', title: 'Maintenance Notice', message: 'in 1 hour', actions: [{ label: 'Learn More', url: 'https://status.example.com' }] };
    expect(await running!.broker.notify('all', notice)).toEqual({ recipients: 2 });
    expect((await a.nextOf('Notification')).data).toEqual(notice);
    expect((await b.nextOf('Notification')).data).toEqual(notice);
    expect(await running!.broker.notify({ principal: 'alice' }, { level: 'warn', n: 2 })).toEqual({ recipients: 1 });
    expect((await a.nextOf('Notification')).data.n).toBe(2);
    expect(await running!.broker.notify({ topic: 'ops/db' }, { level: 'crit', n: 3 })).toEqual({ recipients: 1 });
    expect((await b.nextOf('Notification')).data.n).toBe(3);
    await b.request('Ping', {});
    expect(b.frames.filter((f) => f.type === 'Notification')).toHaveLength(2);
    await expect(running!.broker.notify({ topic: 'ops/#' }, {})).rejects.toMatchObject({ code: 'SY_ERR_BAD_TOPIC' });
    await a.close();
    await b.close();
  });
});

describe('Presence', () => {
  it('tells watchers when a principal comes online and goes offline, with metadata', async () => {
    running = await start({
      endpoints: [{ path: '/ws', protocol: envelope() }],
      authenticate: ({ credentials }) =>
        credentials?.token === 'watcher'
          ? { id: 'watcher', grants: [{ topic: '$presence/+', access: 'read' }] }
          : { id: credentials!.token, data: { presence: { device: 'web', location: 'New York' } } },
    });
    const watcher = await connect(running.url('/ws?token=watcher'));
    await watcher.request('Subscribe', { topics: ['$presence/+'] });
    const first = await connect(running.url('/ws?token=user789'));
    const online = await watcher.nextOf('Presence');
    expect(online.data).toMatchObject({ user_id: 'user789', status: 'online', metadata: { device: 'web', location: 'New York' } });
    const second = await connect(running.url('/ws?token=user789')); // not a change
    await second.close();
    await first.close();
    const offline = await watcher.nextOf('Presence');
    expect(offline.data).toMatchObject({ user_id: 'user789', status: 'offline' });
    expect(offline.data.last_seen).toBeGreaterThanOrEqual(online.data.last_seen);
    expect(watcher.frames.filter((f) => f.type === 'Presence')).toHaveLength(2);
    await watcher.close();
  });

  it('answers a presence query, needs permission, and keeps $presence reserved', async () => {
    await broker();
    const bob = await as('bob');
    const alice = await as('alice:$presence/#,#');
    const reply = await alice.request('Presence', { user_ids: ['bob', 'nobody'] });
    expect(reply.type).toBe('Ack');
    const [p1, p2] = alice.frames.filter((f) => f.type === 'Presence');
    expect(p1!.data).toMatchObject({ user_id: 'bob', status: 'online' });
    expect(p2!.data).toEqual({ user_id: 'nobody', status: 'offline', last_seen: null, metadata: {} });
    const denied = await bob.request('Presence', { user_ids: ['alice'] }); // '#' does not reach $ topics
    expect(denied.data).toMatchObject({ code: 403, details: { topics: ['$presence/alice'] } });
    const forged = await alice.request('Broadcast', { topic: '$presence/bob', payload: { status: 'offline' } });
    expect(forged.data.code).toBe(403);
    await bob.close();
    await alice.close();
  });
});

describe('History and recovery', () => {
  const history = { topics: ['chat/#'], maxMessages: 5 };

  it('numbers messages per topic and serves History and the latest value', async () => {
    await broker({ history });
    const c = await as('alice');
    for (let i = 1; i <= 3; i++) expect((await running!.broker.publish('chat/a', { i })).offset).toBe(i);
    await c.request('Subscribe', { topics: ['chat/a'] });
    await running!.broker.publish('chat/a', { i: 4 });
    expect((await c.nextOf('Broadcast')).data.metadata.offset).toBe(4);
    const reply = await c.request('History', { topic: 'chat/a', since: 1, limit: 2 });
    expect(reply.type).toBe('Ack');
    const page = c.frames.find((f) => f.type === 'History')!;
    expect(page.data.topic).toBe('chat/a');
    expect(page.data.messages.map((m: any) => [m.payload.i, m.metadata.offset])).toEqual([[2, 2], [3, 3]]);
    expect(page.data).toMatchObject({ latest_offset: 4, complete: true });
    await c.request('History', { topic: 'chat/a', limit: 1 }); // latest value
    expect(c.frames.filter((f) => f.type === 'History')[1]!.data.messages[0].payload).toEqual({ i: 4 });
    expect((await c.request('History', { topic: 'chat/a', limit: -1 })).data.code).toBe(400);
    await c.close();
  });

  it('replays what a reconnecting client missed, then live messages, with no gap and no duplicate', async () => {
    await broker({ history: { topics: ['chat/#'], maxMessages: 1000 }, store: new LatentStore() });
    for (let i = 1; i <= 10; i++) await running!.broker.publish('chat/a', { i });
    const c = await as('alice');
    // Publishes racing the recovery, several in flight at once: some are stored before the
    // replay is read and delivered after the subscription exists, some land during the replay.
    const racing = Promise.all(Array.from({ length: 30 }, (_, k) => running!.broker.publish('chat/a', { i: 11 + k })));
    const reply = await c.request('Subscribe', { topics: ['chat/a'], recover: { 'chat/a': 4 } });
    expect(reply.type).toBe('Ack');
    await racing;
    await until(() => c.frames.filter((f) => f.type === 'Broadcast').some((f) => f.data.payload.i === 40), 'all 40');
    await c.request('Ping', {});
    const offsets = c.frames.filter((f) => f.type === 'Broadcast').map((f) => f.data.metadata.offset);
    expect(offsets).toEqual(Array.from({ length: 36 }, (_, k) => k + 5));
    const status = c.frames.find((f) => f.type === 'Status' && f.data.status === 'subscribed')!;
    expect(status.data.details.recovered).toEqual({ 'chat/a': true });
    await c.close();
  });

  it('says when recovery is impossible because history no longer reaches back', async () => {
    await broker({ history });
    for (let i = 1; i <= 12; i++) await running!.broker.publish('chat/a', { i });
    const c = await as('alice');
    await c.request('Subscribe', { topics: ['chat/a'], recover: { 'chat/a': 2 } });
    const status = c.frames.find((f) => f.type === 'Status' && f.data.status === 'subscribed')!;
    expect(status.data.details.recovered).toEqual({ 'chat/a': false });
    const offsets = c.frames.filter((f) => f.type === 'Broadcast').map((f) => f.data.metadata.offset);
    expect(offsets).toEqual([8, 9, 10, 11, 12]); // what is kept
    const bad = await c.request('Subscribe', { topics: ['chat/+'], recover: { 'chat/+': 1 } });
    expect(bad.data.code).toBe(400);
    const none = await c.request('Subscribe', { topics: ['other'], recover: { other: 1 } });
    expect(none.data.message).toContain('keeps no history');
    await c.close();
  });
});

describe('binary frames', () => {
  it('broadcasts binary data to subscribers in the same format and acknowledges with a sha256', async () => {
    await broker();
    const sub = await as('bob');
    const pub = await as('alice');
    await sub.request('Subscribe', { topics: ['files/x'] });
    const data = Buffer.from('\x00\x01binary payload\xff', 'latin1');
    pub.ws.send(binary(0x01, 'files/x', data));
    const status = await pub.nextOf('Status', (f) => f.data.status === 'binary_received');
    expect(status.data.details).toEqual({
      size: data.length,
      type: 'broadcast',
      checksum: `sha256:${createHash('sha256').update(data).digest('hex')}`,
      recipients: 1,
    });
    await until(() => sub.binary.length === 1, 'binary delivery');
    expect(sub.binary[0]).toEqual(binary(0x01, 'files/x', data));
    await sub.close();
    await pub.close();
  });

  it('keeps the order of text and binary deliveries queued in the same turn', async () => {
    await broker();
    const sub = await as('bob');
    await sub.request('Subscribe', { topics: ['mixed'] });
    const order: string[] = [];
    sub.ws.on('message', (data: Buffer, isBinary: boolean) => {
      order.push(isBinary ? `binary:${data.subarray(7 + 'mixed'.length).toString('latin1')}` : `text:${JSON.parse(data.toString('utf8')).data.payload?.n}`);
    });
    // ASCII text frames are queued as strings, the rest as Buffers: one flush writes both kinds.
    await Promise.all([
      running!.broker.publish('mixed', { n: 1 }),
      running!.broker.publish('mixed', null, { binary: Buffer.from('two', 'latin1') }),
      running!.broker.publish('mixed', { n: 'thrée' }),
      running!.broker.publish('mixed', { n: 'x'.repeat(20_000) }),
      running!.broker.publish('mixed', { n: 5 }),
    ]);
    await until(() => order.length === 5, 'five deliveries');
    expect(order).toEqual(['text:1', 'binary:two', 'text:thrée', `text:${'x'.repeat(20_000)}`, 'text:5']);
    await sub.close();
  });

  it('sends binary direct messages (the header names the sender on delivery)', async () => {
    await broker();
    const bob = await as('bob');
    const alice = await as('alice');
    alice.ws.send(binary(0x02, 'bob', Buffer.from('hi')));
    const status = await alice.nextOf('Status', (f) => f.data.status === 'binary_received');
    expect(status.data.details.delivered_to).toHaveLength(1);
    await until(() => bob.binary.length === 1, 'binary dm');
    expect(bob.binary[0]).toEqual(binary(0x02, 'alice', Buffer.from('hi')));
    alice.ws.send(binary(0x02, 'offline-user', Buffer.from('later')));
    expect((await alice.nextOf('Error')).data).toMatchObject({ code: 404, details: { queued: true } });
    await bob.close();
    await alice.close();
  });

  it('passes file transfers to the host handler and refuses malformed frames with 400', async () => {
    const received: string[] = [];
    await broker({}, envelope({ binary: { file_transfer: (_c, data) => void received.push(data.toString()) } }));
    const c = await as('alice');
    const body = Buffer.from('file-bytes');
    const frame = Buffer.concat([Buffer.from([0x03, 0, 0, 0, body.length]), body]);
    c.ws.send(frame);
    const status = await c.nextOf('Status', (f) => f.data.status === 'binary_received');
    expect(status.data.details).toMatchObject({ size: body.length, type: 'file_transfer' });
    expect(received).toEqual(['file-bytes']);
    for (const [bytes, message] of [
      [Buffer.from([0x01, 0]), 'shorter than its 5-byte header'],
      [Buffer.from([0x01, 0, 0, 0, 9, 1]), 'length field says 9'],
      [Buffer.from([0x09, 0, 0, 0, 0]), 'unknown binary message type 0x09'],
      [Buffer.from([0x04, 0, 0, 0, 1, 7]), 'stream_data frames are not accepted'],
      [Buffer.from([0x01, 0, 0, 0, 2, 0, 9]), 'needs a 2-byte length'],
    ] as const) {
      c.ws.send(bytes);
      const error = await c.nextOf('Error');
      expect(error.data.code).toBe(400);
      expect(error.data.message).toContain(message);
    }
    expect((await c.request('Ping', {})).type).toBe('Ack');
    await c.close();
  });
});

describe('robustness', () => {
  it('keeps delivering to other endpoints when one protocol fails to encode, and reports it', async () => {
    const broken = { ...envelope(), name: 'broken', encode: () => { throw new Error('encoder bug'); } };
    running = await start({
      endpoints: [
        { path: '/ws', protocol: envelope() },
        { path: '/broken', protocol: broken },
      ],
      authenticate: tokenAuth,
    });
    const errors: Error[] = [];
    running.broker.on('error', (e) => errors.push(e));
    const good = await connect(running.url('/ws?token=a'));
    const bad = await connect(running.url('/broken?token=b'));
    await good.request('Subscribe', { topics: ['t'] });
    await bad.request('Subscribe', { topics: ['t'] });
    expect((await running.broker.publish('t', 1)).recipients).toBe(1);
    expect((await good.nextOf('Broadcast')).data.payload).toBe(1);
    expect(errors.map((e) => e.message)).toEqual(['encoder bug']);
    await good.close();
    await bad.close();
  });

  it('handles frames only after the protocol finished opening the connection', async () => {
    const base = envelope();
    let release!: () => void;
    const lookup = new Promise<void>((resolve) => (release = resolve));
    const slowOpen = {
      ...base,
      async open(conn: Parameters<typeof base.open>[0]) {
        await lookup; // an async open (a database lookup), still running when the frame arrives
        await conn.subscribe(['opened']);
        await base.open(conn);
      },
    };
    await broker({}, slowOpen);
    // Let the open finish only once the server's socket has the client's early frame: the
    // socket's second read (the first is the upgrade request). An 'upgrade' listener would not
    // do: attach keeps every other upgrade listener off the broker's paths.
    running!.server.once('connection', (socket) => {
      let reads = 0;
      socket.on('data', () => {
        if (++reads === 2) setImmediate(release);
      });
    });
    const c = new Client(running!.url('/ws?token=a'));
    await c.opened;
    c.sendJson({ type: 'Unsubscribe', data: { topics: ['opened'] }, id: 'u' });
    const status = await c.nextOf('Status', (f) => f.data.status === 'unsubscribed');
    expect(status.data.details.active_subscriptions).toBe(0);
    expect(c.frames[0]!.data.status).toBe('connected'); // the welcome came first
    await c.close();
  });

  it('answers History on a topic without history with 400, and a client Pong with an Ack', async () => {
    await broker({ history: { topics: ['chat/#'] } });
    const c = await as('alice');
    expect((await c.request('History', { topic: 'news' })).data).toMatchObject({ code: 400, message: 'news keeps no history' });
    expect((await c.request('Pong', { timestamp: 1 })).type).toBe('Ack');
    await c.close();
  });

  it('reports recovery from an offset the store never reached as incomplete (a restarted store)', async () => {
    await broker({ history: { topics: ['chat/#'] } });
    await running!.broker.publish('chat/a', 1);
    const c = await as('alice');
    await c.request('Subscribe', { topics: ['chat/a'], recover: { 'chat/a': 50 } });
    const status = c.frames.find((f) => f.type === 'Status' && f.data.status === 'subscribed')!;
    expect(status.data.details.recovered).toEqual({ 'chat/a': false });
    await c.close();
  });
});

describe('encoding', () => {
  it('writes Broadcast deliveries exactly as JSON.stringify would', () => {
    const protocol = envelope();
    for (const payload of [{ text: 'hé "quoted" \u2028 \ud83d\ude00' }, [1, null, 'x'], 'plain', 42, null, true, { nested: { deep: [{}] } }]) {
      for (const offset of [undefined, 7]) {
        const position = offset === undefined ? {} : { offset, epoch: 'e-"1"' };
        const delivery = { kind: 'publish' as const, topic: 'a/"b"', payload, messageId: 'm-1', sentAt: 1700000000000, from: null, ...position };
        const expected = { type: 'Broadcast', data: { topic: 'a/"b"', payload, metadata: { sent_at: 1700000000000, message_id: 'm-1', ...position } } };
        const encoded = protocol.encode(delivery) as string;
        expect(JSON.parse(encoded)).toEqual(expected);
        expect(encoded).toBe(JSON.stringify(expected));
      }
    }
    // undefined cannot be sent as JSON: it arrives as null rather than as broken JSON.
    const missing = protocol.encode({ kind: 'publish', topic: 't', payload: undefined, messageId: 'm', sentAt: 1, from: null }) as string;
    expect(JSON.parse(missing).data.payload).toBeNull();
  });
});
