import { afterEach, describe, expect, it } from 'vitest';
import { envelope } from 'switchyard';
import { connect, start, tokenAuth, type Running } from './helpers.js';

let running: Running | undefined;
afterEach(async () => { await running?.stop(); running = undefined; });

describe('smoke', () => {
  it('subscribes, publishes and acks', async () => {
    running = await start({ endpoints: [{ path: '/ws', protocol: envelope() }], authenticate: tokenAuth });
    const a = await connect(running.url('/ws?token=alice'));
    const b = await connect(running.url('/ws?token=bob'));
    const sub = await a.request('Subscribe', { topics: ['chat/#'] });
    expect(sub.type).toBe('Ack');
    const ack = await b.request('Broadcast', { topic: 'chat/general', payload: { text: 'hi' } });
    expect(ack.data).toMatchObject({ status: 'delivered', recipients: 1 });
    const got = await a.nextOf('Broadcast');
    expect(got.data.payload).toEqual({ text: 'hi' });
    await a.close(); await b.close();
  });
});
