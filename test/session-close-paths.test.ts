/**
 * A connection's failure and close paths as a protocol author and a host see them: what a
 * protocol hook that throws turns into, which close code reaches the client when the protocol
 * closes (remapped, or one the wire refuses), when the closing hook runs, and how long a peer
 * that never answers our close frame is kept. Real sockets; a small protocol drives the session.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { BrokerError, type Connection, type Protocol } from 'switchyard';
import { ask, Client, start, startEnvelope, tokenAuth, until, type Running } from './helpers.js';
import { closePayload, frame, Raw } from './wire-raw.js';

let running: Running | undefined;
afterEach(async () => {
  await running?.stop();
  running = undefined;
});

interface Probe extends Protocol {
  /** Every error `fail` was handed, with the frame it was about. */
  failures: Array<{ error: BrokerError; data: string | undefined }>;
  /** Every `closing` call: the code (after remapping) and the reason. */
  closings: Array<[number, string]>;
  conns: Connection[];
}

/**
 * Text commands: `plain` throws an Error, `broker` a BrokerError, `close <code> <reason>` closes,
 * `close-code <code>` closes with no reason given,
 * `flood <n> <bytes>` sends n frames of that size in one turn, anything else is echoed.
 * `fail` answers `{failed: code, status}`, and throws when the frame was `fail-throws`.
 * `closing` throws when the reason is `closing-throws`.
 */
function probe(): Probe {
  const p: Probe = {
    name: 'probe',
    failures: [],
    closings: [],
    conns: [],
    open(conn) {
      p.conns.push(conn);
    },
    receive(conn, data) {
      const text = data.toString();
      const [command, arg1, ...rest] = text.split(' ');
      if (command === 'plain' || command === 'fail-throws') throw new Error('boom');
      if (command === 'broker') throw new BrokerError('SY_ERR_BAD_FRAME', 'not like that');
      if (command === 'close') return conn.close(Number(arg1), rest.join(' '));
      if (command === 'close-code') return conn.close(Number(arg1));
      if (command === 'close-twice') {
        conn.close(Number(arg1), rest.join(' '));
        conn.close(4999, 'second');
        return;
      }
      if (command === 'flood') {
        for (let i = 0; i < Number(arg1); i++) conn.sendRaw('x'.repeat(Number(rest[0])));
        return;
      }
      conn.sendRaw(`echo ${text}`);
    },
    encode: () => null,
    fail(conn, error, data) {
      p.failures.push({ error, data: data?.toString() });
      if (data?.toString() === 'fail-throws') throw new Error('fail hook broke');
      conn.send({ failed: error.code, status: error.status });
    },
    permissionLost() {},
    closing(_conn, code, reason) {
      p.closings.push([code, reason]);
      if (reason === 'closing-throws') throw new Error('closing hook broke');
    },
  };
  return p;
}

async function serve(protocol: Protocol, extra: Record<string, unknown> = {}, endpoint: Record<string, unknown> = {}): Promise<Running> {
  running = await start({ endpoints: [{ path: '/ws', protocol, ...endpoint }], authenticate: tokenAuth, heartbeat: false, ...extra });
  return running;
}

/** A `ws` client on /ws as `alice`, with every text frame it receives as a string. */
async function open(r: Running): Promise<{ client: Client; texts: string[] }> {
  const client = new Client(r.url('/ws?token=alice'));
  const texts: string[] = [];
  client.ws.on('message', (data, isBinary) => {
    if (!isBinary) texts.push(data.toString());
  });
  await client.opened;
  return { client, texts };
}

describe('a protocol hook that throws', () => {
  it('receive throwing a plain error: the protocol fails the frame with a 500, the host gets the error naming the connection', async () => {
    const p = probe();
    const r = await serve(p);
    const errors: Array<Error & { context?: Record<string, unknown> }> = [];
    r.broker.on('error', (e) => errors.push(e));
    const { client, texts } = await open(r);
    client.ws.send('plain');
    await until(() => texts.length === 1, 'the failure reply');
    expect(JSON.parse(texts[0]!)).toEqual({ failed: 'SY_ERR_INTERNAL', status: 500 });
    expect(p.failures).toHaveLength(1);
    expect(p.failures[0]!.data).toBe('plain');
    expect((p.failures[0]!.error.cause as Error).message).toBe('boom');
    expect(errors).toHaveLength(1);
    expect(errors[0]!.message).toBe('boom');
    expect(errors[0]!.context).toEqual({ connection: p.conns[0]!.id, principal: 'alice' });
    // The connection serves on.
    client.ws.send('hello');
    await until(() => texts.length === 2, 'the echo');
    expect(texts[1]).toBe('echo hello');
    await client.close();
  });

  it('receive throwing a BrokerError: handed to fail as it is, and not reported to the host', async () => {
    const p = probe();
    const r = await serve(p);
    const errors: Error[] = [];
    r.broker.on('error', (e) => errors.push(e));
    const { client, texts } = await open(r);
    client.ws.send('broker');
    await until(() => texts.length === 1, 'the failure reply');
    expect(JSON.parse(texts[0]!)).toEqual({ failed: 'SY_ERR_BAD_FRAME', status: 400 });
    expect(p.failures[0]!.error.message).toBe('not like that');
    expect(errors).toEqual([]);
    await client.close();
  });

  it('fail throwing: the connection closes 1011 "internal error" and the host gets the error', async () => {
    const p = probe();
    const r = await serve(p);
    const errors: Array<Error & { context?: Record<string, unknown> }> = [];
    r.broker.on('error', (e) => errors.push(e));
    const { client } = await open(r);
    client.ws.send('fail-throws');
    expect(await client.closed).toEqual({ code: 1011, reason: 'internal error' });
    expect(errors.map((e) => e.message)).toEqual(['boom', 'fail hook broke']);
    expect(errors[1]!.context).toEqual({ connection: p.conns[0]!.id });
    // The closing hook saw the close it announced.
    expect(p.closings).toEqual([[1011, 'internal error']]);
  });

  it('closing throwing: the close still goes out with its code and reason, and the host gets the error', async () => {
    const p = probe();
    const r = await serve(p);
    const errors: Array<Error & { context?: Record<string, unknown> }> = [];
    r.broker.on('error', (e) => errors.push(e));
    const { client } = await open(r);
    client.ws.send('close 4000 closing-throws');
    expect(await client.closed).toEqual({ code: 4000, reason: 'closing-throws' });
    expect(errors).toHaveLength(1);
    expect(errors[0]!.message).toBe('closing hook broke');
    expect(errors[0]!.context).toEqual({ during: 'closing', connection: p.conns[0]!.id });
  });
});

describe('closing with a code', () => {
  it("the endpoint's closeCodes remap the code the client and the closing hook see", async () => {
    const p = probe();
    const r = await serve(p, {}, { closeCodes: { 4003: 4401 } });
    const gone: number[] = [];
    r.broker.on('disconnect', (d) => gone.push(d.code));
    const { client } = await open(r);
    client.ws.send('close 4003 not yours');
    expect(await client.closed).toEqual({ code: 4401, reason: 'not yours' });
    expect(p.closings).toEqual([[4401, 'not yours']]);
    await until(() => gone.length === 1, 'disconnect');
    expect(gone).toEqual([4401]);
  });

  it('a close with a code alone carries an empty reason', async () => {
    const p = probe();
    const r = await serve(p);
    const { client } = await open(r);
    client.ws.send('close-code 4000');
    expect(await client.closed).toEqual({ code: 4000, reason: '' });
    expect(p.closings).toEqual([[4000, '']]);
  });

  it('a code the wire may not carry (1005) drops the connection without a close frame, reported to the host', async () => {
    const p = probe();
    const r = await serve(p);
    const errors: Error[] = [];
    r.broker.on('error', (e) => errors.push(e));
    const { client } = await open(r);
    client.ws.send('close 1005 nope');
    expect((await client.closed).code).toBe(1006);
    expect(errors.map((e) => e.message)).toEqual(['invalid close code 1005']);
    // The report names the connection, so the host can tell which one went.
    expect((errors[0] as Error & { context?: Record<string, unknown> }).context).toEqual({ connection: p.conns[0]!.id });
    await until(() => r.broker.stats().connections === 0, 'the connection gone');
  });

  it('a slow consumer is closed 1013 "slow consumer" without calling the closing hook', async () => {
    const p = probe();
    const r = await serve(p, { limits: { maxBufferedBytes: 4096 } });
    const { client, texts } = await open(r);
    // One turn queues far more than the limit: the queue overflows before it can be written.
    client.ws.send('flood 8 1024');
    expect(await client.closed).toEqual({ code: 1013, reason: 'slow consumer' });
    expect(p.closings).toEqual([]);
    expect(texts.length).toBeLessThan(8);
    expect(r.broker.stats().slowConsumersClosed).toBe(1);
  });

  it("frames that arrive after the server's close frame are not handled", async () => {
    const p = probe();
    const r = await serve(p);
    const raw = await Raw.open(r.port, '/ws?token=alice');
    raw.write(frame(1, 'first'));
    await raw.next((f) => f.opcode === 1 && f.payload.toString() === 'echo first', 'the first echo');
    raw.write(frame(1, 'close 4000 bye'));
    expect(await raw.closeFrame()).toEqual({ code: 4000, reason: 'bye' });
    raw.write(frame(1, 'after'), frame(8, closePayload(4000)));
    await raw.ended;
    expect(raw.frames.filter((f) => f.opcode === 1).map((f) => f.payload.toString())).toEqual(['echo first']);
    raw.socket.destroy();
  });

  it('a peer that never answers our close frame is dropped after limits.closeTimeoutMs, reported with the code we sent', async () => {
    const p = probe();
    const r = await serve(p, { limits: { closeTimeoutMs: 50 } });
    const gone: Array<{ code: number; reason: string }> = [];
    r.broker.on('disconnect', (d) => gone.push({ code: d.code, reason: d.reason }));
    const raw = await Raw.open(r.port, '/ws?token=alice');
    raw.write(frame(1, 'close 4000 bye'));
    expect(await raw.closeFrame()).toEqual({ code: 4000, reason: 'bye' });
    // The raw client neither answers nor ends: only the server's timer can close the socket.
    const closed = new Promise<void>((resolve) => raw.socket.once('close', () => resolve()));
    await closed;
    await until(() => gone.length === 1, 'disconnect');
    expect(gone).toEqual([{ code: 4000, reason: '' }]);
  });
});

describe('one close per connection', () => {
  it('a second close while closing changes nothing: one closing call, the first code and reason', async () => {
    const p = probe();
    const r = await serve(p);
    const gone: number[] = [];
    r.broker.on('disconnect', (d) => gone.push(d.code));
    const { client } = await open(r);
    client.ws.send('close-twice 4000 first');
    expect(await client.closed).toEqual({ code: 4000, reason: 'first' });
    expect(p.closings).toEqual([[4000, 'first']]);
    await until(() => gone.length === 1, 'disconnect');
    expect(gone).toEqual([4000]);
  });

  it('sustained rate-limit abuse closes 1008 "rate limit abuse"', async () => {
    // Abuse is judged over a window of time: the clock is faked and stepped, sockets are real.
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      const p = probe();
      const r = await serve(p, { limits: { rate: { perSecond: 0.001, burst: 1 }, rateAbuseStrikes: 3, rateAbuseWindowMs: 1000 } });
      const { client, texts } = await open(r);
      let closed = false;
      void client.closed.then(() => (closed = true));
      for (let i = 0; i < 20 && !closed; i++) {
        client.ws.send(`m${i}`);
        // Each frame gets one reply (its echo, or the protocol's rate-limit failure) until the close.
        await until(() => closed || texts.length === i + 1, `the reply to m${i}`);
        vi.advanceTimersByTime(100);
      }
      expect(await client.closed).toEqual({ code: 1008, reason: 'rate limit abuse' });
      expect(texts[0]).toBe('echo m0');
      expect(texts.slice(1).every((t) => t === JSON.stringify({ failed: 'SY_ERR_RATE_LIMITED', status: 429 }))).toBe(true);
      expect(texts.length).toBeGreaterThan(3);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('heartbeat', () => {
  it('any frame from the peer counts as alive; a peer that sends nothing and answers no ping is dropped', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    try {
      const p = probe();
      const r = await serve(p, { heartbeat: { intervalMs: 1000 } });
      // Raw clients answer no ping: one talks after each ping, the other stays silent.
      const talker = await Raw.open(r.port, '/ws?token=alice');
      const silent = await Raw.open(r.port, '/ws?token=bob');
      await until(() => p.conns.length === 2, 'both open');
      vi.advanceTimersByTime(1000); // first beat: both pinged
      await talker.next((f) => f.opcode === 9, 'the first ping');
      await silent.next((f) => f.opcode === 9, 'the first ping');
      talker.write(frame(1, 'here'));
      await talker.next((f) => f.opcode === 1 && f.payload.toString() === 'echo here', 'the echo');
      vi.advanceTimersByTime(1000);
      // The second beat: the silent one never answered and goes; the talker is pinged again.
      await silent.ended;
      await talker.next((f) => f.opcode === 9 && talker.frames.filter((g) => g.opcode === 9).length === 2, 'the second ping');
      expect(silent.frames.filter((f) => f.opcode === 8)).toEqual([]); // terminated, no close handshake
      talker.write(frame(1, 'still'));
      await talker.next((f) => f.opcode === 1 && f.payload.toString() === 'echo still', 'the talker still served');
      await until(() => r.broker.stats().connections === 1, 'only the talker left');
      talker.socket.destroy();
      silent.socket.destroy();
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('token expiry', () => {
  it('a principal whose expiresAt has passed is closed 4002 "token expired" at once', async () => {
    const p = probe();
    running = await start({
      endpoints: [{ path: '/ws', protocol: p }],
      authenticate: () => ({ id: 'late', expiresAt: Date.now() - 1 }),
      heartbeat: false,
    });
    const client = new Client(running.url('/ws?token=t'));
    expect(await client.closed).toEqual({ code: 4002, reason: 'token expired' });
  });

  it('a token that expires at the very moment the connection opens: closed 4002 at once, with no token_expiring warning before it', async () => {
    // The clock holds still, so the expiry is exactly "now" when the connection's expiry is armed.
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      const at = Date.now();
      running = await startEnvelope({ authenticate: () => ({ id: 'late', expiresAt: at }), heartbeat: false });
      const client = new Client(running.url('/ws?token=t'));
      expect(await client.closed).toEqual({ code: 4002, reason: 'token expired' });
      expect(client.frames.map((f) => f.type)).not.toContain('AuthStatus');
    } finally {
      vi.useRealTimers();
    }
  });

  it('warns at once when the warning time has already passed, then closes 4002 at expiry, also for an expiry past the timer range', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    try {
      const warned: number[] = [];
      const p = probe();
      p.tokenExpiring = (_conn, at) => warned.push(at);
      const soon = Date.now() + 30_000;
      // 30 s past the range: the relay must wake before the warning, 60 s ahead, is due.
      const far = Date.now() + 2 ** 31 - 1 + 30_000;
      running = await start({
        endpoints: [{ path: '/ws', protocol: p }],
        authenticate: ({ credentials }) => ({ id: credentials!.token, expiresAt: credentials!.token === 'soon' ? soon : far }),
        expiryWarningMs: 60_000,
        heartbeat: false,
      });
      const farClient = new Client(running.url('/ws?token=far'));
      const soonClient = new Client(running.url('/ws?token=soon'));
      await farClient.opened;
      await soonClient.opened;
      await until(() => p.conns.length === 2, 'both open');
      // The warning is due already (30 s left, warned 60 s ahead): it fires on the next timer turn.
      vi.advanceTimersByTime(0);
      await until(() => warned.length === 1, 'the warning');
      expect(warned).toEqual([soon]);
      vi.advanceTimersByTime(30_000 - 1);
      // A round trip: had the close fired, no echo would come back.
      expect(await ask(soonClient, 'before expiry')).toBe('echo before expiry');
      vi.advanceTimersByTime(1);
      expect(await soonClient.closed).toEqual({ code: 4002, reason: 'token expired' });
      // The far expiry is past setTimeout's range (a timer that long would fire at once): it is
      // still kept, warned 60 s ahead and closed 4002 at the millisecond.
      vi.advanceTimersByTime(far - 60_000 - Date.now() - 1);
      expect(await ask(farClient, 'still here')).toBe('echo still here');
      expect(warned).toEqual([soon]);
      vi.advanceTimersByTime(1);
      await until(() => warned.length === 2, 'the far warning');
      expect(warned).toEqual([soon, far]);
      vi.advanceTimersByTime(60_000 - 1);
      expect(await ask(farClient, 'last')).toBe('echo last');
      vi.advanceTimersByTime(1);
      expect(await farClient.closed).toEqual({ code: 4002, reason: 'token expired' });
      expect(warned).toEqual([soon, far]);
    } finally {
      vi.useRealTimers();
    }
  });

  it('an expiry several timer ranges ahead (about 75 days) is kept across relays, and a refresh to a nearer one replaces it', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    try {
      const warned: number[] = [];
      const p = probe();
      p.tokenExpiring = (_conn, at) => warned.push(at);
      const far = Date.now() + 3 * 2 ** 31 + 5_000;
      let nearer = 0;
      running = await start({
        endpoints: [{ path: '/ws', protocol: p }],
        authenticate: ({ credentials }) => ({ id: 'u', expiresAt: credentials!.token === 'near' ? nearer : far }),
        expiryWarningMs: 60_000,
        heartbeat: false,
      });
      const a = new Client(running.url('/ws?token=far'));
      const b = new Client(running.url('/ws?token=far'));
      await a.opened;
      await b.opened;
      await until(() => p.conns.length === 2, 'both open');
      // b's token is refreshed mid-way to an expiry a day away: the pending relay gives way to it.
      vi.advanceTimersByTime(2 ** 31 + 1_000);
      expect(await ask(b, 'after one relay')).toBe('echo after one relay');
      nearer = Date.now() + 24 * 3600_000;
      await p.conns[1]!.refresh('near');
      vi.advanceTimersByTime(24 * 3600_000);
      expect(await b.closed).toEqual({ code: 4002, reason: 'token expired' });
      expect(warned).toEqual([nearer]);
      // a keeps its far expiry through the relays: open a millisecond before, closed at it.
      vi.advanceTimersByTime(far - Date.now() - 1);
      expect(await ask(a, 'last')).toBe('echo last');
      expect(warned).toEqual([nearer, far]);
      vi.advanceTimersByTime(1);
      expect(await a.closed).toEqual({ code: 4002, reason: 'token expired' });
    } finally {
      vi.useRealTimers();
    }
  });

  it('a refresh to a token without expiry disarms the old expiry: no warning, no close', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    try {
      const warned: number[] = [];
      const p = probe();
      p.tokenExpiring = (_conn, at) => warned.push(at);
      const soon = Date.now() + 120_000;
      running = await start({
        endpoints: [{ path: '/ws', protocol: p }],
        authenticate: ({ credentials }) => (credentials!.token === 'soon' ? { id: 'u', expiresAt: soon } : { id: 'u' }),
        expiryWarningMs: 60_000,
        heartbeat: false,
      });
      const c = new Client(running.url('/ws?token=soon'));
      await c.opened;
      await until(() => p.conns.length === 1, 'open');
      expect((await p.conns[0]!.refresh('forever')).expiresAt).toBeUndefined();
      vi.advanceTimersByTime(0);
      vi.advanceTimersByTime(10 * 60_000);
      expect(await ask(c, 'still here')).toBe('echo still here');
      expect(warned).toEqual([]);
      await c.close();
    } finally {
      vi.useRealTimers();
    }
  });

  it('a refresh replaces a pending relay: one warning and one close for the new expiry, none left from the old', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    try {
      const warned: number[] = [];
      const p = probe();
      p.tokenExpiring = (_conn, at) => warned.push(at);
      // The old expiry's relay would wake at 2^31-1 ms; the new expiry is an hour after that.
      const far = Date.now() + 2 * (2 ** 31 - 1);
      const nearer = Date.now() + 2 ** 31 - 1 + 3_600_000;
      running = await start({
        endpoints: [{ path: '/ws', protocol: p }],
        authenticate: ({ credentials }) => ({ id: 'u', expiresAt: credentials!.token === 'near' ? nearer : far }),
        expiryWarningMs: 60_000,
        heartbeat: false,
      });
      const c = new Client(running.url('/ws?token=far'));
      await c.opened;
      await until(() => p.conns.length === 1, 'open');
      expect((await p.conns[0]!.refresh('near')).expiresAt).toBe(nearer);
      vi.advanceTimersByTime(nearer - 60_000 - Date.now());
      await until(() => warned.length === 1, 'the warning');
      vi.advanceTimersByTime(60_000 - 1);
      expect(await ask(c, 'last')).toBe('echo last');
      vi.advanceTimersByTime(1);
      expect(await c.closed).toEqual({ code: 4002, reason: 'token expired' });
      expect(warned).toEqual([nearer]);
    } finally {
      vi.useRealTimers();
    }
  });
});
