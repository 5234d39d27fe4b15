/**
 * A client that follows seed 004's "Client Behavior (Recommended)":
 * `npx tsx examples/workspaces/client.ts` (SERVER_URL, WORKSPACE_ID, TOKEN, V2=1 from the environment).
 *
 * - reconnects with exponential backoff, 500 ms → 1 s → 2 s → … capped at 5 s, as the seed says;
 * - degrades gracefully: while the socket has been down for more than `degradeAfterMs`, it polls
 *   `/api/workspaces/{id}/latest-readings/` and reports readings it has not seen yet;
 * - ignores unknown `type`s (handing them to `onOther`, for logs);
 * - stops for good on 4401 (the token is wrong or expired: retrying cannot help), on
 *   `workspace_not_found` and on a 404 path.
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import type { Reading, WorkspaceEvent } from './simulator.js';

export type WorkspaceMessage = (Reading | WorkspaceEvent) & { version?: number };

export interface WatchOptions {
  /** Server base URL, `ws://127.0.0.1:8000` (the REST fallback uses the same host over http). */
  url: string;
  workspaceId: string | number;
  token?: string;
  /** How the token is sent: `?token=` or the `['Token', t]` subprotocol pair. Default 'subprotocol'. */
  tokenIn?: 'query' | 'subprotocol';
  /** Use `/ws/v2/…` (messages carry `version: 2`). Default false. */
  v2?: boolean;
  onMessage: (message: WorkspaceMessage, source: 'ws' | 'poll') => void;
  /** Messages of other types (`info`, `error`, …), which the seed says to ignore and may log. */
  onOther?: (message: unknown) => void;
  onState?: (state: 'connecting' | 'open' | 'waiting' | 'polling', detail?: { delayMs?: number; code?: number }) => void;
  /** Reconnect delays: `initialMs · 2^n` capped at `maxMs`. Default 500 → 5,000 ms. */
  backoff?: { initialMs?: number; maxMs?: number };
  /** Poll the REST fallback once the socket has been down this long. Default 10,000 ms. */
  degradeAfterMs?: number;
  /** Poll period while degraded. Default 2,000 ms. */
  pollMs?: number;
  signal?: AbortSignal;
}

export interface WatchEnd {
  reason: 'aborted' | 'unauthorized' | 'not_found';
  /** Connections that opened. */
  connections: number;
}

export async function watchWorkspace(options: WatchOptions): Promise<WatchEnd> {
  const initialMs = options.backoff?.initialMs ?? 500;
  const maxMs = options.backoff?.maxMs ?? 5000;
  const degradeAfterMs = options.degradeAfterMs ?? 10_000;
  const pollMs = options.pollMs ?? 2000;
  const { signal, token } = options;
  const base = options.url.replace(/\/$/, '');
  const id = encodeURIComponent(String(options.workspaceId));
  const query = token !== undefined && options.tokenIn === 'query' ? `?token=${encodeURIComponent(token)}` : '';
  const wsUrl = `${base}/ws/${options.v2 ? 'v2/' : ''}workspaces/${id}/${query}`;
  const protocols = token !== undefined && options.tokenIn !== 'query' ? ['Token', token] : undefined;
  const restUrl = `${base.replace(/^ws/, 'http')}/api/workspaces/${id}/latest-readings/`;
  /** The last reading seen per sensor, so polling reports only what is new. */
  const seen = new Map<number, string>();
  const end: WatchEnd = { reason: 'aborted', connections: 0 };
  let downSince = Date.now();
  let poller: NodeJS.Timeout | undefined;
  /** The socket is open: a poll still in flight must not report stale readings after live ones. */
  let live = false;

  const deliver = (message: unknown, source: 'ws' | 'poll') => {
    const type = (message as { type?: unknown } | null)?.type;
    if (type !== 'reading' && type !== 'event') return options.onOther?.(message);
    if (type === 'reading') {
      const r = message as Reading;
      const key = `${r.ts}|${r.value}`;
      if (source === 'poll' && seen.get(r.sensor_id) === key) return;
      seen.set(r.sensor_id, key);
    }
    options.onMessage(message as WorkspaceMessage, source);
  };

  const poll = async () => {
    try {
      const res = await fetch(restUrl, { headers: token === undefined ? {} : { authorization: `Token ${token}` }, signal: AbortSignal.timeout(pollMs) });
      const readings = res.ok ? ((await res.json()) as unknown[]) : [];
      if (!live) for (const reading of readings) deliver(reading, 'poll');
    } catch {
      // the server is down too: try again at the next poll
    }
  };
  const stopPolling = () => {
    clearInterval(poller);
    poller = undefined;
  };

  /** One connection: resolves with how it ended. */
  const connect = () =>
    new Promise<{ opened: boolean; code?: number; reason?: string; status?: number }>((done) => {
      options.onState?.('connecting');
      const ws = new WebSocket(wsUrl, protocols);
      let opened = false;
      let status: number | undefined;
      const onAbort = () => ws.close(1000);
      signal?.addEventListener('abort', onAbort, { once: true });
      ws.on('unexpected-response', (_req, res) => {
        status = res.statusCode;
        res.resume();
        ws.terminate();
      });
      ws.on('error', () => {}); // the close that follows says what happened
      ws.on('open', () => {
        opened = true;
        live = true;
        end.connections++;
        stopPolling();
        options.onState?.('open');
      });
      ws.on('message', (data) => {
        let message: unknown;
        try {
          message = JSON.parse(data.toString());
        } catch {
          return;
        }
        deliver(message, 'ws');
      });
      ws.on('close', (code, reason) => {
        live = false;
        signal?.removeEventListener('abort', onAbort);
        done({ opened, code, reason: reason.toString(), ...(status !== undefined && { status }) });
      });
    });

  try {
    for (let failures = 0; !signal?.aborted; ) {
      const result = await connect();
      if (signal?.aborted) break;
      if (result.code === 4401) return { ...end, reason: 'unauthorized' };
      if (result.status === 404 || result.reason === 'workspace_not_found') return { ...end, reason: 'not_found' };
      if (result.opened) {
        failures = 0;
        downSince = Date.now();
      }
      const delayMs = Math.min(maxMs, initialMs * 2 ** failures++);
      options.onState?.('waiting', { delayMs, ...(result.code !== undefined && { code: result.code }) });
      if (poller === undefined && Date.now() - downSince + delayMs > degradeAfterMs) {
        options.onState?.('polling');
        void poll();
        poller = setInterval(() => void poll(), pollMs);
      }
      await sleep(delayMs, signal);
    }
    return end;
  } finally {
    stopPolling();
  }
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

// `npx tsx examples/workspaces/client.ts`
if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const controller = new AbortController();
  process.once('SIGINT', () => controller.abort());
  const end = await watchWorkspace({
    url: process.env.SERVER_URL ?? 'ws://127.0.0.1:8000',
    workspaceId: process.env.WORKSPACE_ID ?? '1',
    token: process.env.TOKEN ?? 'demo-token-all',
    v2: process.env.V2 === '1',
    signal: controller.signal,
    onMessage: (m, source) => console.log(source === 'poll' ? '(poll)' : '', JSON.stringify(m)),
    onOther: (m) => console.log('(ignored)', JSON.stringify(m)),
    onState: (state, detail) => console.log(`[${state}]${detail ? ` ${JSON.stringify(detail)}` : ''}`),
  });
  console.log(`stopped: ${end.reason}`);
}
