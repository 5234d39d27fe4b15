/**
 * Seed 001's replies, exactly and in order (DESIGN.md "Acks"): the Status of a Subscribe with
 * recovery (recovered and positions), Presence frames before the Presence Ack, a DirectMessage
 * delivery and its Ack, a Ping's Pong before its Ack, and one reply per id. Real sockets.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { envelope, type BrokerOptions } from 'switchyard';
import { Client, connectAs, startEnvelope, type Frame, type Running } from './helpers.js';

let running: Running | undefined;
afterEach(async () => {
  await running?.stop();
  running = undefined;
});

async function broker(extra: Partial<BrokerOptions> = {}): Promise<Client> {
  running = await startEnvelope(extra, envelope());
  return connectAs(running, 'alice');
}

/** The frames `frame` brings, up to and including the Ack or Error naming its id. */
async function exchange(c: Client, frame: Record<string, unknown> & { id: string }): Promise<Frame[]> {
  const at = c.frames.length;
  c.sendJson(frame);
  await c.next((f) => (f.type === 'Ack' && f.data?.message_id === frame.id) || (f.type === 'Error' && f.data?.details?.message_id === frame.id), `reply to ${frame.id}`);
  return c.frames.slice(at);
}

describe('Subscribe with recovery', () => {
  it('Status names recovered and positions per topic after the replay, then the Ack', async () => {
    const c = await broker({ history: { topics: ['h/#'], maxMessages: 10 } });
    await running!.broker.publish('h/a', 1);
    const { epoch } = await running!.broker.publish('h/a', 2);
    const frames = await exchange(c, { type: 'Subscribe', id: 's', data: { topics: ['h/a', 'plain'], recover: { 'h/a': 1 } } });
    // The replay comes first (what was missed, in order), then the Status, then the Ack.
    expect(frames.map((f) => f.type)).toEqual(['Broadcast', 'Status', 'Ack']);
    expect(frames[1]).toEqual({
      type: 'Status',
      data: {
        status: 'subscribed',
        details: { topics: ['h/a', 'plain'], active_subscriptions: 2, recovered: { 'h/a': true }, positions: { 'h/a': { offset: 2, epoch } } },
      },
    });
    expect(frames[0]!.data).toMatchObject({ topic: 'h/a', payload: 2, metadata: { offset: 2, epoch } });
    expect(frames.at(-1)).toEqual({ type: 'Ack', data: { message_id: 's', status: 'ok' } });
    // Without recover: no recovered, no positions.
    const again = await exchange(c, { type: 'Subscribe', id: 't', data: { topics: ['h/b'] } });
    expect(again).toEqual([
      { type: 'Status', data: { status: 'subscribed', details: { topics: ['h/b'], active_subscriptions: 3 } } },
      { type: 'Ack', data: { message_id: 't', status: 'ok' } },
    ]);
    await c.close();
  });
});

describe('Presence', () => {
  it('one Presence frame per user asked for, in order, then the Ack', async () => {
    running = await startEnvelope({}, envelope());
    const bob = await connectAs(running, 'bob');
    const c = await connectAs(running, 'carol:$presence/#,#');
    const frames = await exchange(c, { type: 'Presence', id: 'p', data: { user_ids: ['bob', 'nobody'] } });
    expect(frames.map((f) => [f.type, f.data.user_id ?? f.data.message_id, f.data.status])).toEqual([
      ['Presence', 'bob', 'online'],
      ['Presence', 'nobody', 'offline'],
      ['Ack', 'p', 'ok'],
    ]);
    expect(frames[1]!.data).toEqual({ user_id: 'nobody', status: 'offline', last_seen: null, metadata: {} });
    await bob.close();
    await c.close();
  });
});

describe('DirectMessage', () => {
  it('the delivery names the sender and the Ack lists the connections reached', async () => {
    const c = await broker();
    const bob = await connectAs(running!, 'bob');
    const [bobId] = running!.broker.connections({ principal: 'bob' }).map((x) => x.id);
    expect(await exchange(c, { type: 'DirectMessage', id: 'd', data: { target_user: 'bob', payload: { hi: 1 } } })).toEqual([
      { type: 'Ack', data: { message_id: 'd', status: 'delivered', delivered_to: [bobId] } },
    ]);
    expect((await bob.nextOf('DirectMessage')).data).toEqual({
      from_user: 'alice', payload: { hi: 1 }, metadata: { sent_at: expect.any(Number), message_id: expect.any(String) },
    });
    expect((await exchange(c, { type: 'DirectMessage', id: 'n', data: { target_user: 'nobody', payload: 1 } }))).toEqual([
      { type: 'Error', data: { code: 404, message: 'User nobody not found or not connected', details: { queued: true, message_id: 'n' } } },
    ]);
    await bob.close();
    await c.close();
  });
});

describe('Ping', () => {
  it('Pong echoes the timestamp sent, before the Ack; without an id only the Pong comes', async () => {
    const c = await broker();
    expect(await exchange(c, { type: 'Ping', id: 'i', data: { timestamp: 42 } })).toEqual([
      { type: 'Pong', data: { timestamp: 42 } },
      { type: 'Ack', data: { message_id: 'i', status: 'ok' } },
    ]);
    c.sendJson({ type: 'Ping', data: { timestamp: 7 } });
    expect(await c.nextOf('Pong', (f) => f.data.timestamp === 7)).toEqual({ type: 'Pong', data: { timestamp: 7 } });
    await c.roundTrip();
    expect(c.frames.at(-1)).toEqual({ type: 'Pong', data: { timestamp: 7 } });
    await c.close();
  });
});
