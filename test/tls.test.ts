import { readFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createBroker, envelope } from 'switchyard';
import { attach } from 'switchyard/http';
import { type Client, connect, tokenAuth, until } from './helpers.js';

// A self-signed certificate for 127.0.0.1 (test/fixtures, valid for 100 years).
const tls = {
  key: readFileSync(new URL('./fixtures/localhost-key.pem', import.meta.url)),
  cert: readFileSync(new URL('./fixtures/localhost-cert.pem', import.meta.url)),
};

let stop: (() => Promise<void>) | undefined;
afterEach(async () => {
  await stop?.();
  stop = undefined;
});

describe('wss:// (the broker mounted on an https server)', () => {
  it('carries every kind of frame over TLS: string and Buffer frames, joined acks, binary', async () => {
    const broker = createBroker({ endpoints: [{ path: '/ws', protocol: envelope() }], authenticate: tokenAuth });
    const server = https.createServer(tls, (_req, res) => res.writeHead(404).end());
    attach(broker, server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    stop = async () => {
      await broker.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    };
    const url = `wss://127.0.0.1:${(server.address() as AddressInfo).port}/ws?token=`;
    const as = (token: string): Promise<Client> => connect(url + token, undefined, { ca: tls.cert });
    const sub = await as('bob');
    const pub = await as('alice');
    await sub.request('Subscribe', { topics: ['t'] });

    // ASCII (string frames), non-ASCII and large (Buffer frames); the acks of a burst are joined.
    const payloads = [{ n: 1 }, { n: 'thrée' }, { n: 'x'.repeat(10_000) }, { n: 4 }];
    payloads.forEach((payload, i) => pub.ws.send(JSON.stringify({ type: 'Broadcast', data: { topic: 't', payload }, id: `p${i}` })));
    await until(() => pub.frames.filter((f) => f.type === 'Ack').length === payloads.length, 'acks');
    expect(pub.frames.filter((f) => f.type === 'Ack').map((f) => [f.data.message_id, f.data.recipients])).toEqual([
      ['p0', 1],
      ['p1', 1],
      ['p2', 1],
      ['p3', 1],
    ]);
    await until(() => sub.frames.filter((f) => f.type === 'Broadcast').length === payloads.length, 'deliveries');
    expect(sub.frames.filter((f) => f.type === 'Broadcast').map((f) => f.data.payload)).toEqual(payloads);

    await broker.publish('t', null, { binary: Buffer.from([0, 1, 2, 255]) });
    await until(() => sub.binary.length === 1, 'binary delivery');
    expect(sub.binary[0]!.subarray(-4)).toEqual(Buffer.from([0, 1, 2, 255]));
    await sub.close();
    await pub.close();
  });
});
