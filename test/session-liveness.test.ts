/**
 * What keeps a connection alive and what ends it, as a client and a protocol author see them:
 * a client that only answers pings is kept; the token-expiry warning and close come at their
 * moment (and once, however often the token is refreshed to the same expiry); frames that
 * arrive after the server's close frame, or a request that fails after the client left, never
 * reach the protocol. Real sockets; clocks are faked where the behaviour is about time.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { BrokerError, type Connection, type Protocol } from 'switchyard';
import { ask, Client, expiringAuth, start, tokenAuth, until, type Running } from './helpers.js';
import { closePayload, frame, Raw } from './wire-raw.js';

let running: Running | undefined;
afterEach(async () => {
  vi.useRealTimers();
  await running?.stop();
  running = undefined;
});

interface Probe extends Protocol {
  /** Every frame handed to `receive`, as text. */
  received: string[];
  failures: string[];
  warnings: number[];
  conns: Connection[];
  /** Rejects the pending `slow` request. */
  rejectSlow?: (err: Error) => void;
}

/**
 * Text commands: `refresh <token>` refreshes the token and answers `refreshed`, `close <code>`
 * closes, `last-words` sends a frame and closes 4000 in the same turn, `binary` sends a binary frame, `slow` returns a promise the test rejects; anything else is echoed.
 */
function probe(): Probe {
  const p: Probe = {
    name: 'probe',
    received: [],
    failures: [],
    warnings: [],
    conns: [],
    open(conn) {
      p.conns.push(conn);
    },
    receive(conn, data) {
      const text = data.toString();
      p.received.push(text);
      const [command, arg] = text.split(' ');
      if (command === 'refresh') {
        return conn.refresh(arg!).then(
          () => conn.sendRaw('refreshed'),
          (err: BrokerError) => conn.sendRaw(`refused ${err.code}`),
        );
      }
      if (command === 'close') return conn.close(Number(arg), 'bye');
      if (command === 'binary') return conn.sendRaw(Buffer.from([1, 2, 3]));
      if (command === 'last-words') {
        conn.sendRaw('last words');
        return conn.close(4000, 'bye');
      }
      if (command === 'slow') return new Promise<void>((_resolve, reject) => (p.rejectSlow = reject));
      conn.sendRaw(`echo ${text}`);
    },
    encode: () => null,
    fail(conn, error, data) {
      p.failures.push(`${error.code} ${data?.toString()}`);
      conn.send({ failed: error.code });
    },
    permissionLost() {},
    tokenExpiring(_conn, at) {
      p.warnings.push(at);
    },
  };
  return p;
}

describe('heartbeat', () => {
  it('a client that answers every ping but sends nothing else is kept; one that answers none is dropped', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const p = probe();
    running = await start({ endpoints: [{ path: '/ws', protocol: p }], authenticate: tokenAuth, heartbeat: { intervalMs: 1000 } });
    const quiet = new Client(running.url('/ws?token=quiet'));
    const deaf = new Client(running.url('/ws?token=deaf'), undefined, { autoPong: false });
    await quiet.opened;
    await deaf.opened;
    await until(() => p.conns.length === 2, 'both open');
    // A pong is on the wire when ws reports the ping; a server ping answered by ours (a raw
    // round trip on the same socket) tells that the server has read it.
    let pings = 0;
    quiet.ws.on('ping', () => pings++);
    for (let beat = 1; beat <= 3; beat++) {
      vi.advanceTimersByTime(1000);
      await until(() => pings === beat, `ping ${beat}`);
      const pong = new Promise<void>((resolve) => quiet.ws.once('pong', () => resolve()));
      quiet.ws.ping();
      await pong;
    }
    expect(await deaf.closed).toEqual({ code: 1006, reason: '' });
    expect(quiet.ws.readyState).toBe(WebSocket.OPEN);
    expect(p.received).toEqual([]); // kept by its pongs alone
    expect(running.broker.stats().connections).toBe(1);
    await quiet.close();
  });
});

describe('token expiry', () => {
  it('warns expiryWarningMs before expiresAt, not earlier, and closes 4002 at expiresAt, not earlier', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const p = probe();
    const at = Date.now() + 100_000;
    running = await start({ endpoints: [{ path: '/ws', protocol: p }], authenticate: expiringAuth, expiryWarningMs: 40_000, heartbeat: false });
    const client = new Client(running.url(`/ws?token=${encodeURIComponent(`ann@${at}`)}`));
    await client.opened;
    await until(() => p.conns.length === 1, 'open');
    vi.advanceTimersByTime(60_000 - 1);
    expect(await ask(client, 'a')).toBe('echo a'); // a round trip: a warning due by now would have run
    expect(p.warnings).toEqual([]);
    vi.advanceTimersByTime(1);
    await until(() => p.warnings.length === 1, 'the warning');
    expect(p.warnings).toEqual([at]);
    vi.advanceTimersByTime(40_000 - 1);
    expect(await ask(client, 'b')).toBe('echo b');
    vi.advanceTimersByTime(1);
    expect(await client.closed).toEqual({ code: 4002, reason: 'token expired' });
    expect(p.warnings).toEqual([at]);
  });

  it('a refresh to the same expiry warns once; a refresh to a later one moves the warning and the close', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const p = probe();
    const first = Date.now() + 100_000;
    const later = first + 50_000;
    running = await start({ endpoints: [{ path: '/ws', protocol: p }], authenticate: expiringAuth, expiryWarningMs: 40_000, heartbeat: false });
    const client = new Client(running.url(`/ws?token=${encodeURIComponent(`ann@${first}`)}`));
    await client.opened;
    await until(() => p.conns.length === 1, 'open');
    vi.advanceTimersByTime(60_000);
    await until(() => p.warnings.length === 1, 'the first warning');
    expect(await ask(client, `refresh ann@${first}`)).toBe('refreshed');
    vi.advanceTimersByTime(0);
    expect(await ask(client, 'a')).toBe('echo a');
    expect(p.warnings).toEqual([first]); // not warned again for the same expiry
    expect(await ask(client, `refresh ann@${later}`)).toBe('refreshed');
    vi.advanceTimersByTime(40_000);
    // Past the first expiry: its close was cleared with its timers.
    expect(await ask(client, 'b')).toBe('echo b');
    expect(p.warnings).toEqual([first]);
    vi.advanceTimersByTime(10_000);
    await until(() => p.warnings.length === 2, 'the second warning');
    expect(p.warnings).toEqual([first, later]);
    vi.advanceTimersByTime(40_000);
    expect(await client.closed).toEqual({ code: 4002, reason: 'token expired' });
  });

  it('a client that leaves before its warning is never warned', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const p = probe();
    const at = Date.now() + 100_000;
    running = await start({ endpoints: [{ path: '/ws', protocol: p }], authenticate: expiringAuth, expiryWarningMs: 40_000, heartbeat: false });
    const gone: number[] = [];
    running.broker.on('disconnect', (d) => gone.push(d.code));
    const client = new Client(running.url(`/ws?token=${encodeURIComponent(`ann@${at}`)}`));
    await client.opened;
    await until(() => p.conns.length === 1, 'open');
    client.ws.terminate();
    await until(() => gone.length === 1, 'disconnect');
    vi.advanceTimersByTime(200_000);
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    expect(p.warnings).toEqual([]);
  });

  it('a principal without expiresAt is never warned nor closed for expiry', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const p = probe();
    running = await start({ endpoints: [{ path: '/ws', protocol: p }], authenticate: tokenAuth, expiryWarningMs: 40_000, heartbeat: false });
    const client = new Client(running.url('/ws?token=ann'));
    await client.opened;
    await until(() => p.conns.length === 1, 'open');
    vi.advanceTimersByTime(30 * 24 * 3600_000);
    expect(await ask(client, 'a')).toBe('echo a');
    expect(p.warnings).toEqual([]);
    await client.close();
  });
});

describe('after the close', () => {
  it('a Buffer the protocol sends raw reaches the client as a binary frame', async () => {
    const p = probe();
    running = await start({ endpoints: [{ path: '/ws', protocol: p }], authenticate: tokenAuth, heartbeat: false });
    const client = new Client(running.url('/ws?token=alice'));
    await client.opened;
    const got = new Promise<[Buffer, boolean]>((resolve) => client.ws.once('message', (d, isBinary) => resolve([d as Buffer, isBinary])));
    client.ws.send('binary');
    expect(await got).toEqual([Buffer.from([1, 2, 3]), true]);
    await client.close();
  });

  it('a frame the protocol sends just before it closes reaches the client before the close frame', async () => {
    const p = probe();
    running = await start({ endpoints: [{ path: '/ws', protocol: p }], authenticate: tokenAuth, heartbeat: false });
    const client = new Client(running.url('/ws?token=alice'));
    const texts: string[] = [];
    client.ws.on('message', (d) => texts.push(d.toString()));
    await client.opened;
    client.ws.send('last-words');
    expect(await client.closed).toEqual({ code: 4000, reason: 'bye' });
    expect(texts).toEqual(['last words']);
  });

  it("frames that arrive after the server's close frame never reach the protocol", async () => {
    const p = probe();
    running = await start({ endpoints: [{ path: '/ws', protocol: p }], authenticate: tokenAuth, heartbeat: false });
    const raw = await Raw.open(running.port, '/ws?token=alice');
    raw.write(frame(1, 'close 4000'));
    expect(await raw.closeFrame()).toEqual({ code: 4000, reason: 'bye' });
    raw.write(frame(1, 'late one'), frame(1, 'late two'), frame(8, closePayload(4000)));
    await raw.ended;
    expect(p.received).toEqual(['close 4000']);
    raw.socket.destroy();
  });

  it('a request that fails after its client left is not handed to fail nor reported', async () => {
    const p = probe();
    const errors: unknown[] = [];
    running = await start({ endpoints: [{ path: '/ws', protocol: p }], authenticate: tokenAuth, heartbeat: false });
    running.broker.on('error', (e) => errors.push(e));
    const gone: number[] = [];
    running.broker.on('disconnect', (d) => gone.push(d.code));
    const client = new Client(running.url('/ws?token=alice'));
    await client.opened;
    client.ws.send('slow');
    await until(() => p.rejectSlow !== undefined, 'the slow request');
    client.ws.terminate();
    await until(() => gone.length === 1, 'disconnect');
    p.rejectSlow!(new Error('backend gone'));
    // The rejection is handled on a later turn: give it a few.
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    expect(p.failures).toEqual([]);
    expect(errors).toEqual([]);
  });
});
