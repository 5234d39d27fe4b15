/** The tagged protocol (seed 000) end to end over real sockets: tags, frames, every close code. */
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { tagged, type BrokerOptions, type EndpointOptions, type Principal } from 'switchyard';
import { start, type Client, type Running } from './helpers.js';
import { connections, open, refused, subscriptions } from './wire-helpers.js';

const SENSOR: Principal = {
  id: 'sensor',
  tokenId: 'tok-sensor',
  maxConnections: 2,
  grants: [
    { topic: 'sensors/#', access: 'readwrite' },
    { topic: 'alerts/#', access: 'read' },
  ],
};
const VIEWER: Principal = {
  id: 'viewer',
  tokenId: 'tok-viewer',
  grants: [
    { topic: 'sensors/+/temp', access: 'read' },
    { topic: 'alerts/#', access: 'read' },
    { topic: 'devices/room1/status', access: 'read' },
  ],
};
const TOKENS: Record<string, Principal> = { 'sensor-secret': SENSOR, 'viewer-secret': VIEWER };

const authenticate: BrokerOptions['authenticate'] = ({ credentials }) =>
  (credentials && TOKENS[credentials.token]) ?? null;

let running: Running | undefined;
const clients: Client[] = [];

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await running?.stop();
  running = undefined;
});

async function serve(endpoint: Partial<EndpointOptions> = {}): Promise<Running> {
  running = await start({
    endpoints: [{ path: '/ws/brocker/', protocol: tagged(), ...endpoint }],
    authenticate,
    heartbeat: false,
  });
  return running;
}

/** Connects with `Authorization: Token …` and `Tag: …` headers, as seed 000's client does. */
async function connect(token: string, tags: string): Promise<Client> {
  const client = await open(running!.url('/ws/brocker/'), { headers: { Authorization: `Token ${token}`, Tag: tags } });
  clients.push(client);
  return client;
}

const tagFrom = (tag: string) => (f: Record<string, unknown>) => f.tag === tag;

describe('tagged: subscriptions from the Tag header', () => {
  it('delivers {tag, message} to matching tags and takes {tag, message} from clients (seed 000 "Message Format")', async () => {
    await serve();
    const viewer = await connect('viewer-secret', 'sensors/+/temp,alerts/#,devices/room1/status');
    const sensor = await connect('sensor-secret', 'sensors/#');
    await subscriptions(running!.broker, 4);

    const message = { value: 25.5, unit: 'Celsius', timestamp: 1677610000 };
    sensor.sendJson({ tag: 'sensors/room1/temp', message });
    await viewer.next(tagFrom('sensors/room1/temp'));
    const raw = await new Promise<string>((resolve) => {
      viewer.ws.once('message', (data) => resolve(data.toString()));
      sensor.sendJson({ tag: 'sensors/room2/temp', message: 'plain string' });
    });
    // "Messages received from the server follow the exact same format."
    expect(JSON.parse(raw)).toEqual({ tag: 'sensors/room2/temp', message: 'plain string' });
    expect(viewer.frames[0]).toEqual({ tag: 'sensors/room1/temp', message });
    // The publishing connection does not get its own message back (a round trip on it shows
    // that nothing was on its way when the viewer got the message).
    await sensor.roundTrip();
    expect(sensor.frames).toEqual([]);
  });

  it('matches MQTT wildcards: sensors/+/temp one level, alerts/# every level below (and alerts itself)', async () => {
    await serve();
    const viewer = await connect('viewer-secret', 'sensors/+/temp,alerts/#');
    await subscriptions(running!.broker, 2);
    const { broker } = running!;
    for (const topic of ['sensors/room1/humidity', 'sensors/a/b/temp', 'devices/room2/status', 'sensors/room1/temp']) {
      await broker.publish(topic, topic);
    }
    await broker.publish('alerts/critical/fire', 1);
    await broker.publish('alerts', 2);
    await broker.publish('alerts/low', 3);
    await viewer.next(tagFrom('alerts/low'));
    expect(viewer.frames).toEqual([
      { tag: 'sensors/room1/temp', message: 'sensors/room1/temp' },
      { tag: 'alerts/critical/fire', message: 1 },
      { tag: 'alerts', message: 2 },
      { tag: 'alerts/low', message: 3 },
    ]);
  });

  it('delivers once to a connection whose tags overlap, and to the publisher\'s other connections', async () => {
    await serve();
    const a = await connect('sensor-secret', 'sensors/#');
    const b = await connect('sensor-secret', 'sensors/#, sensors/+/temp');
    await subscriptions(running!.broker, 3);
    a.sendJson({ tag: 'sensors/x/temp', message: 1 });
    a.sendJson({ tag: 'sensors/x/temp', message: 2 });
    await b.next((f) => f.message === 2);
    await Promise.all([a.roundTrip(), b.roundTrip()]);
    expect(b.frames).toEqual([{ tag: 'sensors/x/temp', message: 1 }, { tag: 'sensors/x/temp', message: 2 }]);
    expect(a.frames).toEqual([]);
  });

  it('trims and URL-decodes the Tag header, ignoring empty entries', async () => {
    await serve();
    const viewer = await connect('viewer-secret', ' sensors/%2B/temp ,, alerts%2F%23 ,');
    await subscriptions(running!.broker, 2);
    await running!.broker.publish('alerts/a', 'a');
    await running!.broker.publish('sensors/r/temp', 't');
    await viewer.next(tagFrom('sensors/r/temp'));
    expect(viewer.frames.map((f) => f.tag)).toEqual(['alerts/a', 'sensors/r/temp']);
  });

  it('takes ?tags= (and ?token=) from browsers, which cannot set headers', async () => {
    await serve();
    const tags = encodeURIComponent('sensors/+/temp,alerts/#');
    const browser = await open(running!.url(`/ws/brocker/?token=viewer-secret&tags=${tags}`));
    clients.push(browser);
    // The subprotocol form a browser can send: new WebSocket(url, ['Token', token]).
    const other = await open(running!.url(`/ws/brocker/?tags=${tags}`), { protocols: ['Token', 'viewer-secret'] });
    clients.push(other);
    expect(other.ws.protocol).toBe('Token');
    await subscriptions(running!.broker, 4);
    await running!.broker.publish('sensors/k/temp', 21);
    expect(await browser.next()).toEqual({ tag: 'sensors/k/temp', message: 21 });
    expect(await other.next()).toEqual({ tag: 'sensors/k/temp', message: 21 });
  });

  it('prefers the Tag header over ?tags=', async () => {
    await serve();
    const c = await open(running!.url(`/ws/brocker/?tags=${encodeURIComponent('alerts/#')}`), {
      headers: { Authorization: 'Token viewer-secret', Tag: 'devices/room1/status' },
    });
    clients.push(c);
    await subscriptions(running!.broker, 1);
    await running!.broker.publish('alerts/x', 'no');
    await running!.broker.publish('devices/room1/status', 'yes');
    expect(await c.next()).toEqual({ tag: 'devices/room1/status', message: 'yes' });
  });
});

describe('tagged: seed 000 "Disconnection Codes"', () => {
  it('4001 when the Authorization header is missing', async () => {
    await serve();
    const r = await refused(running!.url('/ws/brocker/'), { headers: { Tag: 'alerts/#' } });
    expect(r).toMatchObject({ code: 4001, frames: [] });
  });

  it('4001 when the Tag header is missing or lists nothing', async () => {
    await serve();
    const url = running!.url('/ws/brocker/');
    expect((await refused(url, { headers: { Authorization: 'Token viewer-secret' } })).code).toBe(4001);
    expect((await refused(url, { headers: { Authorization: 'Token viewer-secret', Tag: ' , ' } })).code).toBe(4001);
    await connections(running!.broker, 0);
  });

  it('4003 when the token is invalid', async () => {
    await serve();
    const r = await refused(running!.url('/ws/brocker/'), { headers: { Authorization: 'Token nope', Tag: 'alerts/#' } });
    expect(r.code).toBe(4003);
  });

  it('4003 when the token may not read one of the tags, and nothing is subscribed (all or nothing)', async () => {
    await serve();
    const url = running!.url('/ws/brocker/');
    // viewer reads sensors/+/temp; sensors/# is wider than that grant.
    const r = await refused(url, { headers: { Authorization: 'Token viewer-secret', Tag: 'alerts/#,sensors/#' } });
    expect(r.code).toBe(4003);
    expect(r.reason).toContain('sensors/#');
    expect(r.frames).toEqual([]);
    expect(running!.broker.stats().subscriptions).toBe(0);
    // A tag that is not a valid pattern is refused the same way (no grant could allow it).
    expect((await refused(url, { headers: { Authorization: 'Token sensor-secret', Tag: 'sensors/#/x' } })).code).toBe(4003);
    expect((await refused(url, { headers: { Authorization: 'Token sensor-secret', Tag: 'sensors/%zz' } })).code).toBe(4003);
  });

  it('4004 when the token already has its maximum of connections', async () => {
    await serve();
    await connect('sensor-secret', 'sensors/#');
    await connect('sensor-secret', 'sensors/#');
    const r = await refused(running!.url('/ws/brocker/'), { headers: { Authorization: 'Token sensor-secret', Tag: 'sensors/#' } });
    expect(r.code).toBe(4004);
    // A slot frees up when a connection leaves.
    await clients.shift()!.close();
    await connections(running!.broker, 1);
    await connect('sensor-secret', 'sensors/#');
  });

  it('4002 for every connection of a token revoked while connected; other tokens stay', async () => {
    await serve();
    const a = await connect('sensor-secret', 'sensors/#');
    const b = await connect('sensor-secret', 'alerts/#');
    const viewer = await connect('viewer-secret', 'alerts/#');
    await subscriptions(running!.broker, 3);
    expect(running!.broker.revoke({ tokenId: 'tok-sensor' })).toBe(2);
    expect((await a.closed).code).toBe(4002);
    expect((await b.closed).code).toBe(4002);
    await running!.broker.publish('alerts/still', 'here');
    expect(await viewer.next()).toEqual({ tag: 'alerts/still', message: 'here' });
  });

  it('4003 when a permission a subscription relies on is revoked; unrelated changes keep the connection', async () => {
    await serve();
    const viewer = await connect('viewer-secret', 'sensors/+/temp,alerts/#');
    await subscriptions(running!.broker, 2);
    // Removing a grant no tag relies on changes nothing.
    const withoutDevices = { ...VIEWER, grants: VIEWER.grants!.filter((g) => g.topic !== 'devices/room1/status') };
    expect(await running!.broker.reauthorize('viewer', withoutDevices)).toBe(0);
    await running!.broker.publish('alerts/a', 1);
    expect(await viewer.next()).toEqual({ tag: 'alerts/a', message: 1 });
    // Removing the alerts grant drops alerts/#: seed 000 closes with 4003.
    const withoutAlerts = { ...withoutDevices, grants: withoutDevices.grants.filter((g) => g.topic !== 'alerts/#') };
    expect(await running!.broker.reauthorize('viewer', withoutAlerts)).toBe(1);
    const closed = await viewer.closed;
    expect(closed.code).toBe(4003);
    expect(closed.reason).toContain('alerts/#');
  });
});

describe('tagged: frames that break the rules close the connection', () => {
  it('1008 for a frame that is not {tag, message} JSON', async () => {
    await serve();
    const bad: Array<string | Buffer> = ['not json', '[1,2]', '{"tag":"sensors/a"}', '{"message":1}', '{"tag":7,"message":1}', Buffer.from([1, 2, 3])];
    for (const frame of bad) {
      const c = await connect('sensor-secret', 'sensors/#');
      c.ws.send(frame);
      expect((await c.closed).code, String(frame)).toBe(1008);
    }
  });

  it('4003 for a publish without readwrite, or to a wildcard tag', async () => {
    await serve();
    const viewer = await connect('viewer-secret', 'alerts/#');
    const sensor = await connect('sensor-secret', 'sensors/#');
    await subscriptions(running!.broker, 2);
    viewer.sendJson({ tag: 'alerts/fire', message: 'read-only token' });
    expect((await viewer.closed).code).toBe(4003);
    sensor.sendJson({ tag: 'sensors/+/temp', message: 'wildcard' });
    expect((await sensor.closed).code).toBe(4003);
  });

  it('publishes to a readwrite tag the connection did not subscribe to', async () => {
    await serve();
    const viewer = await connect('viewer-secret', 'sensors/+/temp');
    const sensor = await connect('sensor-secret', 'alerts/#');
    await subscriptions(running!.broker, 2);
    sensor.sendJson({ tag: 'sensors/hall/temp', message: 19 });
    expect(await viewer.next()).toEqual({ tag: 'sensors/hall/temp', message: 19 });
    expect(sensor.ws.readyState).toBe(WebSocket.OPEN);
  });

  it('honours the endpoint\'s closeCodes remapping', async () => {
    await serve({ closeCodes: { 4003: 4403 } });
    const viewer = await connect('viewer-secret', 'alerts/#');
    await subscriptions(running!.broker, 1);
    viewer.sendJson({ tag: 'alerts/fire', message: 1 });
    expect((await viewer.closed).code).toBe(4403);
  });
});

describe('tagged: options', () => {
  it('reads another header or query name, and refuses conflicting options', async () => {
    await serve({ protocol: tagged({ header: 'X-Topics', query: false }) });
    const c = await open(running!.url('/ws/brocker/?tags=alerts/a'), { headers: { Authorization: 'Token viewer-secret', 'X-Topics': 'alerts/#' } });
    clients.push(c);
    await subscriptions(running!.broker, 1);
    const r = await refused(running!.url('/ws/brocker/?tags=alerts/a'), { headers: { Authorization: 'Token viewer-secret' } });
    expect(r.code).toBe(4001);
    expect(() => tagged({ header: false, query: false })).toThrow(TypeError);
    expect(() => tagged({ header: '' })).toThrow(TypeError);
  });
});
