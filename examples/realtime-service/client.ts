/**
 * A chat client for the realtime service, on switchyard/client: it logs in over HTTP for a token
 * (again on every reconnect and when the service says `token_expiring`, refreshed in band),
 * follows `chat.<room>` with recovery across reconnects, watches everyone's presence, and sends
 * what you type. No reconnect loop, no offset bookkeeping: the client does both.
 *
 *   npx tsx examples/realtime-service/server.ts                 # in one terminal
 *   npx tsx examples/realtime-service/client.ts alice general   # in others (URL=http://127.0.0.1:8081)
 */
import { realpathSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { createClient, type Client } from 'switchyard/client';

export interface ChatOptions {
  /** The service's HTTP base, e.g. `http://127.0.0.1:8081`. */
  httpUrl: string;
  user: string;
  /** Shown in presence metadata. */
  device?: string;
  location?: string;
}

/** Logs in through `POST /api/login` (the demo asks no password) and returns the JWT. */
export async function login(options: ChatOptions): Promise<string> {
  const res = await fetch(`${options.httpUrl}/api/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ user: options.user, device: options.device, location: options.location }),
  });
  if (!res.ok) throw new Error(`login failed: ${res.status}`);
  return ((await res.json()) as { token: string }).token;
}

/** A client for the service (not yet connected): dotted topics, a fresh token on every connect. */
export function chatClient(options: ChatOptions): Client {
  return createClient({
    url: `${options.httpUrl.replace(/^http/, 'ws')}/ws`,
    WebSocket,
    getToken: () => login(options),
    topics: { separator: '.', single: '*', multi: '>' },
  });
}

function isMain(): boolean {
  const entry = process.argv[1];
  try {
    return entry !== undefined && realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) {
  const [user = 'alice', room = 'general'] = process.argv.slice(2);
  const client = chatClient({ httpUrl: process.env.URL ?? 'http://127.0.0.1:8081', user, device: 'cli' });
  client.on('state', ({ state, code, reason }) => console.info(`[${state}]${code === undefined ? '' : ` ${code}`} ${reason ?? ''}`));
  client.on('error', (error) => console.error(`error: ${error.message}`));
  client.on('notification', (data) => console.info('notification:', data));
  client.on('direct', ({ from, payload }) => console.info(`(direct from ${from ?? 'server'})`, payload));
  client.on('refreshed', () => console.info('token refreshed in band'));

  const chat = client.subscribe(`chat.${room}`);
  chat.on('message', ({ payload, offset }) => {
    const { from, message } = payload as { from?: string; message?: string };
    console.info(`#${offset ?? '-'} ${from ?? '?'}: ${message ?? JSON.stringify(payload)}`);
  });
  chat.on('state', ({ state, recovered }) => {
    if (state === 'subscribed' && recovered !== undefined) console.info(recovered ? '(caught up on what was missed)' : '(some history was lost)');
  });
  client.watchPresence().on('message', ({ payload }) => {
    const { user_id, status } = payload as { user_id: string; status: string };
    console.info(`* ${user_id} is ${status}`);
  });
  client.connect();

  const input = createInterface({ input: process.stdin });
  input.on('line', (line) => {
    client.publish(`chat.${room}`, { from: user, message: line }).catch((error: Error) => console.error(`not sent: ${error.message}`));
  });
  input.on('close', () => client.close());
}
