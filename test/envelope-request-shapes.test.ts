/**
 * Every envelope request type refuses data of the wrong shape with an Error 400 whose message
 * names the request type (seed 001; README "The envelope protocol"), each Ack is exactly
 * `{message_id, status}`, and the protocol names itself in what the broker reports. Real sockets.
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

function reply(c: Client, frame: Record<string, unknown> & { id: string }): Promise<Frame> {
  c.sendJson(frame);
  return c.next((f) => (f.type === 'Ack' && f.data?.message_id === frame.id) || (f.type === 'Error' && f.data?.details?.message_id === frame.id), `reply to ${frame.id}`);
}

describe('data that is not an object', () => {
  it('each request type says which one needed an object, naming the field and the id', async () => {
    const c = await broker();
    for (const type of ['Subscribe', 'Unsubscribe', 'History', 'Presence', 'Refresh', 'Broadcast', 'DirectMessage']) {
      for (const data of ['x', null, [1], 3]) {
        const id = `${type}-${JSON.stringify(data)}`;
        expect((await reply(c, { type, id, data })).data, id).toEqual({
          code: 400, message: `${type} needs 'data' to be an object`, details: { field: 'data', message_id: id },
        });
      }
    }
    expect(c.frames.filter((f) => f.type === 'Ack')).toEqual([]);
    await c.close();
  });

  it('a DirectMessage target that is not a string is refused before anything is sent', async () => {
    const c = await broker();
    for (const target_user of [5, null, ['bob'], {}]) {
      expect((await reply(c, { type: 'DirectMessage', id: `t${JSON.stringify(target_user)}`, data: { target_user, payload: 1 } })).data.message).toBe(
        'DirectMessage needs data.target_user (a non-empty string)',
      );
    }
    await c.close();
  });
});

describe('Acks', () => {
  it('Unsubscribe and History are acknowledged with status ok and nothing else', async () => {
    const c = await broker({ history: { topics: ['h/#'], maxMessages: 2 } });
    await c.request('Subscribe', { topics: ['h/a'] });
    expect(await reply(c, { type: 'Unsubscribe', id: 'u', data: { topics: ['h/a'] } })).toEqual({ type: 'Ack', data: { message_id: 'u', status: 'ok' } });
    // Unsubscribing what it never subscribed to: still the Status and the Ack, with 0 active.
    expect(await reply(c, { type: 'Unsubscribe', id: 'u2', data: { topics: ['never'] } })).toEqual({ type: 'Ack', data: { message_id: 'u2', status: 'ok' } });
    expect(c.frames.filter((f) => f.type === 'Status' && f.data.status === 'unsubscribed').map((f) => f.data.details)).toEqual([
      { topics: ['h/a'], active_subscriptions: 0 },
      { topics: ['never'], active_subscriptions: 0 },
    ]);
    expect(await reply(c, { type: 'History', id: 'h', data: { topic: 'h/a' } })).toEqual({ type: 'Ack', data: { message_id: 'h', status: 'ok' } });
    await c.close();
  });
});

describe('options', () => {
  it('an invalid maxJsonDepth is refused at construction, naming the protocol', () => {
    for (const maxJsonDepth of [0, -1, 1.5]) {
      expect(() => envelope({ maxJsonDepth })).toThrow(new TypeError('envelope: maxJsonDepth must be a positive integer'));
    }
  });

  it("a delivery the envelope cannot encode is reported with the protocol's name, and others still get theirs", async () => {
    const c = await broker();
    const errors: Array<Error & { context?: Record<string, unknown> }> = [];
    running!.broker.on('error', (e) => errors.push(e));
    await c.request('Subscribe', { topics: ['t'] });
    await running!.broker.publish('t', { big: 1n } as never).catch(() => undefined);
    await running!.broker.publish('t', 'fine');
    expect((await c.nextOf('Broadcast')).data.payload).toBe('fine');
    expect(errors.map((e) => e.context)).toEqual([{ during: 'encode', protocol: 'envelope', kind: 'publish' }]);
    await c.close();
  });
});
