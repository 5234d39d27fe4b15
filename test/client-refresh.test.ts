/**
 * In-band token refresh: `AuthStatus token_expiring` → the client's getToken → `Refresh {token}`
 * → the host's authenticate (credentials.source 'refresh') → a new principal and expiry on the
 * same connection; a refused or foreign token → Error, close 4003, and the client stops.
 */
import WebSocket from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { envelope, type Credentials, type Grant } from 'switchyard';
import { createClient, type Client, type SwitchyardError } from 'switchyard/client';
import { clockPast, eventually } from './conformance/wait.js';
import { start, type Running } from './helpers.js';
import { reach } from './client-helpers.js';

const cleanup: Array<() => unknown> = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

/** Tokens are `<user>:<expiresAt>[:ro]`; `ro` drops the grant on `secret/#`. */
const token = (user: string, expiresAt: number, ro = false) => `${user}:${expiresAt}${ro ? ':ro' : ''}`;

async function broker(seen: Credentials[]): Promise<Running> {
  const running = await start({
    endpoints: [{ path: '/ws', protocol: envelope() }],
    authenticate: ({ credentials }) => {
      if (credentials === undefined) return null;
      seen.push(credentials);
      const [id, exp, ro] = credentials.token.split(':');
      const grants: Grant[] = [{ topic: 'chat/#', access: 'readwrite' }];
      if (ro !== 'ro') grants.push({ topic: 'secret/#', access: 'read' });
      return id === 'bad' ? null : { id: id!, expiresAt: Number(exp), grants, tokenId: credentials.token };
    },
    expiryWarningMs: 1000,
    heartbeat: false,
  });
  cleanup.push(() => running.stop());
  return running;
}

function client(b: Running, tokens: () => string): Client {
  const c = createClient({ url: b.url(), WebSocket, getToken: tokens, backoff: { minMs: 0, maxMs: 0 } });
  cleanup.push(() => c.close());
  return c.connect();
}

describe('switchyard/client: token refresh in band', () => {
  it('on token_expiring gets a new token and refreshes without dropping the connection', async () => {
    const seen: Credentials[] = [];
    const b = await broker(seen);
    const firstExpiry = Date.now() + 1500; // token_expiring about 500 ms in
    const tokens = [token('alice', firstExpiry), token('alice', Date.now() + 60_000)];
    const c = client(b, () => tokens.shift() ?? 'bad:0');
    const states: string[] = [];
    c.on('state', (e) => states.push(e.state));
    await reach(c, 'connected');
    const [connection] = b.broker.connectionIds('alice');
    const refreshed = new Promise((resolve) => c.on('refreshed', resolve));
    await refreshed;
    expect(seen.map((s) => s.source)).toEqual(['query', 'refresh']);
    // Past the first token's expiry (when the server would have closed it with 4002), the same
    // connection is still up and answering.
    await clockPast(firstExpiry + 100);
    await c.ping();
    expect(b.broker.connectionIds('alice')).toEqual([connection]);
    expect(states).toEqual(['connected']);
  });

  it('re-checks subscriptions with the new principal: one it no longer grants is dropped', async () => {
    const seen: Credentials[] = [];
    const b = await broker(seen);
    const tokens = [token('alice', Date.now() + 60_000), token('alice', Date.now() + 60_000, true)];
    const c = client(b, () => tokens.shift()!);
    const secret = c.subscribe('secret/plans');
    const chat = c.subscribe('chat/a');
    const errors: SwitchyardError[] = [];
    secret.on('error', (e) => errors.push(e));
    await eventually(() => [secret.state, chat.state], (s) => s.every((x) => x === 'subscribed'), 'subscribed');
    await c.refresh();
    await eventually(() => secret.state, (s) => s === 'unsubscribed', 'secret dropped');
    expect(errors[0]).toMatchObject({ code: 403 });
    expect(chat.state).toBe('subscribed');
    expect(c.state).toBe('connected');
  });

  it.each([
    ['another principal', token('mallory', Date.now() + 60_000)],
    ['a refused token', 'bad:0'],
  ])('refused for %s: Error, close 4003, and the client stops', async (_what, second) => {
    const seen: Credentials[] = [];
    const b = await broker(seen);
    const tokens = [token('alice', Date.now() + 60_000), second];
    const c = client(b, () => tokens.shift()!);
    const errors: Error[] = [];
    c.on('error', (e) => errors.push(e));
    await reach(c, 'connected');
    await expect(c.refresh()).rejects.toMatchObject({ code: 403 });
    await reach(c, 'closed');
    expect(errors.map((e) => (e as SwitchyardError).code)).toEqual([4003]);
  });
});
