/**
 * Finding 3 of issue 16: a payload nested deeper than `JSON.stringify` can encode (20,000
 * levels is 40 KB, far under the size limit) was Acked `delivered` to no one, or answered 500
 * as a direct message. Every protocol now refuses it at the door (`maxJsonDepth`, default 128).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { envelope, events, stream, tagged } from 'switchyard';
import { connectAs, start, startEnvelope, tokenAuth, until, type Running } from './helpers.js';
import { open, subscriptions } from './wire-helpers.js';

let running: Running | undefined;
afterEach(async () => {
  await running?.stop();
  running = undefined;
});

/** `{"a":{"a":…{"a":1}…}}`, `levels` objects deep. */
function nested(levels: number): string {
  return '{"a":'.repeat(levels) + '1' + '}'.repeat(levels);
}
/** 20,000 nested arrays: 40 KB, under the 64 KiB frame limit. */
const DEEP = '['.repeat(20_000) + ']'.repeat(20_000);

describe('payload nesting refused at the door (issue 16, finding 3)', () => {
  it('envelope: a deep Broadcast gets Error 400 naming its id and reaches no one; a deep DirectMessage to an online user too', async () => {
    running = await startEnvelope();
    const sub = await connectAs(running, 'bob:#');
    const pub = await connectAs(running, 'alice:#');
    expect((await sub.request('Subscribe', { topics: ['deep'] })).type).toBe('Ack');
    const published: string[] = [];
    running.broker.on('publish', (p) => {
      if (!p.topic.startsWith('$')) published.push(p.topic);
    });

    pub.ws.send(`{"type":"Broadcast","id":"b1","data":{"topic":"deep","payload":${DEEP}}}`);
    const reply = await pub.next((f) => f.data?.message_id === 'b1' || f.data?.details?.message_id === 'b1');
    expect(reply.type).toBe('Error');
    expect(reply.data.code).toBe(400);
    expect(reply.data.message).toMatch(/nested deeper than 128/);

    pub.ws.send(`{"type":"DirectMessage","id":"d1","data":{"target_user":"bob","payload":${DEEP}}}`);
    const direct = await pub.next((f) => f.data?.message_id === 'd1' || f.data?.details?.message_id === 'd1');
    expect(direct.type).toBe('Error');
    expect(direct.data.code).toBe(400);

    // The id is read even when it comes after the deep part.
    pub.ws.send(`{"type":"Broadcast","data":{"topic":"deep","payload":${DEEP}},"id":"b2"}`);
    expect((await pub.next((f) => f.data?.details?.message_id === 'b2')).data.code).toBe(400);

    // A marker published after them is the first thing the subscriber sees: nothing deep came before.
    expect((await pub.request('Broadcast', { topic: 'deep', payload: JSON.parse(nested(120)) })).data.status).toBe('delivered');
    const first = await sub.nextOf('Broadcast');
    expect(JSON.stringify(first.data.payload)).toBe(nested(120));
    expect(published).toEqual(['deep']);
    await sub.close();
    await pub.close();
  });

  it('envelope: maxJsonDepth is an option, with brackets inside strings not counted', async () => {
    running = await startEnvelope({}, envelope({ maxJsonDepth: 8 }));
    const client = await connectAs(running, 'alice:#');
    client.ws.send(`{"type":"Broadcast","id":"x","data":{"topic":"t","payload":${nested(7)}}}`);
    expect((await client.next((f) => f.data?.message_id === 'x' || f.data?.details?.message_id === 'x')).type).toBe('Error');
    const brackets = '[[[[{{{{'.repeat(20);
    expect((await client.request('Broadcast', { topic: 't', payload: { s: brackets, q: '"\\[[[' } })).type).toBe('Ack');
    expect(() => envelope({ maxJsonDepth: 0 })).toThrow(TypeError);
    await client.close();
  });

  it('events: a deep frame gets an error frame, not a subscription', async () => {
    running = await start({ endpoints: [{ path: '/events', protocol: events() }], authenticate: tokenAuth });
    const client = await open(running.url('/events?token=a:%23'));
    client.ws.send(`{"type":"subscribe","topics":["alerts"],"junk":${DEEP}}`);
    const reply = await client.next((f) => f.type === 'error' || f.type === 'subscription_confirmed');
    expect(reply.type).toBe('error');
    expect(running.broker.stats().subscriptions).toBe(0);
    await client.close();
  });

  it('stream: a deep frame is dropped as invalid, never published', async () => {
    running = await start({
      endpoints: [{ path: '/dev/:id', protocol: stream({ bind: ({ id }) => ({ subscribe: [`cmd/${id}`], publish: `tele/${id}` }) }) }],
      authenticate: tokenAuth,
    });
    const published: string[] = [];
    running.broker.on('publish', (p) => {
      if (!p.topic.startsWith('$')) published.push(p.topic);
    });
    const device = await open(running.url('/dev/d1?token=d1:%23'));
    await subscriptions(running.broker, 1);
    device.ws.send(DEEP);
    device.ws.send('{"marker":1}');
    await until(() => published.length > 0, 'the marker published');
    expect(published).toEqual(['tele/d1']);
    await device.close();
  });

  it('tagged: a deep frame closes with 1008 and is not published', async () => {
    running = await start({ endpoints: [{ path: '/tags', protocol: tagged() }], authenticate: tokenAuth });
    const published: string[] = [];
    running.broker.on('publish', (p) => {
      if (!p.topic.startsWith('$')) published.push(p.topic);
    });
    const client = await open(running.url('/tags?token=a:%23&tags=x'));
    client.ws.send(`{"tag":"x","message":${DEEP}}`);
    expect((await client.closed).code).toBe(1008);
    expect(published).toEqual([]);
  });
});
