/**
 * The opening handshake at its edges, from a raw TCP client: header values a compliant client
 * may send (any case, version 8, a `Token <t>` protocol header), keys one character off, what
 * the 101 says when nothing was negotiated, and frames sent in the same packet as the request.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { envelope } from 'switchyard';
import { start, startEnvelope, tokenAuth, type Running } from './helpers.js';
import { frame, json, KEY, Raw, request, upgradeRequest } from './wire-raw.js';

let running: Running | undefined;
afterEach(async () => {
  await running?.stop();
  running = undefined;
});

async function status(r: Running, lines: string[]): Promise<{ status: number; headers: Record<string, string> }> {
  const { socket, status, headers } = await request(r.port, lines);
  socket.destroy();
  return { status, headers };
}

const withKey = (key: string) => upgradeRequest('/ws?token=a').map((l) => l.replace(KEY, key));

describe('opening handshake edges', () => {
  it('takes the Upgrade token in any case and version 8 as well as 13', async () => {
    const r = (running = await startEnvelope());
    expect((await status(r, upgradeRequest('/ws?token=a').map((l) => l.replace('Upgrade: websocket', 'Upgrade: WebSocket')))).status).toBe(101);
    expect((await status(r, upgradeRequest('/ws?token=a').map((l) => l.replace('Version: 13', 'Version: 8')))).status).toBe(101);
  });

  it('takes a key of 22 base64 characters and "==" only, with + and / among them', async () => {
    const r = (running = await startEnvelope());
    expect((await status(r, withKey('ab+/cdefghijklmnopqrst=='))).status).toBe(101);
    expect((await status(r, withKey('0123456789ABCDEFGHIJKL=='))).status).toBe(101);
    for (const key of [
      'A' + KEY, // one character too many in front
      KEY + 'A', // and behind
      'dGhlIHNhbXBsZSBub25jZQ=', // one "=" short
      'dGhlIHNhbXBsZSBub25jZ==', // 21 characters
      'dGhlIHNhbXBsZSBub25j!Q==', // not base64
    ]) {
      expect((await status(r, withKey(key))).status, key).toBe(400);
    }
    const noKey = upgradeRequest('/ws?token=a').filter((l) => !l.startsWith('Sec-WebSocket-Key'));
    expect((await status(r, noKey)).status).toBe(400);
    const noVersion = upgradeRequest('/ws?token=a').filter((l) => !l.startsWith('Sec-WebSocket-Version'));
    expect((await status(r, noVersion)).status).toBe(400);
  });

  it('answers 400 to a request without an Upgrade header that the host hands to handleUpgrade', async () => {
    // Node emits 'upgrade' only with an Upgrade header; a host may route any request to the broker.
    let handled: unknown;
    const r: Running = (running = await start({ endpoints: [{ path: '/ws', protocol: envelope() }], authenticate: tokenAuth }, (req, res) => {
      try {
        handled = r.broker.handleUpgrade(req, req.socket, Buffer.alloc(0));
      } catch (err) {
        handled = err;
        res.writeHead(500, { connection: 'close' }).end();
      }
    }));
    const { socket, status, rest } = await request(r.port, upgradeRequest('/ws?token=a').filter((l) => !l.startsWith('Upgrade:')));
    const body: Buffer[] = [rest];
    socket.on('data', (c: Buffer) => body.push(c));
    socket.resume();
    await new Promise((resolve) => socket.once('close', resolve));
    expect(handled).toBe(true);
    expect(status).toBe(400);
    expect(Buffer.concat(body).toString()).toBe('invalid Upgrade header\n');
  });

  it('names no subprotocol and no extension in the 101 when none was agreed', async () => {
    const r = (running = await startEnvelope());
    const { status: code, headers } = await status(r, upgradeRequest('/ws?token=a'));
    expect(code).toBe(101);
    expect(headers['sec-websocket-protocol']).toBeUndefined();
    expect(headers['sec-websocket-extensions']).toBeUndefined();
    expect(headers.connection).toBe('Upgrade');
  });

  it('takes seed 004\'s "Token <t>" / "Bearer <t>" protocol header only where subprotocol credentials are read', async () => {
    const r = (running = await startEnvelope());
    for (const value of ['Token dev1', 'bearer   dev2', 'BEARER dev3']) {
      const { status: code } = await status(r, upgradeRequest('/ws', [`Sec-WebSocket-Protocol: ${value}`]));
      expect(code, value).toBe(101);
    }
    // Two tokens, text before the scheme, a second value after a comma, or no token: not the
    // scheme, and not a protocol list either.
    for (const value of ['Token a b', 'xToken a', 'Token a, b c', 'Token a,b']) {
      const { status: code } = await status(r, upgradeRequest('/ws?token=q', [`Sec-WebSocket-Protocol: ${value}`]));
      expect(code, value).toBe(400);
    }
    await r.stop();
    running = await start({ endpoints: [{ path: '/ws', protocol: envelope(), credentials: ['query'] }], authenticate: tokenAuth });
    const { status: code } = await status(running, upgradeRequest('/ws?token=q', ['Sec-WebSocket-Protocol: Token dev1']));
    expect(code).toBe(400);
  });

  it('reads frames the client sent in the same packet as its request', async () => {
    const r = (running = await startEnvelope());
    // The request and a Ping frame in one write: the frame is the upgrade's `head`.
    const head = Buffer.concat([Buffer.from(upgradeRequest('/ws?token=a').join('\r\n') + '\r\n\r\n'), frame(1, json({ type: 'Ping', data: {}, id: 'early' }))]);
    const raw = await new Promise<Raw>((resolve, reject) => {
      const s = net.connect(r.port, '127.0.0.1');
      let buf = Buffer.alloc(0);
      const onData = (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        const end = buf.indexOf('\r\n\r\n');
        if (end === -1) return;
        s.off('data', onData);
        resolve(new Raw(s, buf.subarray(end + 4)));
      };
      s.on('data', onData);
      s.once('error', reject);
      s.write(head);
    });
    const ack = JSON.parse((await raw.text('Ack')).payload.toString());
    expect(ack.data.message_id).toBe('early');
    raw.socket.destroy();
  });
});
