/**
 * With an asynchronous `authorize`, an envelope Broadcast is answered before the requests sent
 * after it (seed 001: replies in request order, DESIGN.md "Acks"), and a refusal names its id.
 * Real sockets.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { envelope } from 'switchyard';
import { connectAs, startEnvelope, until, type Running } from './helpers.js';

let running: Running | undefined;
afterEach(async () => {
  await running?.stop();
  running = undefined;
});

describe('Broadcast with an async authorize', () => {
  it('its Ack or Error comes before the replies to the requests sent after it', async () => {
    running = await startEnvelope({
      authorize: async (_p, action, topic) => {
        await new Promise((r) => setTimeout(r, 5));
        return !(action === 'publish' && topic === 'denied');
      },
    }, envelope());
    const c = await connectAs(running, 'alice');
    c.sendJson({ type: 'Broadcast', id: 'b1', data: { topic: 'ok', payload: 1 } });
    c.sendJson({ type: 'Ping', id: 'p1' });
    c.sendJson({ type: 'Broadcast', id: 'b2', data: { topic: 'denied', payload: 2 } });
    c.sendJson({ type: 'Ping', id: 'p2' });
    await until(() => c.frames.filter((f) => f.type === 'Ack' || f.type === 'Error').length === 4, 'four replies');
    expect(c.frames.filter((f) => f.type === 'Ack' || f.type === 'Error').map((f) => [f.type, f.data.message_id ?? f.data.details?.message_id])).toEqual([
      ['Ack', 'b1'], ['Ack', 'p1'], ['Error', 'b2'], ['Ack', 'p2'],
    ]);
    await c.close();
  });
});
