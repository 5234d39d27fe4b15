/**
 * examples/device-telemetry (seed 002) end to end: the real example on port 0, `ws` clients,
 * the example's Node device simulator, and the seed's own Python client.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runDevice } from '../examples/device-telemetry/device.js';
import { DEMO_TOKENS, start, type RunningExample } from '../examples/device-telemetry/server.js';
import { Client, until } from './helpers.js';

const DEVICE = DEMO_TOKENS.devices.ems_001;
const OTHER_DEVICE = DEMO_TOKENS.devices.ems_002;
const DASHBOARD = DEMO_TOKENS.dashboard;

let app: RunningExample;
const clients: Client[] = [];
const children: ChildProcess[] = [];
beforeEach(async () => {
  app = await start({ port: 0 });
});
afterEach(async () => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill();
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await app.stop();
});

interface Extra {
  protocols?: string[];
  headers?: Record<string, string>;
}

function client(path: string, authorization?: string, extra: Extra = {}): Client {
  const headers = { ...extra.headers, ...(authorization !== undefined && { authorization }) };
  const c = new Client(app.url(path), extra.protocols, { headers });
  clients.push(c);
  return c;
}

/** Opens and waits until the connection's topics are bound. */
async function connected(path: string, authorization: string): Promise<Client> {
  const before = app.broker.stats().subscriptions;
  const c = client(path, authorization);
  await c.opened;
  await until(() => app.broker.stats().subscriptions > before, 'the connection bound');
  return c;
}

/** HTTP status of a refused upgrade. */
async function refusal(path: string, authorization?: string, extra?: Extra): Promise<number> {
  const c = client(path, authorization, extra);
  const err = await c.opened.then(() => undefined, (e: { status?: number }) => e);
  return err?.status ?? 101;
}

function command(deviceId: string, body: unknown, authorization?: string, method = 'POST'): Promise<Response> {
  return fetch(`http://127.0.0.1:${app.port}/api/devices/${deviceId}/commands`, {
    method,
    headers: { 'content-type': 'application/json', ...(authorization !== undefined && { authorization }) },
    ...(method === 'POST' && { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
}

describe('examples/device-telemetry: handshake (seed 002 "Authentication Flow")', () => {
  it.each([
    { what: 'no Authorization header', path: '/ws/device/ems_001', authorization: undefined, status: 401 },
    { what: 'a wrong token', path: '/ws/device/ems_001', authorization: 'Bearer sk_live_wrong', status: 403 },
    { what: 'the right token under another scheme', path: '/ws/device/ems_001', authorization: `Token ${DEVICE}`, status: 403 },
    { what: "another device's token", path: '/ws/device/ems_001', authorization: `Bearer ${OTHER_DEVICE}`, status: 403 },
    { what: 'an unknown device id', path: '/ws/device/ems_999', authorization: `Bearer ${DASHBOARD}`, status: 403 },
    { what: 'a device id with an encoded separator', path: '/ws/device/ems_001%2Ftelemetry', authorization: `Bearer ${DASHBOARD}`, status: 403 },
    { what: 'the token in the URL (Rule 1: never in the URL)', path: `/ws/device/ems_001?token=${DEVICE}`, authorization: undefined, status: 401 },
    { what: 'a path the broker does not serve', path: '/ws/devices/ems_001', authorization: `Bearer ${DEVICE}`, status: 404 },
    { what: 'the device with its own token', path: '/ws/device/ems_001', authorization: `Bearer ${DEVICE}`, status: 101 },
    { what: 'a dashboard', path: '/ws/device/ems_002', authorization: `Bearer ${DASHBOARD}`, status: 101 },
  ])('$what → $status', async ({ path, authorization, status }) => {
    expect(await refusal(path, authorization)).toBe(status);
  });

  // The seed's dashboard hook is `new WebSocket(url)`: a browser sends its cookies and Origin,
  // never an Authorization header. `['Bearer', t]` is the other way a browser can carry a token.
  const cookie = `theme=dark; dashboard_token=${DASHBOARD}`;
  const self = () => `http://127.0.0.1:${app.port}`;
  it.each([
    { what: 'a dashboard cookie from the same origin', extra: () => ({ headers: { cookie, origin: self() } }), status: 101 },
    { what: 'a dashboard cookie from another origin', extra: () => ({ headers: { cookie, origin: 'https://evil.example' } }), status: 401 },
    { what: 'a dashboard cookie with no Origin', extra: () => ({ headers: { cookie } }), status: 401 },
    { what: 'a wrong dashboard cookie', extra: () => ({ headers: { cookie: 'dashboard_token=nope', origin: self() } }), status: 401 },
    { what: 'a dashboard token as a Bearer subprotocol', extra: () => ({ protocols: ['Bearer', DASHBOARD] }), status: 101 },
    { what: "a device's token as a subprotocol (devices use the header)", extra: () => ({ protocols: ['Bearer', DEVICE] }), status: 403 },
  ])('browser dashboards: $what → $status', async ({ extra, status }) => {
    expect(await refusal('/ws/device/ems_001', undefined, extra())).toBe(status);
  });

  it('lets a cookie dashboard from an allowed origin watch a device', async () => {
    await app.stop();
    app = await start({ port: 0, origins: ['https://dashboard.example'] });
    const dashboard = client('/ws/device/ems_001', undefined, { headers: { cookie, origin: 'https://dashboard.example' } });
    await dashboard.opened;
    await until(() => app.broker.stats().subscriptions === 1, 'the dashboard bound');
    const device = await connected('/ws/device/ems_001', `Bearer ${DEVICE}`);
    device.sendJson({ device_id: 'ems_001' });
    expect(await dashboard.next()).toEqual({ device_id: 'ems_001' });
    const viaProtocol = client('/ws/device/ems_001', undefined, { protocols: ['Bearer', DASHBOARD] });
    await viaProtocol.opened;
    expect(viaProtocol.ws.protocol).toBe('Bearer'); // never the token itself
  });

  it('refuses a second connection of the same device with 409, not a second dashboard', async () => {
    const first = await connected('/ws/device/ems_001', `Bearer ${DEVICE}`);
    expect(await refusal('/ws/device/ems_001', `Bearer ${DEVICE}`)).toBe(409);
    await connected('/ws/device/ems_001', `Bearer ${DASHBOARD}`);
    await connected('/ws/device/ems_001', `Bearer ${DASHBOARD}`);
    expect(await refusal('/ws/device/ems_002', `Bearer ${OTHER_DEVICE}`)).toBe(101); // other devices are unaffected
    await first.close();
    await until(() => app.broker.connectionsOf('device:ems_001') === 0, 'the first connection gone');
    await connected('/ws/device/ems_001', `Bearer ${DEVICE}`);
  });
});

describe('examples/device-telemetry: streams', () => {
  it('delivers a device’s telemetry to the dashboards on its path, as sent', async () => {
    const dashboard = await connected('/ws/device/ems_001', `Bearer ${DASHBOARD}`);
    const elsewhere = await connected('/ws/device/ems_002', `Bearer ${DASHBOARD}`);
    const device = await connected('/ws/device/ems_001', `Bearer ${DEVICE}`);
    const telemetry = { device_id: 'ems_001', timestamp: '2026-02-03T12:00:00Z', battery: { voltage: 53.2, soc: 85 } };
    dashboard.sendJson({ type: 'ping' }); // dashboards publish nothing; ignored
    device.sendJson(telemetry);
    expect(await dashboard.next()).toEqual(telemetry);
    const other = await connected('/ws/device/ems_002', `Bearer ${OTHER_DEVICE}`);
    other.sendJson({ device_id: 'ems_002' });
    expect(await elsewhere.next()).toEqual({ device_id: 'ems_002' });
    // Round trips on the same connections: nothing else was on its way to them.
    await Promise.all([elsewhere.roundTrip(), device.roundTrip(), dashboard.roundTrip()]);
    expect(elsewhere.frames).toEqual([{ device_id: 'ems_002' }]);
    expect(device.frames).toEqual([]);
    expect(dashboard.frames).toEqual([telemetry]);
  });

  it('sends commands from POST /api/devices/:id/commands to the device only', async () => {
    const device = await connected('/ws/device/ems_001', `Bearer ${DEVICE}`);
    const dashboard = await connected('/ws/device/ems_001', `Bearer ${DASHBOARD}`);
    const res = await command('ems_001', { command: 'set_charge_limit', soc: 90 }, `Bearer ${DASHBOARD}`);
    expect(res.status).toBe(202);
    const body = (await res.json()) as { id: string; delivered: boolean };
    expect(body.delivered).toBe(true);
    const received = await device.next();
    expect(received).toEqual({ id: body.id, issued_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/), command: 'set_charge_limit', soc: 90 });
    await dashboard.roundTrip(); // on the same connection: no copy of the command was on its way
    expect(dashboard.frames).toEqual([]);
  });

  it.each([
    { what: 'no token', id: 'ems_001', body: { command: 'x' }, authorization: undefined, method: 'POST', status: 401 },
    { what: "a device's token", id: 'ems_001', body: { command: 'x' }, authorization: `Bearer ${DEVICE}`, method: 'POST', status: 403 },
    { what: 'an unknown device', id: 'ems_999', body: { command: 'x' }, authorization: `Bearer ${DASHBOARD}`, method: 'POST', status: 404 },
    { what: 'a body that is not a JSON object', id: 'ems_001', body: '[1]', authorization: `Bearer ${DASHBOARD}`, method: 'POST', status: 400 },
    { what: 'an offline device', id: 'ems_001', body: { command: 'x' }, authorization: `Bearer ${DASHBOARD}`, method: 'POST', status: 409 },
    { what: 'GET', id: 'ems_001', body: undefined, authorization: `Bearer ${DASHBOARD}`, method: 'GET', status: 405 },
  ])('answers a command with $what → $status', async ({ id, body, authorization, method, status }) => {
    expect((await command(id, body, authorization, method)).status).toBe(status);
  });

  it('answers 404 to other routes', async () => {
    expect((await fetch(`http://127.0.0.1:${app.port}/api/other`)).status).toBe(404);
  });
});

describe('examples/device-telemetry: the Node device simulator', () => {
  it('streams telemetry, applies commands and reconnects after the server drops it', async () => {
    const dashboard = await connected('/ws/device/ems_001', `Bearer ${DASHBOARD}`);
    const controller = new AbortController();
    const commands: unknown[] = [];
    const run = runDevice({
      url: app.url(''),
      deviceId: 'ems_001',
      token: DEVICE,
      intervalMs: 20,
      backoff: { initialMs: 5, maxMs: 20 },
      signal: controller.signal,
      onCommand: (c) => commands.push(c),
    });
    const first = await dashboard.next();
    expect(first).toMatchObject({ device_id: 'ems_001', battery: { voltage: expect.any(Number), soc: expect.any(Number) } });
    expect(new Date(first.timestamp as string).toISOString()).toBe(first.timestamp);

    const res = await command('ems_001', { command: 'reboot' }, `Bearer ${DASHBOARD}`);
    const { id } = (await res.json()) as { id: string };
    // The device reports the command it applied in its next telemetry: server → device → dashboard.
    await dashboard.next((f) => f.last_command === id, 'telemetry after the command');
    expect(commands).toEqual([expect.objectContaining({ id, command: 'reboot' })]);

    // The server drops the device (token revoked: 4002); the simulator comes back on its own.
    expect(app.broker.revoke({ principal: 'device:ems_001' })).toBe(1);
    await until(() => app.broker.connectionsOf('device:ems_001') === 0, 'the device dropped');
    const seen = dashboard.frames.length;
    await until(() => dashboard.frames.length > seen + 2, 'telemetry after the reconnect');
    controller.abort();
    const result = await run;
    expect(result.reason).toBe('aborted');
    expect(result.connections).toBe(2);
  });

  it('stops at a 403 instead of retrying a wrong token forever', async () => {
    const lines: string[] = [];
    const result = await runDevice({ url: app.url(''), deviceId: 'ems_001', token: 'sk_live_wrong', log: (l) => lines.push(l) });
    expect(result).toMatchObject({ reason: 'refused', status: 403, connections: 0 });
    expect(lines).toContain('⛔ Authentication Failed! Check your API Token.');
  });

  it('retries a 409 with backoff until the old connection is gone', async () => {
    const stale = await connected('/ws/device/ems_001', `Bearer ${DEVICE}`);
    const controller = new AbortController();
    const statuses: string[] = [];
    const run = runDevice({
      url: app.url(''), deviceId: 'ems_001', token: DEVICE, intervalMs: 20,
      backoff: { initialMs: 5, maxMs: 20 }, signal: controller.signal,
      log: (l) => { if (l.includes('(409)')) statuses.push(l); },
    });
    await until(() => statuses.length >= 2, 'two refused attempts');
    await stale.close();
    const dashboard = await connected('/ws/device/ems_001', `Bearer ${DASHBOARD}`);
    await dashboard.next((f) => f.device_id === 'ems_001', 'telemetry from the simulator');
    controller.abort();
    expect((await run).connections).toBe(1);
  });
});

// ── the seed's own Python client ─────────────────────────────────────────────────────────────

const PYTHON = '/usr/bin/python3';
const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));
const probe = spawnSync(PYTHON, ['-c', 'import websockets; print(websockets.__version__)'], { encoding: 'utf8' });
const pythonReady = probe.status === 0;
const skipPython = !pythonReady && !process.env.CI;
if (skipPython) console.log(`skipping the seed 002 Python client tests: ${PYTHON} cannot import websockets (${(probe.stderr || String(probe.error)).trim().split('\n').pop()})`);

interface Python {
  output: () => string;
  waitFor: (pattern: RegExp) => Promise<void>;
  exited: Promise<number | null>;
}

function python(mode: 'secure' | 'telemetry', token: string, seconds = 15): Python {
  const child = spawn(PYTHON, ['run_pi_client.py', mode], {
    cwd: FIXTURES,
    env: {
      PATH: process.env.PATH,
      SERVER_URL: app.url(''),
      DEVICE_ID: 'ems_001',
      API_TOKEN: token,
      PI_RUN_SECONDS: String(seconds),
      PYTHONUNBUFFERED: '1',
      PYTHONDONTWRITEBYTECODE: '1', // no __pycache__ in test/fixtures
      PYTHONIOENCODING: 'utf-8',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let out = '';
  const waiters: Array<() => void> = [];
  const onData = (chunk: Buffer) => {
    out += chunk.toString('utf8');
    for (const w of [...waiters]) w();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => { for (const w of [...waiters]) w(); resolve(code); }));
  return {
    output: () => out,
    exited,
    waitFor: (pattern) =>
      new Promise((resolve, reject) => {
        const check = () => {
          if (pattern.test(out)) {
            waiters.splice(waiters.indexOf(check), 1);
            clearTimeout(timer);
            resolve();
          } else if (child.exitCode !== null) {
            waiters.splice(waiters.indexOf(check), 1);
            clearTimeout(timer);
            reject(new Error(`python exited (${child.exitCode}) before ${pattern}: ${out}`));
          }
        };
        const timer = setTimeout(() => reject(new Error(`timed out waiting for ${pattern}: ${out}`)), 15_000);
        waiters.push(check);
        check();
      }),
  };
}

describe.skipIf(skipPython)('examples/device-telemetry: the seed 002 Python client, unmodified but for its URI', () => {
  it('secure_connect prints the seed’s message for a bad token (HTTP 403)', async () => {
    const py = python('secure', 'sk_live_wrong');
    expect(await py.exited).toBe(0);
    expect(py.output()).toContain('Authentication Failed! Check your API Token.');
    expect(py.output()).not.toContain('Authenticated & Connected');
  });

  it('secure_connect connects with the right token, and is refused (409) while the device is connected', async () => {
    const ok = python('secure', DEVICE);
    expect(await ok.exited).toBe(0);
    expect(ok.output()).toContain('Authenticated & Connected as ems_001');
    await connected('/ws/device/ems_001', `Bearer ${DEVICE}`);
    const busy = python('secure', DEVICE);
    expect(await busy.exited).toBe(0);
    expect(busy.output()).toMatch(/Connection Error: .*409/);
  });

  it('send_telemetry streams to a dashboard and receives a command', async () => {
    const dashboard = await connected('/ws/device/ems_001', `Bearer ${DASHBOARD}`);
    const py = python('telemetry', DEVICE);
    const telemetry = await dashboard.next();
    expect(telemetry).toEqual({ device_id: 'ems_001', timestamp: '2026-02-03T12:00:00Z', battery: { voltage: 53.2, soc: 85 } });
    await py.waitFor(/Sent Telemetry/);
    const res = await command('ems_001', { command: 'reboot' }, `Bearer ${DASHBOARD}`);
    const { id, delivered } = (await res.json()) as { id: string; delivered: boolean };
    expect(delivered).toBe(true);
    await py.waitFor(new RegExp(`Received Command: .*"id":"${id}".*"command":"reboot"`));
    expect(dashboard.frames.length).toBeGreaterThanOrEqual(1);
  });
});
