import { afterEach, describe, expect, it } from 'vitest';
import { BrokerError, stream, type Authorize, type BrokerOptions, type Protocol, type StreamOptions } from 'switchyard';
import { Client, start, until, type Running } from './helpers.js';

let running: Running | undefined;
const clients: Client[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await running?.stop();
  running = undefined;
});

/** Tokens: `device:<id>` (publishes its telemetry, reads its commands) or `viewer:<name>`. */
const authenticate: BrokerOptions['authenticate'] = ({ credentials, params }) => {
  if (credentials === undefined) return null;
  const [kind, name] = credentials.token.split(':');
  if (kind === 'device' && name === params.deviceId) {
    return {
      id: `device:${name}`,
      grants: [
        { topic: `devices/${name}/telemetry`, access: 'readwrite' },
        { topic: `devices/${name}/commands`, access: 'read' },
      ],
    };
  }
  if (kind === 'viewer' && name) return { id: `viewer:${name}`, grants: [{ topic: 'devices/#', access: 'read' }] };
  return null;
};

const deviceBind: StreamOptions['bind'] = ({ deviceId }, principal) =>
  principal.id.startsWith('device:')
    ? { subscribe: [`devices/${deviceId}/commands`], publish: `devices/${deviceId}/telemetry` }
    : { subscribe: [`devices/${deviceId}/telemetry`] };

async function open(path: string, token?: string): Promise<Client> {
  const client = new Client(running!.url(path), undefined, token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } });
  clients.push(client);
  await client.opened;
  return client;
}

/** Waits until the broker holds `n` subscriptions (a stream connection binds after its 101). */
const subscribed = (n: number) => until(() => running!.broker.stats().subscriptions === n, `${n} subscriptions`);

function serve(protocol: Protocol, extra: Partial<BrokerOptions> = {}, endpoint: Record<string, unknown> = {}) {
  return start({ endpoints: [{ path: '/ws/device/:deviceId', protocol, ...endpoint }], authenticate, ...extra });
}

describe('stream protocol', () => {
  it('publishes inbound JSON to the bound topic and delivers the bare payload', async () => {
    running = await serve(stream({ bind: deviceBind }));
    const dashboard = await open('/ws/device/ems_001', 'viewer:ana');
    const other = await open('/ws/device/ems_002', 'viewer:bo');
    const device = await open('/ws/device/ems_001', 'device:ems_001');
    await subscribed(3);
    const telemetry = { device_id: 'ems_001', battery: { voltage: 53.2, soc: 85 } };
    device.sendJson(telemetry);
    expect(await dashboard.next()).toEqual(telemetry);
    // Commands: server → device on the device's command topic, nothing reaches the dashboards.
    const result = await running.broker.publish('devices/ems_001/commands', { command: 'reboot' });
    expect(result.recipients).toBe(1);
    expect(await device.next()).toEqual({ command: 'reboot' });
    await running.broker.publish('devices/ems_002/telemetry', { n: 2 });
    expect(await other.next()).toEqual({ n: 2 });
    expect(dashboard.frames).toEqual([telemetry]);
    expect(device.frames).toEqual([{ command: 'reboot' }]); // no echo of its own telemetry
  });

  it('JSON-encodes every payload, strings included, and keeps binary broadcasts binary', async () => {
    running = await serve(stream({ bind: deviceBind }));
    const dashboard = await open('/ws/device/d1', 'viewer:ana');
    await subscribed(1);
    const raw: string[] = [];
    dashboard.ws.on('message', (data, isBinary) => { if (!isBinary) raw.push(data.toString()); });
    for (const payload of ['hello', 42, [1, 2], null, { a: 1 }]) await running.broker.publish('devices/d1/telemetry', payload);
    await running.broker.publish('devices/d1/telemetry', null, { binary: Buffer.from([1, 2, 3]) });
    await until(() => dashboard.binary.length === 1, 'binary frame');
    expect(raw).toEqual(['"hello"', '42', '[1,2]', 'null', '{"a":1}']);
    expect(dashboard.binary[0]).toEqual(Buffer.from([1, 2, 3]));
  });

  it('adds version to object payloads, encodes once per delivery per endpoint and applies transform', async () => {
    let encodes = 0;
    const counted = (p: Protocol): Protocol => ({ ...p, encode: (d) => { encodes++; return p.encode(d); } });
    running = await start({
      endpoints: [
        { path: '/ws/workspaces/:id/', protocol: counted(stream({ bind: ({ id }) => ({ subscribe: [`ws/${id}`] }) })) },
        { path: '/ws/v2/workspaces/:id/', protocol: counted(stream({ bind: ({ id }) => ({ subscribe: [`ws/${id}`] }), version: 2 })) },
        {
          path: '/ws/shout/:id/',
          protocol: stream({
            bind: ({ id }) => ({ subscribe: [`ws/${id}`] }),
            // Drops what is not a reading and rewrites the rest: once per delivery.
            transform: (p) => ((p as { type?: string }).type === 'reading' ? { ...(p as object), loud: true } : undefined),
          }),
        },
      ],
      authenticate: () => ({ id: 'anyone', grants: [{ topic: '#', access: 'read' }] }),
    });
    const v1 = [await open('/ws/workspaces/1/'), await open('/ws/workspaces/1/')];
    const v2 = [await open('/ws/v2/workspaces/1/'), await open('/ws/v2/workspaces/1/'), await open('/ws/v2/workspaces/1/')];
    const shout = await open('/ws/shout/1/');
    await subscribed(6);
    const reading = { type: 'reading', sensor_id: 1, value: 61.5, unit: '°C', ts: '2025-07-31T15:47:51Z' };
    await running.broker.publish('ws/1', { type: 'info', message: 'simulator_started' });
    await running.broker.publish('ws/1', reading);
    await running.broker.publish('ws/1', ['not', 'an', 'object']);
    for (const c of v1) {
      expect(await c.next()).toEqual({ type: 'info', message: 'simulator_started' });
      expect(await c.next()).toEqual(reading);
      expect(await c.next()).toEqual(['not', 'an', 'object']);
    }
    for (const c of v2) {
      expect(await c.next()).toEqual({ type: 'info', message: 'simulator_started', version: 2 });
      expect(await c.next()).toEqual({ ...reading, version: 2 });
      expect(await c.next()).toEqual(['not', 'an', 'object']);
    }
    expect(await shout.next()).toEqual({ ...reading, loud: true });
    expect(encodes).toBe(6); // 3 publishes × 2 counted endpoints, whatever the number of subscribers
  });

  it('waits for an async bind before publishing the first frames', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    running = await serve(stream({ bind: async (params, principal, conn) => { if (principal.id.startsWith('device:')) await gate; return deviceBind(params, principal, conn); } }));
    const dashboard = await open('/ws/device/d1', 'viewer:ana');
    await subscribed(1);
    const device = await open('/ws/device/d1', 'device:d1');
    device.sendJson({ seq: 1 });
    device.sendJson({ seq: 2 });
    release();
    expect(await dashboard.next()).toEqual({ seq: 1 });
    expect(await dashboard.next()).toEqual({ seq: 2 });
  });

  it('ignores valid frames a connection may not publish, and stays open', async () => {
    const refused: string[] = [];
    const authorize: Authorize = (principal, action, topic) => {
      if (action === 'subscribe') return true;
      if (principal.id === 'device:muted') refused.push(topic);
      return principal.id !== 'device:muted';
    };
    running = await serve(stream({ bind: deviceBind }), {}, { authorize });
    const dashboard = await open('/ws/device/muted', 'viewer:ana');
    const muted = await open('/ws/device/muted', 'device:muted');
    await subscribed(2);
    dashboard.sendJson({ type: 'ping' }); // no publish topic bound for a viewer
    muted.sendJson({ n: 1 }); // bound, but authorize refuses the publish
    await until(() => refused.length === 1, 'the refused publish');
    await running.broker.publish('devices/muted/telemetry', { from: 'server' });
    expect(await dashboard.next()).toEqual({ from: 'server' });
    expect(dashboard.frames).toEqual([{ from: 'server' }]);
    await running.broker.publish('devices/muted/commands', { still: 'open' });
    expect(await muted.next()).toEqual({ still: 'open' });
    expect(running.broker.stats().connections).toBe(2);
  });

  it('closes with 1008 after maxInvalidFrames frames in a row that are not JSON text', async () => {
    running = await serve(stream({ bind: deviceBind, maxInvalidFrames: 3 }));
    const dashboard = await open('/ws/device/d1', 'viewer:ana');
    const device = await open('/ws/device/d1', 'device:d1');
    await subscribed(2);
    device.ws.send('not json');
    device.ws.send(Buffer.from([1, 2]));
    device.sendJson({ ok: true }); // a valid frame resets the count
    expect(await dashboard.next()).toEqual({ ok: true });
    device.ws.send('{broken');
    device.ws.send('still broken');
    device.ws.send(Buffer.from([3]));
    expect(await device.closed).toEqual({ code: 1008, reason: 'frames must be JSON text' });
    expect(dashboard.frames).toEqual([{ ok: true }]);
  });

  it('closes with 1008 when bind returns null or produces an invalid topic', async () => {
    running = await serve(stream({ bind: ({ deviceId }) => (deviceId === 'none' ? null : { subscribe: [`devices/${deviceId}/#/x`] }) }));
    const none = await open('/ws/device/none', 'viewer:ana');
    expect(await none.closed).toEqual({ code: 1008, reason: 'no stream for this path' });
    const bad = await open('/ws/device/d1', 'viewer:ana');
    expect((await bad.closed).code).toBe(1008);
  });

  it('closes with 4003 (remappable) when the principal loses a bound subscription', async () => {
    running = await serve(stream({ bind: deviceBind }), {}, { closeCodes: { 4003: 4401 } });
    const viewer = await open('/ws/device/d2', 'viewer:ana');
    const device = await open('/ws/device/d2', 'device:d2');
    await subscribed(2);
    await running.broker.reauthorize('viewer:ana', { id: 'viewer:ana', grants: [] });
    expect(await viewer.closed).toEqual({ code: 4401, reason: 'permission revoked for devices/d2/telemetry' });
    await until(() => running!.broker.stats().connections === 1, 'the viewer gone');
    device.sendJson({ after: 'revoke' }); // the device is unaffected
    await running.broker.publish('devices/d2/commands', { ok: 1 });
    expect(await device.next()).toEqual({ ok: 1 });
  });

  it('closes with 4003 when bind asks for a topic the principal may not read', async () => {
    running = await serve(stream({ bind: ({ deviceId }) => ({ subscribe: [`devices/${deviceId}/telemetry`, 'secrets/#'] }) }));
    const viewer = await open('/ws/device/d1', 'viewer:ana');
    expect((await viewer.closed).code).toBe(4003);
    expect(running.broker.stats().subscriptions).toBe(0);
  });

  it('closes with the close code of a BrokerError bind throws, after what bind sent', async () => {
    running = await serve(stream({
      bind: (_params, _principal, conn) => {
        conn.send({ type: 'error', message: 'workspace_not_found' });
        throw new BrokerError('SY_ERR_POLICY', 'workspace_not_found');
      },
    }));
    const viewer = await open('/ws/device/d1', 'viewer:ana');
    expect(await viewer.closed).toEqual({ code: 1008, reason: 'workspace_not_found' });
    expect(viewer.frames).toEqual([{ type: 'error', message: 'workspace_not_found' }]);
  });

  it('closes with 1011 when bind throws, and the host hears of it', async () => {
    running = await serve(stream({ bind: () => { throw new Error('database down'); } }));
    const errors: Error[] = [];
    running.broker.on('error', (e) => errors.push(e));
    const viewer = await open('/ws/device/d1', 'viewer:ana');
    expect((await viewer.closed).code).toBe(1011);
    expect(errors.map((e) => e.message)).toEqual(['database down']);
  });

  it('delivers direct messages as the bare payload', async () => {
    running = await serve(stream({ bind: deviceBind }));
    const device = await open('/ws/device/d1', 'device:d1');
    await subscribed(1);
    const result = await running.broker.sendTo('device:d1', { command: 'blink' });
    expect(result.deliveredTo).toHaveLength(1);
    expect(await device.next()).toEqual({ command: 'blink' });
  });

  it('rejects bad options at once', () => {
    expect(() => stream({} as StreamOptions)).toThrow(TypeError);
    expect(() => stream({ bind: deviceBind, version: 0 })).toThrow(/version/);
    expect(() => stream({ bind: deviceBind, version: 1.5 })).toThrow(/version/);
    expect(() => stream({ bind: deviceBind, maxInvalidFrames: 0 })).toThrow(/maxInvalidFrames/);
    expect(() => stream({ bind: deviceBind, transform: 'x' as never })).toThrow(/transform/);
  });
});
