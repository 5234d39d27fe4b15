/**
 * The History reply and history-backed Broadcasts of the envelope protocol, frame by frame as
 * the README's "Frames on the wire" shows them: every field of a History page (binary payloads
 * as `{binary: <base64>}`), `since` as an offset or an `{offset, epoch}` position, the History
 * frame before its Ack, and the offset/epoch a Broadcast's Ack and delivery carry. Real sockets.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { envelope, type BrokerOptions } from 'switchyard';
import { Client, connectAs, startEnvelope, until, type Frame, type Running } from './helpers.js';

let running: Running | undefined;
afterEach(async () => {
  await running?.stop();
  running = undefined;
});

async function broker(extra: Partial<BrokerOptions> = {}): Promise<Client> {
  running = await startEnvelope(extra, envelope());
  return connectAs(running, 'alice');
}

function reply(c: Client, frame: Record<string, unknown> & { id: string }): Promise<Frame> {
  c.sendJson(frame);
  return c.next((f) => (f.type === 'Ack' && f.data?.message_id === frame.id) || (f.type === 'Error' && f.data?.details?.message_id === frame.id), `reply to ${frame.id}`);
}

const history = { topics: ['h/#'], maxMessages: 10 };

describe('History', () => {
  it('sends the page with every field, then the Ack, for text and binary messages', async () => {
    const c = await broker({ history });
    const first = await running!.broker.publish('h/a', { n: 1 });
    const second = await running!.broker.publish('h/a', null, { binary: Buffer.from([0, 1, 2, 250]) });
    const at = c.frames.length;
    const ack = await reply(c, { type: 'History', id: 'p', data: { topic: 'h/a' } });
    expect(ack).toEqual({ type: 'Ack', data: { message_id: 'p', status: 'ok' } });
    const [page, after] = c.frames.slice(at);
    expect(after).toBe(ack);
    expect(page!.type).toBe('History');
    const epoch = first.epoch;
    expect(typeof epoch).toBe('string');
    expect(page!.data).toEqual({
      topic: 'h/a',
      messages: [
        { payload: { n: 1 }, metadata: { sent_at: expect.any(Number), message_id: first.messageId, offset: 1, epoch } },
        { payload: { binary: Buffer.from([0, 1, 2, 250]).toString('base64') }, metadata: { sent_at: expect.any(Number), message_id: second.messageId, offset: 2, epoch } },
      ],
      latest_offset: 2,
      epoch,
      complete: true,
    });
    await c.close();
  });

  it('takes since as a bare offset or an {offset, epoch} position, and limit caps the page counted from since', async () => {
    const c = await broker({ history });
    for (let i = 1; i <= 4; i++) await running!.broker.publish('h/a', i);
    const { epoch } = await running!.broker.publish('h/a', 5);
    const pages: unknown[] = [];
    for (const [id, data] of [
      ['bare', { topic: 'h/a', since: 3 }],
      ['pos', { topic: 'h/a', since: { offset: 3, epoch } }],
      ['lim', { topic: 'h/a', since: 1, limit: 2 }],
      ['zero', { topic: 'h/a', since: 0 }],
    ] as const) {
      expect((await reply(c, { type: 'History', id, data })).type, id).toBe('Ack');
      const page = c.frames.filter((f) => f.type === 'History').at(-1)!;
      pages.push([id, page.data.messages.map((m: any) => m.payload), page.data.complete]);
    }
    expect(pages).toEqual([
      ['bare', [4, 5], true],
      ['pos', [4, 5], true],
      ['lim', [2, 3], true],
      ['zero', [1, 2, 3, 4, 5], true],
    ]);
    expect((await reply(c, { type: 'History', id: 'neg', data: { topic: 'h/a', since: -1 } })).data).toEqual({
      code: 400, message: 'data.since must be {offset, epoch} or a non-negative integer', details: { field: 'data.since', message_id: 'neg' },
    });
    expect((await reply(c, { type: 'History', id: 'arr', data: [] })).data).toEqual({
      code: 400, message: "History needs 'data' to be an object", details: { field: 'data', message_id: 'arr' },
    });
    await c.close();
  });
});

describe('Broadcast on a history topic', () => {
  it('the Ack carries the offset and epoch, and the delivery carries them in its metadata', async () => {
    const c = await broker({ history });
    const sub = await connectAs(running!, 'bob');
    await sub.request('Subscribe', { topics: ['h/b'] });
    const ack = await reply(c, { type: 'Broadcast', id: 'b1', data: { topic: 'h/b', payload: 'x' } });
    const delivery = await sub.nextOf('Broadcast');
    const epoch = delivery.data.metadata.epoch;
    expect(typeof epoch).toBe('string');
    expect(ack).toEqual({ type: 'Ack', data: { message_id: 'b1', status: 'delivered', recipients: 1, offset: 1, epoch } });
    expect(delivery.data).toEqual({ topic: 'h/b', payload: 'x', metadata: { sent_at: expect.any(Number), message_id: expect.any(String), offset: 1, epoch } });
    // Without history: no offset, no epoch.
    const plain = await reply(c, { type: 'Broadcast', id: 'b2', data: { topic: 'nh', payload: null } });
    expect(plain).toEqual({ type: 'Ack', data: { message_id: 'b2', status: 'delivered', recipients: 0 } });
    await sub.close();
    await c.close();
  });

  it('a Broadcast without an id is delivered and answered with nothing', async () => {
    const c = await broker({ history });
    const sub = await connectAs(running!, 'bob');
    await sub.request('Subscribe', { topics: ['h/c', 'nh'] });
    c.sendJson({ type: 'Broadcast', data: { topic: 'h/c', payload: 1 } });
    c.sendJson({ type: 'Broadcast', data: { topic: 'nh', payload: 2, echo: false } });
    await until(() => sub.frames.filter((f) => f.type === 'Broadcast').length === 2, 'two deliveries');
    await c.roundTrip();
    expect(c.frames.filter((f) => f.type !== 'Status')).toEqual([]);
    await sub.close();
    await c.close();
  });
});

describe('host publishes', () => {
  it('a payload JSON cannot carry (undefined) is delivered as null', async () => {
    const c = await broker();
    await c.request('Subscribe', { topics: ['u'] });
    await running!.broker.publish('u', undefined);
    expect((await c.nextOf('Broadcast')).data.payload).toBeNull();
    await c.close();
  });
});
