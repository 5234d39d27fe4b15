/**
 * Docs and wire cannot drift: every server frame of every protocol has a literal JSON example in
 * README.md (a fenced block tagged ```json wire=<protocol>:<name>), and each is compared with the
 * frame a real broker sends in a scenario that produces it. Volatile values (ids, times,
 * checksums of random data) are normalised on both sides; everything else, keys included, must
 * match. A README example this file has no scenario for is reported as skipped, not failed, so
 * examples can be added before their scenario; a scenario whose frame the README lacks fails.
 * `PRINT_FRAMES=/tmp/frames.json` writes what the server sent there, to write an example from.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { envelope, events, MemoryBus, MemoryHub, stream, tagged, type Principal } from 'switchyard';
import { Client, connect, start, until, type Running } from './helpers.js';

const README = readFileSync(fileURLToPath(new URL('../README.md', import.meta.url)), 'utf8');

/** `wire=<name>` blocks of the README, parsed. */
function examples(): Map<string, unknown> {
  const found = new Map<string, unknown>();
  for (const match of README.matchAll(/```json wire=([\w.:-]+)\n([\s\S]*?)```/g)) {
    const [, name, body] = match;
    if (found.has(name!)) throw new Error(`README has two examples named ${name}`);
    found.set(name!, JSON.parse(body!));
  }
  return found;
}

/** Keys whose values change on every run; their values become '<volatile>' (when present on both sides). */
const VOLATILE = new Set([
  'connection_id', 'server_time', 'message_id', 'sent_at', 'timestamp', 'last_seen', 'expires_at', 'checksum', 'ts', 'delivered_to', 'epoch',
  'missing_nodes',
]);

function normalise(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(normalise);
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) out[key] = VOLATILE.has(key) ? '<volatile>' : normalise(v);
  return out;
}

const TOKENS: Record<string, Principal> = {
  alice: { id: 'alice', grants: [{ topic: 'chat/#', access: 'readwrite' }, { topic: '$presence/+', access: 'read' }] },
  bob: { id: 'bob', grants: [{ topic: 'chat/#', access: 'read' }] },
  carol: { id: 'carol', grants: [{ topic: 'alerts', access: 'read' }, { topic: 'devices', access: 'read' }], expiresAt: Date.now() + 3_600_000 },
};

let running: Running;
const clients: Client[] = [];
/** More brokers (and buses) to stop after the file. */
const extra: Array<{ stop: () => Promise<void> }> = [];
/** What the server sent, by frame name. */
const sent = new Map<string, unknown>();

beforeAll(async () => {
  running = await start({
    endpoints: [
      { path: '/ws', protocol: envelope() },
      { path: '/events', protocol: events() },
      { path: '/tagged', protocol: tagged() },
      { path: '/stream/:room', protocol: stream({ bind: (params) => ({ subscribe: [`chat/${params.room}`] }) }) },
    ],
    authenticate: ({ credentials }) => (credentials === undefined ? null : (TOKENS[credentials.token] ?? null)),
    history: { topics: ['chat/#'] },
    // carol's token expires in an hour: warn at once, so AuthStatus is sent on connect.
    expiryWarningMs: 7_200_000,
    heartbeat: false,
  });
  const open = async (token: string): Promise<Client> => {
    const c = await connect(running.url(`/ws?token=${token}`));
    clients.push(c);
    return c;
  };
  // ── envelope ──
  const alice = await open('alice');
  sent.set('envelope:Status.connected', alice.frames[0]);
  const bob = await open('bob');
  bob.sendJson({ type: 'Subscribe', data: { topics: ['chat/general'] }, id: 's1' });
  sent.set('envelope:Status.subscribed', await bob.nextOf('Status', (f) => f.data.status === 'subscribed'));
  sent.set('envelope:Ack', await bob.nextOf('Ack'));
  alice.sendJson({ type: 'Broadcast', data: { topic: 'chat/general', payload: { text: 'hello' } }, id: 'b1' });
  sent.set('envelope:Ack.broadcast', await alice.nextOf('Ack'));
  sent.set('envelope:Broadcast', await bob.nextOf('Broadcast'));
  alice.sendJson({ type: 'DirectMessage', data: { target_user: 'bob', payload: { text: 'hi bob' } }, id: 'd1' });
  sent.set('envelope:Ack.direct', await alice.nextOf('Ack'));
  sent.set('envelope:DirectMessage', await bob.nextOf('DirectMessage'));
  alice.sendJson({ type: 'DirectMessage', data: { target_user: 'dave', payload: { text: 'are you there?' } }, id: 'd2' });
  sent.set('envelope:Error.queued', await alice.nextOf('Error'));
  bob.sendJson({ type: 'Broadcast', data: { topic: 'chat/general', payload: 'read only' }, id: 'b2' });
  sent.set('envelope:Error', await bob.nextOf('Error'));
  bob.sendJson({ type: 'Ping', data: { timestamp: 1_700_000_000_000 }, id: 'p1' });
  sent.set('envelope:Pong', await bob.nextOf('Pong'));
  bob.sendJson({ type: 'History', data: { topic: 'chat/general', limit: 1 }, id: 'h1' });
  sent.set('envelope:History', await bob.nextOf('History'));
  alice.sendJson({ type: 'Presence', data: { user_ids: ['bob'] }, id: 'pr1' });
  sent.set('envelope:Presence', await alice.nextOf('Presence'));
  await running.broker.notify({ principal: 'bob' }, { title: 'Maintenance at 22:00' });
  sent.set('envelope:Notification', await bob.nextOf('Notification'));
  bob.sendJson({ type: 'Unsubscribe', data: { topics: ['chat/general'] }, id: 'u1' });
  sent.set('envelope:Status.unsubscribed', await bob.nextOf('Status', (f) => f.data.status === 'unsubscribed'));
  const data = Buffer.from('hello');
  const topic = Buffer.from('chat/files');
  const frame = Buffer.alloc(5 + 2 + topic.length + data.length);
  frame[0] = 0x01;
  frame.writeUInt32BE(2 + topic.length + data.length, 1);
  frame.writeUInt16BE(topic.length, 5);
  topic.copy(frame, 7);
  data.copy(frame, 7 + topic.length);
  alice.ws.send(frame);
  sent.set('envelope:Status.binary_received', await alice.nextOf('Status', (f) => f.data.status === 'binary_received'));
  const carol = await open('carol');
  sent.set('envelope:AuthStatus', await carol.nextOf('AuthStatus'));
  carol.sendJson({ type: 'Refresh', data: { token: 'carol' }, id: 'r1' });
  sent.set('envelope:Ack.refresh', await carol.nextOf('Ack'));
  bob.sendJson({ type: 'Subscribe', data: { topics: ['chat/general'], recover: { 'chat/general': 0 } }, id: 's2' });
  sent.set('envelope:Status.subscribed.recovered', await bob.nextOf('Status', (f) => f.data.status === 'subscribed' && f.data.details.recovered !== undefined));
  await bob.nextOf('Ack');
  await bob.request('Unsubscribe', { topics: ['chat/general'] });
  const conn = running.broker.connections({ principal: 'bob' })[0]!;
  await running.broker.subscribe(conn.id, ['chat/announcements']);
  sent.set('envelope:Status.subscribed.server', await bob.nextOf('Status', (f) => f.data.status === 'subscribed' && f.data.details.by === 'server'));

  // ── events (seed 003) ──
  const ev = new Client(running.url('/events?token=carol'));
  clients.push(ev);
  await ev.opened;
  ev.sendJson({ type: 'subscribe', topics: ['alerts'], filters: { severity: ['high', 'critical'] } });
  sent.set('events:subscription_confirmed', await ev.nextOf('subscription_confirmed'));
  await running.broker.publish('alerts', { type: 'alert_created', severity: 'critical', title: 'Disk almost full' });
  sent.set('events:event', await ev.nextOf('event'));
  ev.sendJson({ type: 'subscribe', topics: ['system_status'] });
  sent.set('events:error', await ev.nextOf('error'));
  ev.sendJson({ type: 'unsubscribe', topics: ['alerts'] });
  sent.set('events:unsubscription_confirmed', await ev.nextOf('unsubscription_confirmed'));

  // ── tagged (seed 000) and stream (seeds 002, 004): bare frames ──
  const tg = new Client(running.url('/tagged?token=bob&tags=chat/%2B'));
  clients.push(tg);
  await tg.opened;
  const st = new Client(running.url('/stream/lobby?token=bob'));
  clients.push(st);
  await st.opened;
  await until(() => running.broker.connections({ topic: 'chat/lobby' }).length === 2, 'tagged and stream subscribed');
  await running.broker.publish('chat/lobby', { text: 'welcome' });
  sent.set('tagged:message', (await tg.next()) as unknown);
  sent.set('stream:message', (await st.next()) as unknown);

  // ── envelope, cluster-wide acks: two brokers on a MemoryHub and a node that never answers ──
  const hub = new MemoryHub();
  const silent = new MemoryBus(hub);
  await silent.start('silent', () => undefined);
  const pair = await Promise.all([{ timeoutMs: 100 }, false].map((clusterAcks) =>
    start({ endpoints: [{ path: '/ws', protocol: envelope() }], authenticate: ({ credentials }) => TOKENS[credentials?.token ?? ''] ?? null, bus: new MemoryBus(hub), clusterAcks, heartbeat: false }),
  ));
  extra.push(...pair);
  await silent.publish({ v: 1, node: 'silent', kind: 'hello', intervalMs: 60_000, acks: false });
  extra.push({ stop: () => silent.close() });
  const [x, y] = pair as [Running, Running];
  for (const [node, n] of [[x, 2], [y, 3]] as const) {
    for (let i = 0; i < n; i++) {
      const c = await connect(node.url('/ws?token=bob'));
      clients.push(c);
      await c.request('Subscribe', { topics: ['chat/general'] });
    }
  }
  const publisher = await connect(x.url('/ws?token=alice'));
  clients.push(publisher);
  sent.set('envelope:Ack.broadcast.partial', await publisher.request('Broadcast', { topic: 'chat/general', payload: { text: 'hi all' } }));

  if (process.env.PRINT_FRAMES !== undefined) writeFileSync(process.env.PRINT_FRAMES, JSON.stringify(Object.fromEntries(sent), null, 2));
}, 30_000);

afterAll(async () => {
  for (const c of clients) if (c.ws.readyState === WebSocket.OPEN) c.ws.close();
  await running?.stop();
  for (const e of extra) await e.stop();
});

describe('README wire examples', () => {
  const documented = examples();

  it('the README has examples to check', () => {
    expect(documented.size).toBeGreaterThan(10);
  });

  for (const [name, example] of documented) {
    // Examples added before their scenario are reported, not failed.
    it(`${name}: the README example is what the server sends`, (ctx) => {
      if (!sent.has(name)) return ctx.skip(`no scenario in test/readme-frames.test.ts produces ${name} yet`);
      expect(normalise(sent.get(name))).toEqual(normalise(example));
    });
  }

  it('every frame the scenarios produce is documented in the README', () => {
    const missing = [...sent.keys()].filter((name) => !documented.has(name));
    expect(missing, 'add a ```json wire=<name> example to README.md').toEqual([]);
  });
});
