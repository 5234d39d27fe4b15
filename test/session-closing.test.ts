/**
 * A connection between the server's close frame and the socket's end (the close handshake), as a
 * host and a protocol author see it: it is no longer one the host can close or subscribe, the
 * heartbeat does not drop it while the peer takes its time to answer, its token expiry is no
 * longer armed nor warned, and frames that arrived before the close still reach the protocol in
 * order. And the token-expiry timers at the edge of setTimeout's range. Real sockets; raw
 * clients that do not answer our close frame hold a connection in its close handshake.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { type Connection, type Protocol } from 'switchyard';
import { ask, Client, expiringAuth, start, tokenAuth, until, type Running } from './helpers.js';
import { closePayload, frame, Raw } from './wire-raw.js';

let running: Running | undefined;
/** Raw clients of the test: gone before the broker closes, which would wait closeTimeoutMs on one that never answers. */
const raws: Raw[] = [];
afterEach(async () => {
  vi.useRealTimers();
  for (const raw of raws.splice(0)) raw.socket.destroy();
  await running?.stop();
  running = undefined;
});

async function rawClient(r: Running, path: string): Promise<Raw> {
  const raw = await Raw.open(r.port, path);
  raws.push(raw);
  return raw;
}

interface Probe extends Protocol {
  /** Every frame handed to `receive`, as text. */
  received: string[];
  /** Every `tokenExpiring` call: the expiry it warned of. */
  warnings: number[];
  conns: Connection[];
  /** Settles the pending `slow` request. */
  finishSlow?: () => void;
}

/**
 * open() closes 4003 'not today' a principal named `refused`. Text commands: `close <code>` closes
 * with reason 'bye', `slow` returns a promise the test settles; anything else is echoed.
 */
function probe(): Probe {
  const p: Probe = {
    name: 'probe',
    received: [],
    warnings: [],
    conns: [],
    open(conn) {
      p.conns.push(conn);
      if (conn.principal.id === 'refused') conn.close(4003, 'not today');
    },
    receive(conn, data) {
      const text = data.toString();
      p.received.push(text);
      const [command, arg] = text.split(' ');
      if (command === 'close') return conn.close(Number(arg), 'bye');
      if (command === 'slow') return new Promise<void>((resolve) => (p.finishSlow = resolve));
      conn.sendRaw(`echo ${text}`);
    },
    encode: () => null,
    fail() {},
    permissionLost() {},
    tokenExpiring(_conn, at) {
      p.warnings.push(at);
    },
  };
  return p;
}

describe('a connection in its close handshake', () => {
  it('is not open for the host: disconnect returns false and subscribe refuses it, until the peer answers', async () => {
    const p = probe();
    running = await start({ endpoints: [{ path: '/ws', protocol: p }], authenticate: tokenAuth, heartbeat: false, limits: { closeTimeoutMs: 30_000 } });
    const broker = running.broker;
    const gone: Array<{ code: number; reason: string }> = [];
    broker.on('disconnect', (d) => gone.push({ code: d.code, reason: d.reason }));
    const raw = await rawClient(running, '/ws?token=alice');
    await until(() => p.conns.length === 1, 'open');
    const id = p.conns[0]!.id;
    expect(broker.disconnect(id, 4000, 'first')).toBe(true);
    expect(await raw.closeFrame()).toEqual({ code: 4000, reason: 'first' });
    // The raw client has not answered: the connection is still on this node, but closing.
    expect(broker.connectionIds('alice')).toEqual([id]);
    expect(broker.disconnect(id, 4001, 'second')).toBe(false);
    await expect(broker.subscribe(id, ['news'])).rejects.toMatchObject({ code: 'SY_ERR_NOT_FOUND' });
    expect(() => broker.unsubscribe(id, ['news'])).toThrow(/not open on this node/);
    raw.write(frame(8, closePayload(4000)));
    await raw.ended;
    await until(() => gone.length === 1, 'disconnect');
    expect(gone).toEqual([{ code: 4000, reason: '' }]);
    expect(raw.frames.filter((f) => f.opcode === 8)).toHaveLength(1); // the second disconnect sent nothing
  });

  it('is not dropped by the heartbeat while the peer takes its time to answer our close frame', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const p = probe();
    running = await start({ endpoints: [{ path: '/ws', protocol: p }], authenticate: tokenAuth, heartbeat: { intervalMs: 1000 }, limits: { closeTimeoutMs: 30_000 } });
    const gone: Array<{ code: number; reason: string }> = [];
    running.broker.on('disconnect', (d) => gone.push({ code: d.code, reason: d.reason }));
    // A raw client answers no ping: only the close handshake keeps it from being dropped as dead.
    const raw = await rawClient(running, '/ws?token=alice');
    raw.write(frame(1, 'close 4000'));
    expect(await raw.closeFrame()).toEqual({ code: 4000, reason: 'bye' });
    // Three beats: an open connection that answers no ping is dropped at the second.
    for (let beat = 0; beat < 3; beat++) vi.advanceTimersByTime(1000);
    expect(raw.frames.filter((f) => f.opcode === 9)).toEqual([]); // no ping after our close frame
    raw.write(frame(8, closePayload(4000, 'took my time')));
    await raw.ended;
    await until(() => gone.length === 1, 'disconnect');
    // The peer's answer, not a drop (which reports the code we sent and no reason).
    expect(gone).toEqual([{ code: 4000, reason: 'took my time' }]);
  });

  it('frames that arrived before the close, waiting behind a slow one, are still handed to the protocol in order', async () => {
    const p = probe();
    running = await start({ endpoints: [{ path: '/ws', protocol: p }], authenticate: tokenAuth, heartbeat: false, limits: { closeTimeoutMs: 30_000 } });
    const raw = await rawClient(running, '/ws?token=alice');
    raw.write(frame(1, 'slow'), frame(1, 'queued one'), frame(1, 'queued two'));
    await until(() => p.finishSlow !== undefined, 'the slow request');
    // Behind the slow request: both arrived (the inbox holds them), none handled yet.
    await new Promise((r) => setImmediate(r));
    expect(p.received).toEqual(['slow']);
    expect(running.broker.disconnect(p.conns[0]!.id, 4000, 'going')).toBe(true);
    expect(await raw.closeFrame()).toEqual({ code: 4000, reason: 'going' });
    raw.write(frame(1, 'after the close'));
    p.finishSlow!();
    await until(() => p.received.length === 3, 'the queued frames');
    raw.write(frame(8, closePayload(4000)));
    await raw.ended;
    expect(p.received).toEqual(['slow', 'queued one', 'queued two']);
  });
});

describe('after the socket is gone', () => {
  it('frames that waited behind a slow one when the client went away never reach the protocol', async () => {
    const p = probe();
    running = await start({ endpoints: [{ path: '/ws', protocol: p }], authenticate: tokenAuth, heartbeat: false });
    const gone: number[] = [];
    running.broker.on('disconnect', (d) => gone.push(d.code));
    const raw = await rawClient(running, '/ws?token=alice');
    raw.write(frame(1, 'slow'), frame(1, 'queued one'), frame(1, 'queued two'));
    await until(() => p.finishSlow !== undefined, 'the slow request');
    raw.socket.destroy();
    await until(() => gone.length === 1, 'disconnect');
    p.finishSlow!();
    // The settled request would hand on what waited behind it on a later turn: give it a few.
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    expect(p.received).toEqual(['slow']);
  });
});

describe('token expiry and the close', () => {
  it('a connection its protocol closes in open() is not warned of its token expiry during the close handshake', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const p = probe();
    const at = Date.now() + 30_000;
    running = await start({ endpoints: [{ path: '/ws', protocol: p }], authenticate: expiringAuth, expiryWarningMs: 60_000, heartbeat: false, limits: { closeTimeoutMs: 30_000 } });
    const gone: number[] = [];
    running.broker.on('disconnect', (d) => gone.push(d.code));
    // An open one, warned at once (30 s left, warned 60 s ahead), tells when the warning is due.
    const open = new Client(running.url(`/ws?token=${encodeURIComponent(`ann@${at}`)}`));
    const raw = await rawClient(running, `/ws?token=${encodeURIComponent(`refused@${at}`)}`);
    expect(await raw.closeFrame()).toEqual({ code: 4003, reason: 'not today' });
    await open.opened;
    await until(() => p.conns.length === 2, 'both open');
    vi.advanceTimersByTime(1000);
    await until(() => p.warnings.length > 0, 'the open connection warned');
    expect(await ask(open, 'a')).toBe('echo a');
    expect(p.warnings).toEqual([at]);
    raw.write(frame(8, closePayload(4003)));
    await raw.ended;
    await until(() => gone.length === 1, 'disconnect');
    expect(p.warnings).toEqual([at]);
    await open.close();
  });

  it('a warning that comes due while the connection is in its close handshake is not handed to the protocol', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const p = probe();
    const at = Date.now() + 100_000;
    running = await start({ endpoints: [{ path: '/ws', protocol: p }], authenticate: expiringAuth, expiryWarningMs: 40_000, heartbeat: false, limits: { closeTimeoutMs: 300_000 } });
    const gone: Array<{ code: number; reason: string }> = [];
    running.broker.on('disconnect', (d) => gone.push({ code: d.code, reason: d.reason }));
    const raw = await rawClient(running, `/ws?token=${encodeURIComponent(`ann@${at}`)}`);
    await until(() => p.conns.length === 1, 'open');
    raw.write(frame(1, 'close 4000'));
    expect(await raw.closeFrame()).toEqual({ code: 4000, reason: 'bye' });
    // Past the warning and the expiry, the peer still not answering: neither the warning nor a second close.
    vi.advanceTimersByTime(100_000);
    raw.write(frame(8, closePayload(4000, 'late')));
    await raw.ended;
    await until(() => gone.length === 1, 'disconnect');
    expect(gone).toEqual([{ code: 4000, reason: 'late' }]);
    expect(p.warnings).toEqual([]);
    expect(raw.frames.filter((f) => f.opcode === 8)).toHaveLength(1);
  });

  describe("at setTimeout's largest delay (2^31 - 1 ms, about 24.8 days)", () => {
    const edge = 2 ** 31 - 1;

    it('an expiry exactly that far ahead closes 4002 at it', async () => {
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
      const p = probe();
      const at = Date.now() + edge;
      running = await start({ endpoints: [{ path: '/ws', protocol: p }], authenticate: expiringAuth, expiryWarningMs: 40_000, heartbeat: false });
      const client = new Client(running.url(`/ws?token=${encodeURIComponent(`ann@${at}`)}`));
      await client.opened;
      await until(() => p.conns.length === 1, 'open');
      // Fake timers run what comes due inside advanceTimersByTime: the warning, the close frame's write.
      vi.advanceTimersByTime(edge - 40_000);
      expect(p.warnings).toEqual([at]);
      vi.advanceTimersByTime(40_000 - 1);
      expect(await ask(client, 'a')).toBe('echo a');
      vi.advanceTimersByTime(1);
      // Closed, not echoed: the close frame was written before this frame is read.
      const after = await Promise.race([client.closed, ask(client, 'b')]);
      expect(after).toEqual({ code: 4002, reason: 'token expired' });
    });

    it('a warning exactly that far ahead is given at it', async () => {
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
      const p = probe();
      const at = Date.now() + edge + 40_000;
      running = await start({ endpoints: [{ path: '/ws', protocol: p }], authenticate: expiringAuth, expiryWarningMs: 40_000, heartbeat: false });
      const client = new Client(running.url(`/ws?token=${encodeURIComponent(`ann@${at}`)}`));
      await client.opened;
      await until(() => p.conns.length === 1, 'open');
      vi.advanceTimersByTime(edge - 1);
      expect(await ask(client, 'a')).toBe('echo a'); // a round trip: a warning due by now would have run
      expect(p.warnings).toEqual([]);
      vi.advanceTimersByTime(1);
      expect(p.warnings).toEqual([at]);
      await client.close();
    });
  });
});
