/**
 * End-to-end tests of examples/realtime-service (seed 001) on port 0: the seed's own
 * RealtimeProtocolClient against the real example, plus raw `ws` clients for what that client
 * cannot observe (close codes, Error replies to requests with ids, binary frames).
 */
import { createHash, randomBytes } from 'node:crypto';
import { SignJWT } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { start, type RealtimeService } from '../examples/realtime-service/server.js';
import { RealtimeProtocolClient } from './fixtures/realtime-protocol-client.js';
import { Client, connect, until, type Frame } from './helpers.js';

const SECRET = randomBytes(32).toString('hex');
const EXPIRY_WARNING_MS = 1000;
let service: RealtimeService;
/** Every client a test opens, closed after it even when it fails, so one failure cannot leak into the next test. */
const opened: Array<Client | RealtimeProtocolClient> = [];
function track<T extends Client | RealtimeProtocolClient>(client: T): T {
  opened.push(client);
  return client;
}

beforeAll(async () => {
  // The seed's client logs every Status, Error and close; keep the test output readable.
  for (const method of ['log', 'warn', 'error'] as const) vi.spyOn(console, method).mockImplementation(() => {});
  service = await start({ port: 0, secret: SECRET, logger: false, expiryWarningMs: EXPIRY_WARNING_MS });
});

afterEach(async () => {
  for (const client of opened.splice(0)) {
    if (client instanceof Client) await client.close();
    else client.disconnect();
  }
  await until(() => service.broker.stats().connections === 0, 'every connection to close');
});

afterAll(async () => {
  await service?.close();
  vi.restoreAllMocks();
});

// ── helpers ────────────────────────────────────────────────────────────────

let names = 0;
/** A user name no other test uses, so presence, queues and counts never mix. */
const user = (base: string): string => `${base}-${++names}`;

interface Login {
  token: string;
  token_id: string;
  expires_at: number;
  roles: string[];
}

async function post(path: string, body: unknown, token?: string): Promise<{ status: number; body: any }> {
  const res = await fetch(service.httpUrl + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token !== undefined && { authorization: `Bearer ${token}` }) },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

async function login(name: string, extra: Record<string, unknown> = {}): Promise<Login> {
  const res = await post('/api/login', { user: name, ...extra });
  expect(res.status).toBe(200);
  return res.body as Login;
}

/** A raw `ws` client on `?token=`, past the welcome. */
async function open(token: string): Promise<Client> {
  return track(await connect(`${service.wsUrl}?token=${token}`));
}

/** Opens a raw client expected to be refused; resolves with the close code. */
async function refusedWith(url: string, protocols?: string[], headers?: Record<string, string>): Promise<number> {
  const client = new Client(url, protocols, headers && { headers });
  const { code } = await client.closed;
  expect(client.frames.filter((f) => f.type !== 'Error')).toEqual([]); // nothing delivered before auth
  return code;
}

function disconnected(name: string): Promise<void> {
  return until(() => service.broker.connectionsOf(name) === 0, `${name} to disconnect`);
}

/** Records what the seed client hands to `client.on(type, …)` and lets a test wait for it. */
class Inbox {
  readonly items: any[] = [];
  #untaken: any[] = [];
  #waiters: Array<{ test: (d: any) => boolean; resolve: (d: any) => void }> = [];

  constructor(client: RealtimeProtocolClient, type: string) {
    client.on(type, (data) => {
      this.items.push(data);
      const i = this.#waiters.findIndex((w) => w.test(data));
      if (i === -1) this.#untaken.push(data);
      else this.#waiters.splice(i, 1)[0]!.resolve(data);
    });
  }

  next(test: (d: any) => boolean = () => true): Promise<any> {
    const i = this.#untaken.findIndex(test);
    if (i !== -1) return Promise.resolve(this.#untaken.splice(i, 1)[0]);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out; have ${JSON.stringify(this.items.slice(-3))}`)), 5000);
      this.#waiters.push({ test, resolve: (d) => (clearTimeout(timer), resolve(d)) });
    });
  }
}

/**
 * A binary frame (seed 001 "Binary Message Format", DESIGN.md): `[type][4-byte BE length]` and,
 * for broadcast (0x01) and direct (0x02), a 2-byte length and the topic or user before the data.
 */
function binaryFrame(type: number, name: string, data: Buffer): Buffer {
  const nameBytes = Buffer.from(name, 'utf8');
  const payload = Buffer.concat([Buffer.alloc(2), nameBytes, data]);
  payload.writeUInt16BE(nameBytes.length, 0);
  const header = Buffer.alloc(5);
  header[0] = type;
  header.writeUInt32BE(payload.length, 1);
  return Buffer.concat([header, payload]);
}

const binaryBroadcast = (topic: string, data: Buffer): Buffer => binaryFrame(0x01, topic, data);

const isReplyTo = (id: string) => (f: Frame) =>
  (f.type === 'Ack' && f.data?.message_id === id) || (f.type === 'Error' && f.data?.details?.message_id === id);

// ── seed 001 "Client Implementation Guide": the seed's own client ──────────

describe("seed 001's RealtimeProtocolClient against the example", () => {
  it('runs the usage example: connect, subscribe, broadcast, and a second client receives it', async () => {
    const aliceName = user('alice');
    const bobName = user('bob');
    const [alice, bob] = await Promise.all([login(aliceName), login(bobName)]);

    const listener = track(new RealtimeProtocolClient(service.wsUrl, bob.token));
    const bobBroadcasts = new Inbox(listener, 'Broadcast');
    const bobDirect = new Inbox(listener, 'DirectMessage');
    await listener.connect();
    expect(await listener.subscribe(['chat.general'])).toEqual({ message_id: 'msg_1', status: 'ok' });

    // The usage example, with its handlers, on the example's URL and a token from /api/login.
    const client = track(new RealtimeProtocolClient(service.wsUrl, alice.token));
    const status = new Inbox(client, 'Status');
    const received: any[] = [];
    client.on('Broadcast', (data) => received.push(data));
    client.on('DirectMessage', (data) => received.push(data));
    await client.connect();

    const welcome = await status.next((s) => s.status === 'connected');
    expect(welcome.details).toEqual({
      connection_id: expect.any(String),
      server_time: expect.any(Number),
      protocol_version: '1.0',
      features: expect.arrayContaining(['broadcast', 'direct_message', 'presence', 'history']),
    });

    const subResult = await client.subscribe(['chat.general', 'notifications']);
    expect(subResult).toEqual({ message_id: 'msg_1', status: 'ok' });
    // The seed's Status reply went to on('Status') before the Ack resolved the promise.
    expect(status.items.at(-1)).toEqual({
      status: 'subscribed',
      details: { topics: ['chat.general', 'notifications'], active_subscriptions: 2 },
    });

    const broadcastResult = await client.broadcast('chat.general', { message: 'Hello from TypeScript client!' });
    expect(broadcastResult).toEqual({ message_id: 'msg_2', status: 'delivered', recipients: 1, offset: expect.any(Number), epoch: expect.any(String) });
    const delivered = await bobBroadcasts.next();
    expect(delivered).toEqual({
      topic: 'chat.general',
      payload: { message: 'Hello from TypeScript client!' },
      metadata: { sent_at: expect.any(Number), message_id: expect.any(String), offset: broadcastResult.offset, epoch: broadcastResult.epoch },
    });

    // Direct message (seed "5. Direct Message"): Ack with delivered_to; the target's on('DirectMessage').
    const dm = await client.sendDirectMessage(bobName, { message: 'Private message', attachments: [] });
    expect(dm).toEqual({ message_id: 'msg_3', status: 'delivered', delivered_to: [expect.any(String)] });
    expect(await bobDirect.next()).toEqual({
      from_user: aliceName,
      payload: { message: 'Private message', attachments: [] },
      metadata: { sent_at: expect.any(Number), message_id: expect.any(String) },
    });

    // Ping/Pong through the class's generic send(…, expectAck).
    const pongs = new Inbox(client, 'Pong');
    expect(await client.send('Ping', { timestamp: 1234567890 }, true)).toEqual({ message_id: 'msg_4', status: 'ok' });
    expect(await pongs.next()).toEqual({ timestamp: 1234567890 });

    // Unsubscribe (seed "3."): Status unsubscribed with the remaining count.
    expect(await client.send('Unsubscribe', { topics: ['chat.general'] }, true)).toEqual({ message_id: 'msg_5', status: 'ok' });
    expect(status.items.at(-1)).toEqual({ status: 'unsubscribed', details: { topics: ['chat.general'], active_subscriptions: 1 } });

    // Seed "Protocol Extensions": the example's X- type, through the same generic send().
    expect(await client.send('X-Whoami', {}, true)).toEqual({
      message_id: 'msg_6',
      status: 'ok',
      result: { user_id: aliceName, roles: ['user'], token_id: alice.token_id, expires_at: alice.expires_at },
    });

    // An Error reaches on('Error'). (Sent without an id: with one, the class would wait 30 s for an Ack.)
    const errors = new Inbox(client, 'Error');
    await client.send('Broadcast', { topic: 'admin.console', payload: { rm: '-rf' } });
    expect(await errors.next()).toMatchObject({ code: 403, details: { topics: ['admin.console'] } });

    expect(received).toEqual([]); // its own broadcast is not echoed; the DM went to bob
    client.disconnect();
    listener.disconnect();
    await Promise.all([disconnected(aliceName), disconnected(bobName)]);
  });

  it('DM to an offline user: 404 {message_id, queued: true}, delivered when the user connects', async () => {
    const senderName = user('sender');
    const offlineName = user('user456');
    const sender = await open((await login(senderName)).token);
    // A raw client: the seed class resolves only on Ack, so its promise would wait 30 s here.
    const reply = await sender.request('DirectMessage', { target_user: offlineName, payload: { message: 'Private message', attachments: [] } });
    expect(reply).toEqual({
      type: 'Error',
      data: { code: 404, message: `User ${offlineName} not found or not connected`, details: { message_id: 'r1', queued: true } },
    });

    const target = track(new RealtimeProtocolClient(service.wsUrl, (await login(offlineName)).token));
    const inbox = new Inbox(target, 'DirectMessage');
    await target.connect();
    expect(await inbox.next()).toEqual({
      from_user: senderName,
      payload: { message: 'Private message', attachments: [] },
      metadata: { sent_at: expect.any(Number), message_id: expect.any(String) },
    });
    target.disconnect();
    await sender.close();
    await disconnected(offlineName);
  });
});

// ── seed 001 "Authentication Methods" and "Authentication Handshake" ───────

describe('JWT authentication', () => {
  it.each([
    ['query parameter', (t: string) => [`${service.wsUrl}?token=${t}`] as const],
    ['Authorization: Bearer header', (t: string) => [service.wsUrl, undefined, { headers: { authorization: `Bearer ${t}` } }] as const],
    ['access_token.<jwt> subprotocol', (t: string) => [service.wsUrl, [`access_token.${t}`]] as const],
  ])('accepts the token in the %s and maps its claims to the principal', async (_how, args) => {
    const name = user('carol');
    const issued = await login(name, { device: 'web', location: 'New York' });
    const seen = new Promise<any>((resolve) => {
      const onConnection = (info: { principal: { id: string } }): void => {
        if (info.principal.id !== name) return;
        service.broker.off('connection', onConnection);
        resolve(info.principal);
      };
      service.broker.on('connection', onConnection);
    });
    const [url, protocols, options] = args(issued.token) as [string, string[] | undefined, object | undefined];
    const client = track(await connect(url, protocols, options));
    if (protocols !== undefined) expect(client.ws.protocol).toBe(protocols[0]); // the 101 selected the offered entry
    expect(await seen).toEqual({
      id: name,
      tokenId: issued.token_id,
      expiresAt: issued.expires_at,
      grants: expect.arrayContaining([
        { topic: 'chat.>', access: 'readwrite' },
        { topic: 'notifications', access: 'read' },
        { topic: '$presence.>', access: 'read' },
      ]),
      data: { roles: ['user'], presence: { device: 'web', location: 'New York' } },
    });
    // Seed topics with the dotted syntax, `updates.*` included; nothing outside the grants.
    expect((await client.request('Subscribe', { topics: ['notifications', 'chat.general', 'updates.*'] })).type).toBe('Ack');
    expect((await client.request('Subscribe', { topics: ['admin.audit'] })).data).toMatchObject({ code: 403, details: { topics: ['admin.audit'] } });
    expect((await client.request('Broadcast', { topic: 'notifications', payload: 1 })).data.code).toBe(403); // read only
    await client.close();
  });

  it('refuses a missing token with 4001 and invalid or expired JWTs with 4003', async () => {
    const key = new TextEncoder().encode(SECRET);
    const now = Math.floor(Date.now() / 1000);
    const claims = { roles: ['user'] };
    const forge = (build: (jwt: SignJWT) => SignJWT, secret = key) =>
      build(new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setIssuer('switchyard-realtime-service').setAudience('switchyard-realtime-service/ws').setSubject('mallory').setJti('j1')).sign(secret);
    const good = await forge((j) => j.setExpirationTime(now + 60));
    const unsigned = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${good.split('.')[1]}.`;

    expect(await refusedWith(service.wsUrl)).toBe(4001);
    const cases: Array<[string, string]> = [
      ['garbage', 'not-a-jwt'],
      ['wrong secret', await forge((j) => j.setExpirationTime(now + 60), randomBytes(32))],
      ['expired', await forge((j) => j.setIssuedAt(now - 120).setExpirationTime(now - 60))],
      ['no exp', await forge((j) => j)],
      ['wrong audience', await forge((j) => j.setAudience('someone-else').setExpirationTime(now + 60))],
      ['alg none', unsigned],
      ['tampered payload', `${good.split('.')[0]}.${Buffer.from(JSON.stringify({ ...claims, roles: ['admin'], sub: 'mallory', jti: 'j1', exp: now + 60 })).toString('base64url')}.${good.split('.')[2]}`],
    ];
    for (const [why, token] of cases) {
      expect([why, await refusedWith(`${service.wsUrl}?token=${token}`)]).toEqual([why, 4003]);
    }
    expect(await refusedWith(service.wsUrl, undefined, { authorization: `Token ${good}` })).toBe(4003); // Bearer only
    expect(await refusedWith(service.wsUrl, ['access_token.not-a-jwt'])).toBe(4003);
    // The forged-but-valid one is accepted: the cases above fail for the reason they name.
    const ok = await open(good);
    await ok.close();
  });

  it("a refused token looks like connect-then-disconnect to the seed's client (its onclose ignores the code)", async () => {
    // With the 'close' policy the upgrade completes and the 4003 follows, which a browser can see;
    // the seed class resolves connect() on open and only logs the close, so it cannot tell why.
    const log = vi.mocked(console.log);
    const before = log.mock.calls.length;
    const client = track(new RealtimeProtocolClient(service.wsUrl, 'not-a-jwt'));
    const status = new Inbox(client, 'Status');
    await client.connect();
    await until(() => log.mock.calls.slice(before).some((c) => c[0] === 'WebSocket disconnected'), 'the seed client to log its close');
    expect(status.items).toEqual([]); // no welcome, nothing delivered
  });

  it('warns with AuthStatus token_expiring, then closes 4002 when the token expires while connected', async () => {
    const name = user('dana');
    const issued = await service.issueToken(name, {}, 2); // exp in 1–2 s; the warning comes 1 s before
    const seedClient = track(new RealtimeProtocolClient(service.wsUrl, issued.token));
    const authStatus = new Inbox(seedClient, 'AuthStatus');
    await seedClient.connect();
    const client = await open(issued.token);
    const warning = await client.nextOf('AuthStatus');
    expect(warning.data).toEqual({ status: 'token_expiring', expires_at: issued.exp * 1000, refresh_required: true });
    expect(await authStatus.next()).toEqual(warning.data); // the seed's "Token Refresh Flow" frame, via on('AuthStatus')
    expect(Date.now()).toBeGreaterThanOrEqual(issued.exp * 1000 - EXPIRY_WARNING_MS - 50);
    expect((await client.closed).code).toBe(4002);
    expect(Date.now()).toBeGreaterThanOrEqual(issued.exp * 1000);
    await disconnected(name); // the seed client's connection was closed too
    // "Client should obtain a new token and reconnect": the old one is refused, a new one works.
    expect(await refusedWith(`${service.wsUrl}?token=${issued.token}`)).toBe(4003);
    const again = await open((await login(name)).token);
    await again.close();
  });

  it('POST /api/revoke by token id closes exactly that token’s connections (4002) and refuses it after', async () => {
    const name = user('erin');
    const [phone, laptop] = await Promise.all([login(name, { device: 'phone' }), login(name, { device: 'laptop' })]);
    const onPhone = await open(phone.token);
    const onLaptop = await open(laptop.token);

    const stranger = await login(user('frank'));
    expect(await post('/api/revoke', { token_id: phone.token_id }, stranger.token)).toEqual({ status: 403, body: { error: 'not your token' } });
    expect(await post('/api/revoke', { token_id: phone.token_id })).toMatchObject({ status: 401 });

    // Logging out a device with its own token.
    expect(await post('/api/revoke', { token_id: phone.token_id }, phone.token)).toEqual({ status: 200, body: { closed: 1 } });
    expect((await onPhone.closed).code).toBe(4002);
    expect((await onLaptop.request('Ping', {})).type).toBe('Ack');
    expect(await refusedWith(`${service.wsUrl}?token=${phone.token}`)).toBe(4003);

    // An admin revokes every connection of a user.
    const admin = await login('admin');
    expect(admin.roles).toEqual(['user', 'admin']);
    expect(await post('/api/revoke', { user: name }, admin.token)).toEqual({ status: 200, body: { closed: 1 } });
    expect((await onLaptop.closed).code).toBe(4002);
  });
});

// ── seed 001 "System Notifications" ────────────────────────────────────────

describe('notifications (POST /api/notify → broker.notify)', () => {
  const notice = {
    level: 'info',
    title: 'Maintenance Notice',
    message: 'System will undergo maintenance in 1 hour',
    actions: [{ label: 'Learn More', url: 'https://status.example.com' }],
  };

  it('reaches everyone, one principal, or a topic’s subscribers', async () => {
    const subscribedName = user('gina');
    const otherName = user('hank');
    const admin = await login('admin');

    const seedClient = track(new RealtimeProtocolClient(service.wsUrl, (await login(subscribedName)).token));
    const notifications = new Inbox(seedClient, 'Notification');
    await seedClient.connect();
    await seedClient.subscribe(['notifications']);
    const other = await open((await login(otherName)).token);

    const all = await post('/api/notify', { target: 'all', data: notice }, admin.token);
    expect(all).toEqual({ status: 200, body: { recipients: service.broker.stats().connections } });
    expect(all.body.recipients).toBeGreaterThanOrEqual(2);
    expect(await notifications.next()).toEqual(notice); // the seed's frame: {"type":"Notification","data":{…}}
    expect((await other.nextOf('Notification')).data).toEqual(notice);

    const direct = { level: 'warning', title: 'Just you', message: 'hi' };
    expect(await post('/api/notify', { target: { principal: otherName }, data: direct }, admin.token)).toEqual({ status: 200, body: { recipients: 1 } });
    expect((await other.nextOf('Notification')).data).toEqual(direct);

    const topical = { level: 'info', title: 'Subscribers only', message: 'hello' };
    expect(await post('/api/notify', { target: { topic: 'notifications' }, data: topical }, admin.token)).toEqual({ status: 200, body: { recipients: 1 } });
    expect(await notifications.next()).toEqual(topical);

    // Neither reached the connection it was not for: a round trip after each would have shown it.
    expect((await other.request('Ping', {})).type).toBe('Ack');
    expect(other.frames.filter((f) => f.type === 'Notification').map((f) => f.data.title)).toEqual([notice.title, direct.title]);
    await until(() => notifications.items.length >= 2);
    expect(notifications.items.map((n) => n.title)).toEqual([notice.title, topical.title]);

    seedClient.disconnect();
    await other.close();
    await disconnected(subscribedName);
  });

  it('is for admins only, and validates its input', async () => {
    const plain = await login(user('ivan'));
    const admin = await login('admin');
    expect(await post('/api/notify', { data: notice }, plain.token)).toEqual({ status: 403, body: { error: 'admin role required' } });
    expect(await post('/api/notify', { data: notice })).toMatchObject({ status: 401 });
    expect(await post('/api/notify', { target: { nope: 1 }, data: notice }, admin.token)).toMatchObject({ status: 400 });
    expect(await post('/api/notify', { target: 'all' }, admin.token)).toMatchObject({ status: 400 });
    expect(await post('/api/login', { user: 'no spaces allowed' })).toMatchObject({ status: 400 });
    expect((await fetch(`${service.httpUrl}/api/unknown`)).status).toBe(404);
  });
});

// ── seed 001 "Presence Updates" ────────────────────────────────────────────

describe('presence', () => {
  it('announces online/offline with the token’s metadata and answers the presence query', async () => {
    const watcherName = user('watcher');
    const daveName = user('dave');
    const watcher = await open((await login(watcherName)).token);
    expect((await watcher.request('Subscribe', { topics: ['$presence.*'] })).type).toBe('Ack');
    const admin = await open((await login('admin')).token);
    expect((await admin.request('Subscribe', { topics: ['>'] })).type).toBe('Ack'); // `>` does not reach `$presence`

    const dave = await login(daveName, { device: 'web', location: 'New York' });
    const before = Date.now();
    const first = await open(dave.token);
    const online = await watcher.nextOf('Presence', (f) => f.data.user_id === daveName);
    expect(online.data).toEqual({ user_id: daveName, status: 'online', last_seen: expect.any(Number), metadata: { device: 'web', location: 'New York' } });
    expect(online.data.last_seen).toBeGreaterThanOrEqual(before);

    // Query (one Presence frame per user, then the Ack).
    watcher.sendJson({ type: 'Presence', data: { user_ids: [daveName, 'never-seen'] }, id: 'q1' });
    const reply = await watcher.next(isReplyTo('q1'));
    expect(reply.type).toBe('Ack');
    // The answers come right before the Ack (other users' events may be around them).
    const answers = watcher.frames.slice(watcher.frames.indexOf(reply) - 2, watcher.frames.indexOf(reply));
    expect(answers).toEqual([
      { type: 'Presence', data: { user_id: daveName, status: 'online', last_seen: expect.any(Number), metadata: { device: 'web', location: 'New York' } } },
      { type: 'Presence', data: { user_id: 'never-seen', status: 'offline', last_seen: null, metadata: {} } },
    ]);
    for (const answer of answers) await watcher.nextOf('Presence', (f) => f === answer); // taken: not events

    // A second connection is not a new "online"; closing it is not an "offline".
    const second = await open(dave.token);
    await second.close();
    await first.close();
    const offline = await watcher.nextOf('Presence', (f) => f.data.user_id === daveName);
    expect(offline.data).toEqual({ user_id: daveName, status: 'offline', last_seen: expect.any(Number), metadata: { device: 'web', location: 'New York' } });
    // The pushed online, the query's answer, the pushed offline: nothing for the second connection.
    expect(watcher.frames.filter((f) => f.type === 'Presence' && f.data.user_id === daveName).map((f) => f.data.status)).toEqual(['online', 'online', 'offline']);

    expect((await admin.request('Ping', {})).type).toBe('Ack'); // queued after the presence events, if any had matched
    expect(admin.frames.filter((f) => f.type === 'Presence')).toEqual([]);

    const after = await watcher.request('Presence', { user_ids: [daveName] });
    expect(after.type).toBe('Ack');
    expect(watcher.frames.at(-2)).toEqual({ type: 'Presence', data: { user_id: daveName, status: 'offline', last_seen: offline.data.last_seen, metadata: {} } });
    await Promise.all([watcher.close(), admin.close()]);
  });

  it('needs subscribe permission on the watched presence topic, and nobody can publish presence', async () => {
    const noRoles = await open((await service.issueToken(user('guest'), { roles: [] })).token);
    expect((await noRoles.request('Subscribe', { topics: ['$presence.*'] })).data).toMatchObject({ code: 403, details: { topics: ['$presence.*'] } });
    const client = await open((await login(user('ursula'))).token);
    expect((await client.request('Broadcast', { topic: '$presence.admin', payload: { status: 'online' } })).data.code).toBe(403);
    await Promise.all([noRoles.close(), client.close()]);
  });
});

// ── history and recovery (DESIGN.md "Delivery semantics"; seed 001 features: "history") ──

describe('history on chat.> topics', () => {
  it('numbers deliveries, answers History requests and the latest value', async () => {
    const topic = `chat.${user('room')}`;
    const publisher = await open((await login(user('pub'))).token);
    const reader = await open((await login(user('reader'))).token);
    await reader.request('Subscribe', { topics: [topic] });
    let epoch = '';
    for (let i = 1; i <= 5; i++) {
      const ack = await publisher.request('Broadcast', { topic, payload: { n: i } });
      expect(ack.data).toMatchObject({ status: 'delivered', recipients: 1, offset: i, epoch: expect.any(String) });
      epoch = ack.data.epoch;
      expect((await reader.nextOf('Broadcast')).data.metadata).toMatchObject({ offset: i, epoch });
    }

    reader.sendJson({ type: 'History', data: { topic, since: 3, limit: 50 }, id: 'h1' });
    const page = await reader.nextOf('History');
    expect(page.data).toEqual({
      topic,
      messages: [4, 5].map((n) => ({ payload: { n }, metadata: { sent_at: expect.any(Number), message_id: expect.any(String), offset: n, epoch } })),
      latest_offset: 5,
      epoch,
      complete: true,
    });
    const historyAck = await reader.next(isReplyTo('h1'));
    expect(historyAck.data).toEqual({ message_id: 'h1', status: 'ok' });
    expect(reader.frames.indexOf(historyAck)).toBe(reader.frames.indexOf(page) + 1); // the Ack comes right after

    const latest = await reader.request('History', { topic, limit: 1 });
    expect(latest.type).toBe('Ack');
    expect(reader.frames.at(-2)!.data).toMatchObject({ messages: [{ payload: { n: 5 }, metadata: { offset: 5 } }], latest_offset: 5 });

    // Not a history topic, and not a permitted one.
    expect((await reader.request('History', { topic: 'admin.audit' })).data.code).toBe(403);
    await Promise.all([publisher.close(), reader.close()]);
  });

  it('recovers what a reconnecting client missed, then live messages, with no gap and no duplicate', async () => {
    const topic = `chat.${user('room')}`;
    for (let i = 1; i <= 10; i++) await service.broker.publish(topic, { n: i });

    // Publishing goes on, one message per turn of the event loop, before, during and after the
    // recovery: each message must arrive exactly once, in offset order.
    // It stops at 100 messages, so offset 6 is still in the example's 100-message history.
    const client = track(new Client(`${service.wsUrl}?token=${(await login(user('late'))).token}`));
    await client.opened;
    let published = 10;
    let pumping = true;
    const pump = (async () => {
      while (pumping && published < 100) {
        await service.broker.publish(topic, { n: ++published });
        await new Promise((resolve) => setImmediate(resolve));
      }
      pumping = false;
    })();
    client.sendJson({ type: 'Subscribe', data: { topics: [topic], recover: { [topic]: 5 } }, id: 's1' });
    const status = await client.nextOf('Status', (f) => f.data.status === 'subscribed');
    expect(status.data.details).toEqual({
      topics: [topic],
      active_subscriptions: 1,
      recovered: { [topic]: true },
      positions: { [topic]: { offset: expect.any(Number), epoch: expect.any(String) } },
    });
    const statusAt = client.frames.indexOf(status);
    const liveAfterStatus = () => client.frames.slice(statusAt).filter((f) => f.type === 'Broadcast').length;
    await until(() => !pumping || liveAfterStatus() >= 10, 'live messages after the Status');
    pumping = false;
    await pump;
    expect((await client.request('Ping', {})).type).toBe('Ack'); // every publish so far is in front of this Ack
    const broadcasts = client.frames.filter((f) => f.type === 'Broadcast');
    const offsets = broadcasts.map((f) => f.data.metadata.offset);
    expect(offsets).toEqual(Array.from({ length: published - 5 }, (_, i) => 6 + i));
    expect(broadcasts.map((f) => f.data.payload.n)).toEqual(offsets);
    // The missed ones (6–10) come before the subscribed Status.
    const early = client.frames.slice(0, statusAt).filter((f) => f.type === 'Broadcast').map((f) => f.data.metadata.offset);
    expect(early.slice(0, 5)).toEqual([6, 7, 8, 9, 10]);
    await client.close();
  });

  it('says recovered: false when history no longer reaches back that far', async () => {
    const small = await start({ port: 0, secret: SECRET, logger: false, history: { maxMessages: 3 } });
    try {
      const topic = 'chat.general';
      for (let i = 1; i <= 6; i++) await small.broker.publish(topic, { n: i });
      const issued = await small.issueToken(user('late'));
      const client = await connect(`${small.wsUrl}?token=${issued.token}`);
      const reply = await client.request('Subscribe', { topics: [topic], recover: { [topic]: 1 } });
      expect(reply.type).toBe('Ack');
      const status = client.frames.find((f) => f.type === 'Status' && f.data.status === 'subscribed')!;
      expect(status.data.details.recovered).toEqual({ [topic]: false });
      // What is still there (offsets 4–6) is replayed, in order, before the Status.
      const replayed = client.frames.slice(0, client.frames.indexOf(status)).filter((f) => f.type === 'Broadcast');
      expect(replayed.map((f) => f.data.metadata.offset)).toEqual([4, 5, 6]);
      await client.close();
    } finally {
      await small.close();
    }
  });
});

// ── seed 001 "Error Codes" 429, "Best Practices" 6 (64KB), "Binary Protocol Support" ──

describe('limits', () => {
  it('answers 429 with retry_after_ms naming the request once the rate limit is passed', async () => {
    const client = await open((await login(user('chatty'))).token);
    const count = 120; // the example allows a burst of 100 at 50/s
    for (let i = 0; i < count; i++) client.sendJson({ type: 'Ping', data: {}, id: `p${i}` });
    await until(() => client.frames.filter((f) => f.type === 'Ack' || f.type === 'Error').length === count, `${count} replies`);
    const errors = client.frames.filter((f) => f.type === 'Error');
    expect(errors.length).toBeGreaterThan(0);
    for (const e of errors) {
      expect(e.data).toMatchObject({ code: 429, details: { retry_after_ms: expect.any(Number), message_id: expect.stringMatching(/^p\d+$/) } });
    }
    expect(client.frames.filter((f) => f.type === 'Ack').length).toBeGreaterThanOrEqual(100);
    expect(client.ws.readyState).toBe(client.ws.OPEN); // refused, not dropped
    // Sustained abuse (most frames refused, across at least half of the abuse window) is a
    // policy violation: close 1008. One burst is not, so keep flooding until the close comes.
    const flood = setInterval(() => {
      for (let i = 0; i < 20 && client.ws.readyState === client.ws.OPEN; i++) client.sendJson({ type: 'Ping', data: {} });
    }, 20);
    try {
      expect((await client.closed).code).toBe(1008);
    } finally {
      clearInterval(flood);
    }
  });

  it('closes with 1009 on a frame over 64 KB, and accepts one under it', async () => {
    const name = user('big');
    const token = (await login(name)).token;
    const ok = await open(token);
    const under = await ok.request('Broadcast', { topic: 'chat.big', payload: 'x'.repeat(60 * 1024) });
    expect(under.type).toBe('Ack');
    ok.sendJson({ type: 'Broadcast', data: { topic: 'chat.big', payload: 'x'.repeat(64 * 1024) }, id: 'big' });
    expect((await ok.closed).code).toBe(1009);
  });

  it('broadcasts binary frames: binary_received with size, sha256 checksum and recipients; subscribers get the same frame', async () => {
    const topic = `chat.${user('files')}`;
    const sender = await open((await login(user('uploader'))).token);
    const receiver = await open((await login(user('downloader'))).token);
    await receiver.request('Subscribe', { topics: [topic] });
    const data = randomBytes(1024);
    const frame = binaryBroadcast(topic, data);
    sender.ws.send(frame);
    const status = await sender.nextOf('Status', (f) => f.data.status === 'binary_received');
    expect(status.data.details).toEqual({
      size: 1024,
      type: 'broadcast',
      checksum: `sha256:${createHash('sha256').update(data).digest('hex')}`,
      recipients: 1,
    });
    await until(() => receiver.binary.length === 1, 'the binary delivery');
    expect(receiver.binary[0]!.equals(frame)).toBe(true);

    sender.ws.send(binaryBroadcast('admin.files', data)); // same permissions as JSON broadcasts
    expect((await sender.nextOf('Error')).data).toMatchObject({ code: 403, details: { topics: ['admin.files'] } });
    await Promise.all([sender.close(), receiver.close()]);
  });

  it('sends binary direct messages (0x02) and refuses the types this service has no handler for (0x04)', async () => {
    const senderName = user('uploader');
    const targetName = user('downloader');
    const sender = await open((await login(senderName)).token);
    const target = await open((await login(targetName)).token);
    const data = randomBytes(300);
    sender.ws.send(binaryFrame(0x02, targetName, data));
    const status = await sender.nextOf('Status', (f) => f.data.status === 'binary_received');
    expect(status.data.details).toEqual({
      size: 300,
      type: 'direct_message',
      checksum: `sha256:${createHash('sha256').update(data).digest('hex')}`,
      delivered_to: [expect.any(String)],
    });
    await until(() => target.binary.length === 1, 'the binary direct message');
    expect(target.binary[0]!.equals(binaryFrame(0x02, senderName, data))).toBe(true); // names the sender

    // 0x04 stream data needs a host handler; this example registers none.
    const raw = Buffer.alloc(5 + 4);
    raw[0] = 0x04;
    raw.writeUInt32BE(4, 1);
    sender.ws.send(raw);
    expect((await sender.nextOf('Error')).data).toMatchObject({ code: 400, message: expect.stringContaining('stream_data') });
    await Promise.all([sender.close(), target.close()]);
  });

  it('receives 0x03 file transfers: Status binary_received with size, type and sha256, the file kept (bounded) for its sender', async () => {
    const name = user('uploader');
    const sender = await open((await login(name)).token);
    const data = randomBytes(2048);
    const frame = Buffer.alloc(5 + data.length);
    frame[0] = 0x03;
    frame.writeUInt32BE(data.length, 1);
    data.copy(frame, 5);
    sender.ws.send(frame);
    const status = await sender.nextOf('Status', (f) => f.data.status === 'binary_received');
    const checksum = `sha256:${createHash('sha256').update(data).digest('hex')}`;
    expect(status.data.details).toEqual({ size: 2048, type: 'file_transfer', checksum });
    const [file] = service.files.list(name);
    expect(file).toMatchObject({ user: name, size: 2048, checksum });
    expect(file!.data.equals(data)).toBe(true);
    await sender.close();
  });

  it('the file inbox is bounded per user and in total bytes, oldest first', async () => {
    const { FileInbox } = await import('../examples/realtime-service/files.js');
    const inbox = new FileInbox({ maxFilesPerUser: 2, maxTotalBytes: 250 });
    for (const n of [1, 2, 3]) inbox.add('a', Buffer.alloc(50, n));
    expect(inbox.list('a').map((f) => f.data[0])).toEqual([2, 3]);
    inbox.add('b', Buffer.alloc(200, 9));
    expect(inbox.totalBytes).toBeLessThanOrEqual(250);
    expect(inbox.list('a').map((f) => f.data[0])).toEqual([3]);
    expect(inbox.list('b')).toHaveLength(1);
  });

  it('accepts seed 001 "Metadata Headers" next to data', async () => {
    const client = await open((await login(user('meta'))).token);
    client.sendJson({ type: 'Broadcast', data: { topic: 'chat.meta', payload: 1 }, metadata: { priority: 'high', ttl: 3600 }, id: 'm1' });
    expect((await client.next(isReplyTo('m1'))).data).toMatchObject({ message_id: 'm1', status: 'delivered' });
  });
});
