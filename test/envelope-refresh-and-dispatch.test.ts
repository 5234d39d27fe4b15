/**
 * Envelope requests a client gets exactly one reply to (seed 001, DESIGN.md "Acks"): which
 * Refresh failures close the connection (4003) and which leave it serving, frame types that are
 * names of Object.prototype, custom `X-` types, a rate-limited id at its length bound, and the
 * Error a live permission loss sends. Over real sockets.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { BrokerError, envelope, type BrokerOptions } from 'switchyard';
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

/** Authenticates the handshake token 'alice'; a Refresh token picks what the hook does. */
const refreshing: BrokerOptions['authenticate'] = ({ credentials }) => {
  switch (credentials?.token) {
    case 'alice':
      return { id: 'alice' };
    case 'bob':
      return { id: 'bob' };
    case 'crash':
      throw new Error('hook crashed');
    case 'revoked':
      throw new BrokerError('SY_ERR_TOKEN_REVOKED', 'that token was revoked');
    case 'missing':
      throw new BrokerError('SY_ERR_MISSING_CREDENTIALS', 'no token in there');
    case 'busy':
      throw new BrokerError('SY_ERR_UNAVAILABLE', 'auth backend busy');
    default:
      return null;
  }
};

describe('Refresh failures', () => {
  it('a refused token gets Error 403 saying why, naming the id, then close 4003', async () => {
    const c = await broker({ authenticate: refreshing });
    expect((await reply(c, { type: 'Refresh', id: 'r', data: { token: 'nope' } })).data).toEqual({
      code: 403, message: 'the refreshed token was refused', details: { message_id: 'r' },
    });
    expect(await c.closed).toEqual({ code: 4003, reason: 'token refresh refused' });
  });

  it("a token for another principal is refused the same way, saying so", async () => {
    const c = await broker({ authenticate: refreshing });
    expect((await reply(c, { type: 'Refresh', id: 'b', data: { token: 'bob' } })).data).toEqual({
      code: 403, message: "a refreshed token must belong to the connection's principal", details: { message_id: 'b' },
    });
    expect(await c.closed).toEqual({ code: 4003, reason: 'token refresh refused' });
  });

  it('a hook refusing with a revoked or missing credential closes 4003 after the Error with its status', async () => {
    for (const [token, code, message] of [['revoked', 401, 'that token was revoked'], ['missing', 401, 'no token in there']] as const) {
      const c = await broker({ authenticate: refreshing });
      expect((await reply(c, { type: 'Refresh', id: token, data: { token } })).data).toEqual({ code, message, details: { message_id: token } });
      expect(await c.closed).toEqual({ code: 4003, reason: 'token refresh refused' });
      await running!.stop();
      running = undefined;
    }
  });

  it('a hook that crashes or is unavailable gets an Error naming the id, and the connection serves on', async () => {
    const c = await broker({ authenticate: refreshing });
    const crashed = await reply(c, { type: 'Refresh', id: 'c', data: { token: 'crash' } });
    expect(crashed.type).toBe('Error');
    expect(crashed.data).toMatchObject({ code: 500, details: { message_id: 'c' } });
    const busy = await reply(c, { type: 'Refresh', id: 'u', data: { token: 'busy' } });
    expect(busy.data).toMatchObject({ code: 503, message: 'auth backend busy', details: { message_id: 'u' } });
    // Still open and still alice: the next request is answered, once.
    expect(await reply(c, { type: 'Ping', id: 'after' })).toEqual({ type: 'Ack', data: { message_id: 'after', status: 'ok' } });
    expect(c.frames.filter((f) => f.data?.message_id === 'c' || f.data?.details?.message_id === 'c')).toHaveLength(1);
    expect(c.ws.readyState).toBe(c.ws.OPEN);
    await c.close();
  });
});

describe('frame types', () => {
  it("names of Object.prototype ('toString', 'constructor', '__proto__', 'hasOwnProperty') are unknown types: Error 400 naming the id", async () => {
    const c = await broker();
    for (const type of ['toString', 'constructor', '__proto__', 'hasOwnProperty', 'valueOf']) {
      expect((await reply(c, { type, id: type, data: {} })).data, type).toEqual({
        code: 400, message: `unknown message type '${type}'`, details: { message_id: type },
      });
    }
    expect(c.frames.filter((f) => f.type === 'Ack')).toEqual([]);
    await c.close();
  });

  it("a type merely starting with 'X' (no dash) or a lowercase 'x-' is unknown, not a custom type", async () => {
    const c = await broker({}, envelope({ handlers: { 'X-Echo': (_conn, data) => data } }));
    for (const type of ['XEcho', 'x-Echo', 'Y-Echo']) {
      expect((await reply(c, { type, id: type, data: 1 })).data).toEqual({ code: 400, message: `unknown message type '${type}'`, details: { message_id: type } });
    }
    expect((await reply(c, { type: 'X-Other', id: 'o', data: 1 })).data).toEqual({
      code: 400, message: "no handler is registered for custom type 'X-Other'", details: { message_id: 'o' },
    });
    expect(await reply(c, { type: 'X-Echo', id: 'e', data: { a: [1] } })).toEqual({ type: 'Ack', data: { message_id: 'e', status: 'ok', result: { a: [1] } } });
    await c.close();
  });

  it('a custom handler returning a result for a request without an id sends nothing; an async one is awaited', async () => {
    const calls: unknown[] = [];
    const c = await broker({}, envelope({
      handlers: {
        'X-Sync': (_conn, data) => (calls.push(data), { got: data }),
        'X-Later': async (_conn, data) => ({ later: data }),
      },
    }));
    c.sendJson({ type: 'X-Sync', data: 'quiet' });
    expect(await reply(c, { type: 'X-Later', id: 'l', data: 2 })).toEqual({ type: 'Ack', data: { message_id: 'l', status: 'ok', result: { later: 2 } } });
    expect(calls).toEqual(['quiet']);
    expect(c.frames.filter((f) => f.type === 'Ack' || f.type === 'Error')).toHaveLength(1);
    await c.close();
  });
});

describe('custom X- results', () => {
  it('falsy results are returned as they are; a result JSON has no text for (a function) gives an Ack without result', async () => {
    const c = await broker({}, envelope({
      handlers: {
        'X-Null': () => null,
        'X-Zero': () => 0,
        'X-False': () => false,
        'X-Empty': () => '',
        'X-Fn': () => () => 1,
        'X-Refuse': () => {
          throw new BrokerError('SY_ERR_FORBIDDEN', 'not for you', { details: { why: 'test' } });
        },
      },
    }));
    const results: unknown[] = [];
    for (const type of ['X-Null', 'X-Zero', 'X-False', 'X-Empty', 'X-Fn']) results.push((await reply(c, { type, id: type, data: null })).data);
    expect(results).toEqual([
      { message_id: 'X-Null', status: 'ok', result: null },
      { message_id: 'X-Zero', status: 'ok', result: 0 },
      { message_id: 'X-False', status: 'ok', result: false },
      { message_id: 'X-Empty', status: 'ok', result: '' },
      { message_id: 'X-Fn', status: 'ok' },
    ]);
    expect((await reply(c, { type: 'X-Refuse', id: 'f', data: null })).data).toEqual({ code: 403, message: 'not for you', details: { why: 'test', message_id: 'f' } });
    await c.close();
  });
});

describe('a rate-limited request', () => {
  it('names an id of exactly 128 characters, the longest a request may carry', async () => {
    const c = await broker({ limits: { rate: { perSecond: 0.001, burst: 1 } } });
    expect((await reply(c, { type: 'Ping', id: 'first' })).type).toBe('Ack');
    const id = 'k'.repeat(128);
    expect((await reply(c, { type: 'Ping', id })).data).toMatchObject({ code: 429, details: { message_id: id } });
    // An id that is not a string is not named, even one with a length.
    c.sendJson({ type: 'Ping', id: ['x'] });
    expect((await c.nextOf('Error')).data.details).not.toHaveProperty('message_id');
    await c.close();
  });
});

describe('permission lost live', () => {
  it('the Error 403 lists every dropped pattern in its message and its topics, and nothing else', async () => {
    running = await startEnvelope();
    const c = await connectAs(running, 'alice:chat/#,news/#,sport/#');
    await c.request('Subscribe', { topics: ['chat/a', 'news/+', 'sport/b'] });
    await running.broker.reauthorize('alice', { id: 'alice', grants: [{ topic: 'chat/#', access: 'readwrite' }] });
    expect((await c.nextOf('Error')).data).toEqual({
      code: 403,
      message: 'permission revoked; unsubscribed from news/+, sport/b',
      details: { topics: ['news/+', 'sport/b'] },
    });
    await c.close();
  });
});
