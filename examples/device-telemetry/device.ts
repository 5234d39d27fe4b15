/**
 * A Node device simulator for seed 002: `npx tsx examples/device-telemetry/device.ts`
 * (DEVICE_ID, API_TOKEN, SERVER_URL from the environment; demo values otherwise).
 *
 * It does what the seed's Pi script does: connect with `Authorization: Bearer <token>`, send
 * JSON telemetry at 1 Hz, listen for commands, and reconnect forever when the network drops
 * ("Infinite Reconnect Loop"), here with capped, fully jittered exponential backoff so a fleet
 * does not reconnect in lockstep after an outage. A 401/403 ends the loop: retrying with the
 * same token cannot help. A 409 (the server still holds this device's previous connection,
 * e.g. after a WiFi drop it has not noticed yet) is retried.
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';

export interface DeviceOptions {
  /** Server base URL, `ws://127.0.0.1:8080`. */
  url: string;
  deviceId: string;
  token: string;
  /** Telemetry period in ms. Default 1,000 (seed 002: 1 Hz). */
  intervalMs?: number;
  /** Reconnect delay: full jitter over `initialMs · 2^attempt`, capped at `maxMs`. Default 500 → 5,000 ms. */
  backoff?: { initialMs?: number; maxMs?: number };
  /** The server pings every 30 s; with no ping or message for this long the link is presumed dead. Default 75,000 ms. */
  deadAfterMs?: number;
  /** Stops the loop (closes with 1000). */
  signal?: AbortSignal;
  /** Connection attempts before giving up, to bound a run. Default unlimited. */
  maxAttempts?: number;
  log?: (line: string) => void;
  onCommand?: (command: unknown) => void;
}

export interface DeviceRun {
  /** Why the loop ended. */
  reason: 'aborted' | 'refused' | 'attempts';
  /** HTTP status of a refused handshake. */
  status?: number;
  /** Connections that opened. */
  connections: number;
  /** Telemetry frames sent. */
  sent: number;
}

interface Attempt {
  opened: boolean;
  status?: number;
  code?: number;
}

export async function runDevice(options: DeviceOptions): Promise<DeviceRun> {
  const intervalMs = options.intervalMs ?? 1000;
  const initialMs = options.backoff?.initialMs ?? 500;
  const maxMs = options.backoff?.maxMs ?? 5000;
  const deadAfterMs = options.deadAfterMs ?? 75_000;
  const maxAttempts = options.maxAttempts ?? Infinity;
  const log = options.log ?? (() => {});
  const signal = options.signal;
  const uri = `${options.url.replace(/\/$/, '')}/ws/device/${encodeURIComponent(options.deviceId)}`;
  const run: DeviceRun = { reason: 'aborted', connections: 0, sent: 0 };
  const reading = { voltage: 53.2, soc: 85 };
  let lastCommand: string | undefined;
  let failures = 0;

  const telemetry = () => {
    reading.voltage = round(clamp(reading.voltage + (Math.random() - 0.5) * 0.4, 48, 56));
    reading.soc = clamp(reading.soc + (Math.random() < 0.5 ? -1 : 1), 0, 100);
    return {
      device_id: options.deviceId,
      timestamp: new Date().toISOString(),
      battery: { ...reading },
      ...(lastCommand !== undefined && { last_command: lastCommand }),
    };
  };

  /** One connection, from the handshake to its close. */
  const attempt = () =>
    new Promise<Attempt>((done) => {
      log(`🔌 Connecting to ${uri}...`);
      const ws = new WebSocket(uri, { headers: { authorization: `Bearer ${options.token}` }, handshakeTimeout: 10_000 });
      let opened = false;
      let ticker: NodeJS.Timeout | undefined;
      let watchdog: NodeJS.Timeout | undefined;
      let status: number | undefined;
      const alive = () => {
        clearTimeout(watchdog);
        watchdog = setTimeout(() => ws.terminate(), deadAfterMs);
      };
      const onAbort = () => ws.close(1000, 'device stopping');
      signal?.addEventListener('abort', onAbort, { once: true });
      ws.on('unexpected-response', (_req, res) => {
        status = res.statusCode;
        res.resume();
        ws.terminate();
      });
      ws.on('error', (err) => log(`⚠️ ${err.message}`));
      ws.on('open', () => {
        opened = true;
        run.connections++;
        log('✅ Connected!');
        alive();
        const send = () => {
          ws.send(JSON.stringify(telemetry()));
          run.sent++;
        };
        send();
        ticker = setInterval(send, intervalMs);
      });
      ws.on('ping', alive);
      ws.on('message', (data, isBinary) => {
        alive();
        if (isBinary) return;
        let command: unknown;
        try {
          command = JSON.parse(data.toString());
        } catch {
          return;
        }
        log(`📥 Received Command: ${data.toString()}`);
        const id = (command as { id?: unknown } | null)?.id;
        if (typeof id === 'string') lastCommand = id;
        options.onCommand?.(command);
      });
      ws.on('close', (code) => {
        clearInterval(ticker);
        clearTimeout(watchdog);
        signal?.removeEventListener('abort', onAbort);
        done({ opened, code, ...(status !== undefined && { status }) });
      });
    });

  for (let attempts = 0; !signal?.aborted; ) {
    if (attempts++ >= maxAttempts) {
      run.reason = 'attempts';
      return run;
    }
    const result = await attempt();
    if (signal?.aborted) break;
    if (result.status === 401 || result.status === 403) {
      log('⛔ Authentication Failed! Check your API Token.');
      return { ...run, reason: 'refused', status: result.status };
    }
    failures = result.opened ? 0 : failures + 1;
    const delay = Math.random() * Math.min(maxMs, initialMs * 2 ** failures);
    log(`⚠️ Connection Lost (${result.status ?? result.code}). Retrying in ${Math.round(delay)} ms...`);
    await sleep(delay, signal);
  }
  return run;
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((done) => {
    const timer = setTimeout(finish, ms);
    function finish() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', finish);
      done();
    }
    signal?.addEventListener('abort', finish, { once: true });
  });
}

const clamp = (n: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, n));
const round = (n: number) => Math.round(n * 10) / 10;

// `npx tsx examples/device-telemetry/device.ts`
if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const controller = new AbortController();
  process.once('SIGINT', () => controller.abort());
  process.once('SIGTERM', () => controller.abort());
  const run = await runDevice({
    url: process.env.SERVER_URL ?? 'ws://127.0.0.1:8080',
    deviceId: process.env.DEVICE_ID ?? 'ems_001',
    token: process.env.API_TOKEN ?? 'sk_live_83928',
    signal: controller.signal,
    log: (line) => console.log(line),
  });
  console.log(`stopped: ${run.reason}${run.status === undefined ? '' : ` (HTTP ${run.status})`}, ${run.sent} telemetry frames sent`);
  process.exitCode = run.reason === 'refused' ? 1 : 0;
}
