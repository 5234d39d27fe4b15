/**
 * What the seeds' own clients do, against the examples: seed 004's raw
 * `Sec-WebSocket-Protocol: Token <t>` header, seed 003's events raised by the host over REST,
 * and fixed demo tokens from the environment for scripted clients (seeds 000 and 003).
 */
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { envelope } from 'switchyard';
import { start as startEventApi, type EventApi } from '../examples/event-api/server.js';
import { DEMO_TOKENS, start as startWorkspaces, type RunningExample } from '../examples/workspaces/server.js';
import { tryConnect } from './adapter-helpers.js';
import { Client, start, until, type Running } from './helpers.js';
import { Proc } from './wire-helpers.js';

const TSX = fileURLToPath(new URL('../node_modules/tsx/dist/cli.mjs', import.meta.url));

/** Opens a raw `ws` client with extra headers; resolves with the 101's headers and the client. */
function openRaw(url: string, headers: Record<string, string>): Promise<{ ws: WebSocket; upgradeHeaders: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    let upgradeHeaders: Record<string, unknown> = {};
    ws.once('upgrade', (res) => (upgradeHeaders = res.headers));
    ws.once('open', () => resolve({ ws, upgradeHeaders }));
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
  });
}

describe("seed 004: the raw header 'Sec-WebSocket-Protocol: Token <token>'", () => {
  let app: RunningExample | undefined;
  let running: Running | undefined;
  afterEach(async () => {
    await app?.stop();
    await running?.stop();
    app = running = undefined;
  });

  it('is accepted by the workspaces example, the token never echoed back, and readings flow', async () => {
    app = await startWorkspaces({ port: 0, sim: { intervalMs: 10, seed: 5 } });
    const { ws, upgradeHeaders } = await openRaw(app.url('/ws/workspaces/1/'), { 'Sec-WebSocket-Protocol': `Token ${DEMO_TOKENS.workspace1}` });
    expect(upgradeHeaders['sec-websocket-protocol']).toBeUndefined();
    const frame = new Promise<Record<string, unknown>>((resolve) => ws.on('message', (data) => resolve(JSON.parse(data.toString()))));
    await until(() => app!.broker.stats().subscriptions > 0, 'the connection bound to its workspace');
    await app.broker.publish('workspaces/1/readings', { type: 'reading', sensor_id: 1, value: 21.5, unit: 'C', ts: new Date(0).toISOString() });
    expect(await frame).toMatchObject({ type: 'reading', sensor_id: 1, value: 21.5 });
    ws.close();
    // A wrong token in the same form is the seed's close 4401, not a 400 before routing.
    const wrong = await tryConnect(app.url('/ws/workspaces/1/'), { headers: { 'Sec-WebSocket-Protocol': 'Token nope' } });
    expect(wrong).toEqual({ kind: 'close', code: 4401 });
  });

  it('reaches authenticate as subprotocol credentials, only where the endpoint takes them', async () => {
    const seen: unknown[] = [];
    running = await start({
      endpoints: [
        { path: '/ws', protocol: envelope() },
        { path: '/headers-only', protocol: envelope(), credentials: ['header'] },
      ],
      heartbeat: false,
      authenticate: ({ credentials }) => (seen.push(credentials), credentials?.token === 'abc' ? { id: 'u' } : null),
    });
    const { ws, upgradeHeaders } = await openRaw(running.url('/ws'), { 'Sec-WebSocket-Protocol': 'Bearer abc' });
    expect(upgradeHeaders['sec-websocket-protocol']).toBeUndefined();
    expect(seen).toEqual([{ scheme: 'bearer', token: 'abc', source: 'subprotocol' }]);
    ws.close();
    // An endpoint that takes no subprotocol credentials keeps the RFC's rule: not a protocol name.
    expect(await tryConnect(running.url('/headers-only'), { headers: { 'Sec-WebSocket-Protocol': 'Token abc' } })).toMatchObject({ kind: 'http', status: 400 });
    // Two values with spaces are no seed form: still a 400.
    expect(await tryConnect(running.url('/ws'), { headers: { 'Sec-WebSocket-Protocol': 'Token abc, Token def' } })).toMatchObject({ kind: 'http', status: 400 });
  });
});

describe('seed 003: the event API raises events over REST', () => {
  let api: EventApi | undefined;
  afterEach(async () => {
    await api?.stop();
    api = undefined;
  });

  it('POST /v1/events reaches subscribers as an event frame; it needs a token that may raise events', async () => {
    api = await startEventApi({ port: 0, simulate: false, demoTokens: { ops: 'ops-fixed', viewer: 'viewer-fixed' } });
    const client = new Client(api.url, undefined, { headers: { authorization: 'Bearer viewer-fixed' } });
    await client.opened;
    client.sendJson({ type: 'subscribe', topics: ['alerts'], filters: { severity: ['critical'] } });
    await client.nextOf('subscription_confirmed');
    const post = (body: unknown, token?: string) =>
      fetch(`http://127.0.0.1:${api!.port}/v1/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(token !== undefined && { authorization: `Bearer ${token}` }) },
        body: JSON.stringify(body),
      });
    const low = await post({ topic: 'alerts', type: 'alert_created', data: { id: 'a1', severity: 'low' } }, 'ops-fixed');
    expect(low.status).toBe(202);
    expect(await low.json()).toMatchObject({ recipients: 0 }); // filtered out on the server
    const critical = await post({ topic: 'alerts', type: 'alert_created', data: { id: 'a2', severity: 'critical' } }, 'ops-fixed');
    expect(await critical.json()).toMatchObject({ recipients: 1, message_id: expect.any(String) });
    const event = await client.nextOf('event');
    expect(event).toMatchObject({ topic: 'alerts', data: { type: 'alert_created', data: { id: 'a2', severity: 'critical' } } });
    expect((await post({ topic: 'alerts', type: 't', data: {} })).status).toBe(401);
    expect((await post({ topic: 'alerts', type: 't', data: {} }, 'viewer-fixed')).status).toBe(403);
    expect((await post({ topic: 'nope', type: 't', data: {} }, 'ops-fixed')).status).toBe(400);
    await client.close();
  });
});

describe('fixed demo tokens from the environment (DEMO_TOKENS)', () => {
  it('tag-broker: tok_<name>.<secret> works from the first start', async () => {
    const cli = new Proc(process.execPath, [TSX, 'examples/tag-broker/server.ts'], { PORT: '0', DEMO_TOKENS: 'sensor=s3cret,alarm=a1' });
    try {
      const url = (await cli.next(/^tag broker on /)).slice('tag broker on '.length);
      expect(await cli.next(/demo token sensor/)).toMatch(/tok_sensor\.s3cret$/);
      // Two connections of the fixed sensor token: one publishes, the other receives (seed 000 frames).
      const headers = { Authorization: 'Token tok_sensor.s3cret', Tag: 'sensors/#' };
      const [a, b] = await Promise.all([openRaw(url, headers), openRaw(url, headers)]);
      const got = new Promise<unknown>((resolve) => b.ws.once('message', (data) => resolve(JSON.parse(data.toString()))));
      a.ws.send(JSON.stringify({ tag: 'sensors/room1/temperature', message: 21 }));
      expect(await got).toEqual({ tag: 'sensors/room1/temperature', message: 21 });
      a.ws.close();
      b.ws.close();
    } finally {
      expect(await cli.stop()).toEqual({ code: 0, signal: null });
    }
  });

  it('event-api: the given bearer tokens are the demo tokens', async () => {
    const cli = new Proc(process.execPath, [TSX, 'examples/event-api/server.ts'], { PORT: '0', DEMO_TOKENS: 'ops=ops-cli,viewer=viewer-cli', INTERVAL_MS: '60000' });
    try {
      const url = (await cli.next(/^event API on /)).slice('event API on '.length);
      expect(await cli.next(/token viewer/)).toMatch(/viewer-cli$/);
      const client = new Client(url, undefined, { headers: { authorization: 'Bearer ops-cli' } });
      await client.opened;
      await client.close();
    } finally {
      expect(await cli.stop()).toEqual({ code: 0, signal: null });
    }
  });
});
