/**
 * examples/realtime-service/client.ts (switchyard/client) against the real service: JWTs from
 * /api/login on every connect, dotted topics, presence, and a revoked token (4002) that the client
 * answers by logging in again, reconnecting, and recovering what it missed.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Message } from 'switchyard/client';
import { start, type RealtimeService } from '../examples/realtime-service/server.js';
import { chatClient } from '../examples/realtime-service/client.js';
import { clockPast, eventually } from './conformance/wait.js';
import { reach } from './client-helpers.js';

const cleanup: Array<() => unknown> = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

async function service(options: Parameters<typeof start>[0] = {}): Promise<RealtimeService> {
  const s = await start({ port: 0, logger: false, ...options });
  cleanup.push(() => s.close());
  return s;
}

describe('examples/realtime-service client', () => {
  it('chats on chat.general, sees presence, and after a revoked token logs in again and recovers', async () => {
    const s = await service();
    const alice = chatClient({ httpUrl: s.httpUrl, user: 'alice' });
    const bob = chatClient({ httpUrl: s.httpUrl, user: 'bob', device: 'web' });
    cleanup.push(() => alice.close(), () => bob.close());
    const got: Message[] = [];
    const chat = alice.subscribe('chat.general');
    chat.on('message', (m) => got.push(m));
    const online: unknown[] = [];
    alice.watchPresence().on('message', (m) => online.push(m.payload));
    alice.connect();
    await eventually(() => chat.state, (st) => st === 'subscribed', 'subscribed', 5000);
    bob.connect();
    await reach(bob, 'connected');
    await eventually(() => online, (o) => o.length > 0, 'bob online', 5000);
    expect(online[0]).toMatchObject({ user_id: 'bob', status: 'online', metadata: { device: 'web' } });
    await bob.publish('chat.general', { from: 'bob', message: 'one' });
    await eventually(() => got.length, (n) => n === 1, 'one', 5000);

    s.broker.revoke({ principal: 'alice' }); // 4002: a fresh login, then reconnect
    await reach(alice, 'disconnected');
    await bob.publish('chat.general', { from: 'bob', message: 'two' });
    await reach(alice, 'connected');
    await eventually(() => got.length, (n) => n === 2, 'two', 5000);
    await alice.ping();
    expect(got.map((m) => (m.payload as { message: string }).message)).toEqual(['one', 'two']);
    expect(chat.recovered).toBe(true);
  });

  it('refreshes its JWT in band on token_expiring and keeps the connection past the old exp', async () => {
    // Tokens live 4 s; token_expiring comes 3 s ahead, so about a second in (JWT exp is in whole seconds).
    const s = await service({ tokenTtlSeconds: 4, expiryWarningMs: 3000 });
    const alice = chatClient({ httpUrl: s.httpUrl, user: 'alice' });
    cleanup.push(() => alice.close());
    const states: string[] = [];
    alice.on('state', (e) => states.push(e.state));
    alice.connect();
    await reach(alice, 'connected');
    const [connection] = s.broker.connectionIds('alice');
    const first = (await alice.call('X-Whoami')) as { expires_at: number; token_id: string };
    await new Promise((resolve) => alice.on('refreshed', resolve));
    const now = (await alice.call('X-Whoami')) as { expires_at: number; token_id: string };
    expect(now.token_id).not.toBe(first.token_id);
    expect(now.expires_at).toBeGreaterThan(first.expires_at);
    await clockPast(first.expires_at + 100);
    await alice.ping();
    expect(s.broker.connectionIds('alice')).toEqual([connection]);
    expect(states).toEqual(['connecting', 'connected']);
  });
});
