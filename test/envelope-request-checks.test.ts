/**
 * The envelope protocol's request checks at their edges (seed 001: every request with an id gets
 * exactly one Ack or Error naming it): the id's length bound, empty strings, optional fields
 * that must have a type when present, custom handlers' results, and the welcome's options.
 * Each refusal is a 400 whose message says what was wrong, and the connection serves on.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { envelope, type BrokerOptions } from 'switchyard';
import { Client, connectAs, startEnvelope, type Frame, type Running } from './helpers.js';

let running: Running | undefined;
afterEach(async () => {
  await running?.stop();
  running = undefined;
});

async function broker(extra: Partial<BrokerOptions> = {}, protocol = envelope()): Promise<Client> {
  running = await startEnvelope(extra, protocol);
  return connectAs(running, 'alice');
}

/** Sends a frame with `id` and resolves with the Ack or Error naming it. */
function reply(c: Client, frame: Record<string, unknown> & { id: string }): Promise<Frame> {
  c.sendJson(frame);
  return c.next((f) => (f.type === 'Ack' && f.data?.message_id === frame.id) || (f.type === 'Error' && f.data?.details?.message_id === frame.id), `reply to ${frame.id}`);
}

describe('request ids', () => {
  it('takes an id of up to 128 characters, and refuses a longer or empty one (naming the field)', async () => {
    const c = await broker();
    const longest = 'i'.repeat(128);
    expect(await reply(c, { type: 'Ping', id: longest })).toEqual({ type: 'Ack', data: { message_id: longest, status: 'ok' } });
    for (const id of ['i'.repeat(129), '']) {
      c.sendJson({ type: 'Ping', id });
      const error = await c.nextOf('Error');
      expect(error.data).toEqual({ code: 400, message: 'id must be a non-empty string of at most 128 characters', details: { field: 'id' } });
    }
    expect((await c.request('Ping', {})).type).toBe('Ack');
    await c.close();
  });

  it("refuses an empty type, naming the request and the field", async () => {
    const c = await broker();
    expect((await reply(c, { type: '', id: 'e' })).data).toEqual({ code: 400, message: "'type' must be a non-empty string", details: { field: 'type', message_id: 'e' } });
    expect((await reply(c, { id: 'm' } as never)).data).toEqual({ code: 400, message: "missing 'type'", details: { field: 'type', message_id: 'm' } });
    await c.close();
  });
});

describe('request data', () => {
  it('Ping takes no data or null, refuses data that is not an object, and stamps a Pong with the time when none was sent', async () => {
    const c = await broker();
    const before = Date.now();
    expect((await reply(c, { type: 'Ping', id: 'n', data: null })).type).toBe('Ack');
    const pong = c.frames.find((f) => f.type === 'Pong')!;
    expect(pong.data.timestamp).toBeGreaterThanOrEqual(before);
    expect(pong.data.timestamp).toBeLessThanOrEqual(Date.now());
    expect((await reply(c, { type: 'Ping', id: 's', data: 'now' })).data).toEqual({ code: 400, message: "Ping needs 'data' to be an object", details: { field: 'data', message_id: 's' } });
    expect((await reply(c, { type: 'Ping', id: 'a', data: [1] })).data.code).toBe(400);
    expect(await reply(c, { type: 'Pong', id: 'p' })).toEqual({ type: 'Ack', data: { message_id: 'p', status: 'ok' } });
    await c.close();
  });

  it('Broadcast refuses an echo that is not a boolean, and Subscribe topics that are empty or not all strings', async () => {
    const c = await broker();
    expect((await reply(c, { type: 'Broadcast', id: 'e', data: { topic: 't', payload: 1, echo: 'yes' } })).data.message).toBe('Broadcast data.echo must be a boolean');
    expect((await reply(c, { type: 'Broadcast', id: 'ok', data: { topic: 't', payload: null, echo: false } })).data).toMatchObject({ status: 'delivered', recipients: 0 });
    expect((await reply(c, { type: 'Subscribe', id: 'z', data: { topics: [] } })).data).toEqual({
      code: 400,
      message: 'Subscribe needs data.topics to be a non-empty array of strings',
      details: { field: 'data.topics', message_id: 'z' },
    });
    expect((await reply(c, { type: 'Unsubscribe', id: 'u', data: { topics: ['a', 2] } })).data.message).toBe('Unsubscribe needs data.topics to be a non-empty array of strings');
    await c.close();
  });

  it('DirectMessage needs a non-empty target and a payload; Refresh needs a non-empty token', async () => {
    const c = await broker();
    expect((await reply(c, { type: 'DirectMessage', id: 'd1', data: { target_user: '', payload: 1 } })).data.message).toBe('DirectMessage needs data.target_user (a non-empty string)');
    expect((await reply(c, { type: 'DirectMessage', id: 'd2', data: { target_user: 'bob' } })).data.message).toBe('DirectMessage needs data.payload');
    expect((await reply(c, { type: 'Refresh', id: 'r1', data: { token: '' } })).data.message).toBe('Refresh needs data.token (a non-empty string)');
    expect((await reply(c, { type: 'Refresh', id: 'r2', data: {} })).data.message).toBe('Refresh needs data.token (a non-empty string)');
    await c.close();
  });

  it('History: since and limit are checked (limit 0 to 1000), and a missing topic is named', async () => {
    const c = await broker({ history: { topics: ['h/#'], maxMessages: 5 } });
    await running!.broker.publish('h/a', 1);
    expect((await reply(c, { type: 'History', id: 'top', data: { topic: 5 } })).data.message).toBe('History needs data.topic (a string)');
    const since = await reply(c, { type: 'History', id: 's', data: { topic: 'h/a', since: 'yesterday' } });
    expect(since.data).toEqual({ code: 400, message: 'data.since must be {offset, epoch} or a non-negative integer', details: { field: 'data.since', message_id: 's' } });
    for (const limit of [1001, 1.5, '3']) {
      const error = await reply(c, { type: 'History', id: `l${limit}`, data: { topic: 'h/a', limit } });
      expect(error.data, String(limit)).toEqual({ code: 400, message: 'data.limit must be an integer from 0 to 1000', details: { field: 'data.limit', message_id: `l${limit}` } });
    }
    for (const limit of [1000, 0, null]) {
      expect((await reply(c, { type: 'History', id: `ok${limit}`, data: { topic: 'h/a', limit, since: null } })).type, String(limit)).toBe('Ack');
    }
    const pages = c.frames.filter((f) => f.type === 'History');
    expect(pages.map((p) => p.data.messages.length)).toEqual([1, 0, 1]);
    await c.close();
  });

  it('Presence takes a single user_id as well as user_ids', async () => {
    const c = await broker();
    const alice = await connectAs(running!, 'carol:$presence/#,#');
    expect((await reply(alice, { type: 'Presence', id: 'one', data: { user_id: 'alice' } })).type).toBe('Ack');
    expect(alice.frames.filter((f) => f.type === 'Presence').map((f) => [f.data.user_id, f.data.status])).toEqual([['alice', 'online']]);
    expect((await reply(alice, { type: 'Presence', id: 'none', data: { user_id: 7 } })).data.message).toBe('Presence needs data.user_ids to be a non-empty array of strings');
    await alice.close();
    await c.close();
  });
});

describe('custom X- handlers', () => {
  it('Ack without a result when the handler returns nothing; Error 500 naming the id when its result cannot be JSON', async () => {
    const errors: Error[] = [];
    const c = await broker(
      {},
      envelope({
        handlers: {
          'X-Nothing': () => undefined,
          'X-Async': async (_conn, data) => ({ got: data }),
          'X-Big': () => ({ n: 10n }),
        },
      }),
    );
    running!.broker.on('error', (e) => errors.push(e));
    expect(await reply(c, { type: 'X-Nothing', id: 'n', data: {} })).toEqual({ type: 'Ack', data: { message_id: 'n', status: 'ok' } });
    expect(await reply(c, { type: 'X-Async', id: 'a', data: [1] })).toEqual({ type: 'Ack', data: { message_id: 'a', status: 'ok', result: { got: [1] } } });
    const big = await reply(c, { type: 'X-Big', id: 'b', data: {} });
    expect(big.data).toMatchObject({ code: 500, details: { message_id: 'b' } });
    expect(errors.map((e) => e.message)).toEqual([expect.stringContaining('the X-Big handler returned a result JSON cannot encode')]);
    // Without an id, a result is not sent anywhere, and nothing is reported.
    c.sendJson({ type: 'X-Big', data: {} });
    expect((await c.request('Ping', {})).type).toBe('Ack');
    expect(errors).toHaveLength(1);
    await c.close();
  });

  it('refuses a handler not registered under an X- type, or not a function', () => {
    expect(() => envelope({ handlers: { Custom: () => 1 } })).toThrow(new TypeError("envelope: custom handler 'Custom' must be a function registered under an 'X-' type"));
    expect(() => envelope({ handlers: { 'X-Bad': 'nope' as never } })).toThrow(TypeError);
    expect(() => envelope({ handlers: { 'X-Ok': () => 1 } })).not.toThrow();
  });
});

describe('welcome options', () => {
  it('announces the protocolVersion and features it was given, and the connection id', async () => {
    running = await startEnvelope({}, envelope({ protocolVersion: '2.1', features: ['broadcast'] }));
    const client = new Client(running.url('/ws?token=alice'));
    const welcome = await client.nextOf('Status');
    expect(welcome.data).toEqual({
      status: 'connected',
      details: { connection_id: running.broker.connectionIds('alice')[0], server_time: expect.any(Number), protocol_version: '2.1', features: ['broadcast'] },
    });
    await client.close();
  });

  it('announces version 1.0 and what this broker serves by default', async () => {
    const c = await broker();
    const welcome = c.frames.find((f) => f.type === 'Status')!;
    expect(welcome.data.details).toMatchObject({ protocol_version: '1.0', features: ['broadcast', 'direct_message', 'presence', 'history'] });
    await c.close();
  });
});

describe('Refresh', () => {
  it('acks a token for the same principal with its expiry; a refused one gets its Error naming the id, then close 4003', async () => {
    const expiresAt = Date.now() + 3_600_000;
    running = await startEnvelope({
      authenticate: ({ credentials }) => {
        if (credentials?.token === 'alice-1' || credentials?.token === 'alice-2') return { id: 'alice', expiresAt };
        if (credentials?.token === 'alice-forever') return { id: 'alice' };
        return null;
      },
    });
    const c = await connectAs(running, 'alice-1');
    expect(await reply(c, { type: 'Refresh', id: 'r1', data: { token: 'alice-2' } })).toEqual({ type: 'Ack', data: { message_id: 'r1', status: 'ok', expires_at: expiresAt } });
    expect(await reply(c, { type: 'Refresh', id: 'r2', data: { token: 'alice-forever' } })).toEqual({ type: 'Ack', data: { message_id: 'r2', status: 'ok' } });
    const refused = await reply(c, { type: 'Refresh', id: 'r3', data: { token: 'mallory' } });
    expect(refused.data).toMatchObject({ code: 403, details: { message_id: 'r3' } });
    expect(await c.closed).toEqual({ code: 4003, reason: 'token refresh refused' });
  });
});

describe('a rate-limited request', () => {
  it('gets Error 429 naming its id (read from the refused frame), or no id when it has none or one too long', async () => {
    running = await startEnvelope({ limits: { rate: { perSecond: 0.001, burst: 1 } } });
    const c = await connectAs(running, 'alice');
    expect((await reply(c, { type: 'Ping', id: 'first' })).type).toBe('Ack');
    const limited = await reply(c, { type: 'Ping', id: 'second' });
    expect(limited.data).toMatchObject({ code: 429, details: { message_id: 'second', retry_after_ms: expect.any(Number) } });
    c.sendJson({ type: 'Ping', id: 'x'.repeat(129) });
    c.ws.send('{"type":"Ping","id":');
    const errors = [await c.nextOf('Error'), await c.nextOf('Error')];
    for (const error of errors) {
      expect(error.data.code).toBe(429);
      expect(error.data.details).not.toHaveProperty('message_id');
    }
    await c.close();
  });
});
