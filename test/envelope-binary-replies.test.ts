/**
 * Binary frames of the envelope protocol (seed 001: `[type][4-byte BE length][payload]`; 0x01/0x02
 * carry a 2-byte name length and the topic or target first): the exact Error a client gets for
 * each malformed frame, the `binary_received` Status with the size and sha256 of the data, and
 * the frames the server writes back. Over real sockets; the connection serves on after each.
 */
import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { envelope, type BrokerOptions } from 'switchyard';
import { Client, connectAs, startEnvelope, until, type Running } from './helpers.js';

let running: Running | undefined;
afterEach(async () => {
  await running?.stop();
  running = undefined;
});

async function broker(extra: Partial<BrokerOptions> = {}, protocol = envelope()): Promise<Running> {
  running = await startEnvelope(extra, protocol);
  return running;
}

function as(token: string): Promise<Client> {
  return connectAs(running!, token);
}

function sha(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** `[type][4-byte length][2-byte name length][name][data]`. */
function named(type: number, name: string, data: Buffer): Buffer {
  const n = Buffer.from(name);
  const head = Buffer.alloc(7);
  head[0] = type;
  head.writeUInt32BE(2 + n.length + data.length, 1);
  head.writeUInt16BE(n.length, 5);
  return Buffer.concat([head, n, data]);
}

/** `[type][4-byte length][data]`. */
function plain(type: number, data: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head[0] = type;
  head.writeUInt32BE(data.length, 1);
  return Buffer.concat([head, data]);
}

describe('malformed binary frames', () => {
  it('each gets Error 400 with the message that says what was wrong, and no details', async () => {
    await broker();
    const c = await as('alice');
    const cases: Array<[Buffer, string]> = [
      [Buffer.from([0x01, 0, 0, 0]), 'binary frame shorter than its 5-byte header'],
      [Buffer.from([0x01, 0, 0, 0, 3, 1]), 'binary frame length field says 3 bytes but 1 follow'],
      [Buffer.from([0x01, 0, 0, 0, 0, 1]), 'binary frame length field says 0 bytes but 1 follow'],
      [plain(0x00, Buffer.alloc(0)), 'unknown binary message type 0x00'],
      [plain(0x05, Buffer.alloc(0)), 'unknown binary message type 0x05'],
      [plain(0xab, Buffer.alloc(0)), 'unknown binary message type 0xab'],
      [plain(0x01, Buffer.alloc(0)), 'binary broadcast needs a 2-byte length and the topic before its data'],
      [plain(0x01, Buffer.from([0])), 'binary broadcast needs a 2-byte length and the topic before its data'],
      [plain(0x01, Buffer.from([0, 3, 0x61, 0x62])), 'binary broadcast needs a 2-byte length and the topic before its data'],
      [plain(0x02, Buffer.from([0, 1])), 'binary direct_message needs a 2-byte length and the target before its data'],
      [plain(0x03, Buffer.from('f')), 'binary file_transfer frames are not accepted on this endpoint'],
      [plain(0x04, Buffer.from('s')), 'binary stream_data frames are not accepted on this endpoint'],
    ];
    for (const [bytes, message] of cases) {
      c.ws.send(bytes);
      const error = await c.nextOf('Error');
      expect(error.data, message).toEqual({ code: 400, message, details: {} });
    }
    expect(c.frames.filter((f) => f.type === 'Status' && f.data.status === 'binary_received')).toEqual([]);
    expect((await c.request('Ping', {})).type).toBe('Ack');
    await c.close();
  });

  it('a broadcast header naming a 0-byte topic is read, and the empty topic refused as a topic', async () => {
    await broker();
    const c = await as('alice');
    c.ws.send(plain(0x01, Buffer.from([0, 0])));
    expect((await c.nextOf('Error')).data).toEqual({ code: 400, message: 'invalid topic: topic is empty', details: { topics: [''] } });
    await c.close();
  });

  it('a 5-byte frame with no payload is well-formed: a file transfer of 0 bytes reaches the handler', async () => {
    const received: Buffer[] = [];
    await broker({}, envelope({ binary: { file_transfer: (_c, data) => void received.push(data) } }));
    const c = await as('alice');
    c.ws.send(plain(0x03, Buffer.alloc(0)));
    const status = await c.nextOf('Status', (f) => f.data.status === 'binary_received');
    expect(status.data.details).toEqual({ size: 0, type: 'file_transfer', checksum: sha(Buffer.alloc(0)) });
    expect(received).toEqual([Buffer.alloc(0)]);
    await c.close();
  });

  it('a broadcast whose name fills the frame exactly (no data) is published with 0 bytes', async () => {
    await broker();
    const sub = await as('bob');
    const pub = await as('alice');
    await sub.request('Subscribe', { topics: ['t/x'] });
    pub.ws.send(named(0x01, 't/x', Buffer.alloc(0)));
    const status = await pub.nextOf('Status', (f) => f.data.status === 'binary_received');
    expect(status.data.details).toEqual({ size: 0, type: 'broadcast', checksum: sha(Buffer.alloc(0)), recipients: 1 });
    await until(() => sub.binary.length === 1, 'binary delivery');
    expect(sub.binary[0]).toEqual(named(0x01, 't/x', Buffer.alloc(0)));
    await sub.close();
    await pub.close();
  });
});

describe('binary_received', () => {
  it('a file transfer and stream data reach their handlers; the Status gives the size and sha256 of the data', async () => {
    const got: string[] = [];
    await broker({}, envelope({
      binary: {
        file_transfer: (_c, data) => void got.push(`file:${data.toString()}`),
        stream_data: async (_c, data) => void got.push(`stream:${data.toString()}`),
      },
    }));
    const c = await as('alice');
    const file = Buffer.from('file-bytes');
    c.ws.send(plain(0x03, file));
    expect((await c.nextOf('Status', (f) => f.data.status === 'binary_received')).data).toEqual({
      status: 'binary_received',
      details: { size: file.length, type: 'file_transfer', checksum: sha(file) },
    });
    const chunk = Buffer.from('chunk');
    c.ws.send(plain(0x04, chunk));
    expect((await c.nextOf('Status', (f) => f.data.status === 'binary_received')).data.details).toEqual({
      size: chunk.length, type: 'stream_data', checksum: sha(chunk),
    });
    expect(got).toEqual(['file:file-bytes', 'stream:chunk']);
    await c.close();
  });

  it('a binary direct message: the Status names the connections reached and hashes the data only (not the target)', async () => {
    await broker();
    const bob = await as('bob');
    const alice = await as('alice');
    const data = Buffer.from('hello bob');
    alice.ws.send(named(0x02, 'bob', data));
    const status = await alice.nextOf('Status', (f) => f.data.status === 'binary_received');
    const [bobId] = running!.broker.connections({ principal: 'bob' }).map((x) => x.id);
    expect(status.data.details).toEqual({ size: data.length, type: 'direct_message', checksum: sha(data), delivered_to: [bobId] });
    await until(() => bob.binary.length === 1, 'binary dm');
    // The delivery names the sender in the header: [0x02][length][2-byte 5]["alice"][data].
    expect(bob.binary[0]).toEqual(named(0x02, 'alice', data));
    alice.ws.send(named(0x02, 'nobody', data));
    expect((await alice.nextOf('Error')).data).toEqual({ code: 404, message: 'User nobody not found or not connected', details: { queued: true } });
    await bob.close();
    await alice.close();
  });

});
