/** `allowedOrigins`: checked before `authenticate`, refused with HTTP 403 before the upgrade. */
import { afterEach, describe, expect, it } from 'vitest';
import { createBroker, envelope, type Handshake } from 'switchyard';
import { tryConnect } from './adapter-helpers.js';
import { start, type Running } from './helpers.js';

describe('allowedOrigins', () => {
  let running: Running | undefined;
  afterEach(async () => {
    await running?.stop();
    running = undefined;
  });

  async function mount(): Promise<{ running: Running; seen: Handshake[] }> {
    const seen: Handshake[] = [];
    running = await start({
      endpoints: [
        { path: '/list', protocol: envelope(), allowedOrigins: ['https://app.example.com', 'http://localhost:3000/'] },
        { path: '/same', protocol: envelope(), allowedOrigins: 'same-origin' },
        { path: '/fn', protocol: envelope(), reject: 'http', allowedOrigins: (origin) => origin?.endsWith('.example.com') === true },
        { path: '/any', protocol: envelope() },
      ],
      heartbeat: false,
      // Cookie-style: everyone who gets this far is let in, so only the Origin check can refuse.
      authenticate: (h) => (seen.push(h), { id: 'cookie-user' }),
    });
    return { running, seen };
  }

  it('lets listed origins in (case and trailing slash aside) and refuses others with 403 before authenticate', async () => {
    const { running, seen } = await mount();
    const ok = await tryConnect(running.url('/list'), { origin: 'https://APP.example.com' });
    expect(ok.kind).toBe('open');
    if (ok.kind === 'open') ok.ws.close();
    expect((await tryConnect(running.url('/list'), { origin: 'http://localhost:3000' })).kind).toBe('open');
    const refused = await tryConnect(running.url('/list'), { origin: 'https://evil.example.net' });
    expect(refused).toEqual({ kind: 'http', status: 403, body: 'origin not allowed' });
    expect(seen).toHaveLength(2);
    expect(running.broker.stats().rejectedHandshakes).toBe(1);
  });

  it("'same-origin' compares the Origin's host with the Host header", async () => {
    const { running } = await mount();
    const same = await tryConnect(running.url('/same'), { origin: `http://127.0.0.1:${running.port}` });
    expect(same.kind).toBe('open');
    if (same.kind === 'open') same.ws.close();
    expect(await tryConnect(running.url('/same'), { origin: 'http://127.0.0.1:1' })).toMatchObject({ kind: 'http', status: 403 });
    expect(await tryConnect(running.url('/same'), { origin: 'null' })).toMatchObject({ kind: 'http', status: 403 });
  });

  it('a predicate decides, including requests with no Origin (non-browser clients)', async () => {
    const { running, seen } = await mount();
    expect(await tryConnect(running.url('/fn'))).toMatchObject({ kind: 'http', status: 403 });
    const ok = await tryConnect(running.url('/fn'), { origin: 'https://dash.example.com' });
    expect(ok.kind).toBe('open');
    if (ok.kind === 'open') ok.ws.close();
    expect(seen.map((h) => h.path)).toEqual(['/fn']);
  });

  it('without an Origin header the list and same-origin pass (not a browser page); without the option any origin passes', async () => {
    const { running } = await mount();
    for (const path of ['/list', '/same']) {
      const outcome = await tryConnect(running.url(path));
      expect(outcome.kind, path).toBe('open');
      if (outcome.kind === 'open') outcome.ws.close();
    }
    const any = await tryConnect(running.url('/any'), { origin: 'https://evil.example.net' });
    expect(any.kind).toBe('open');
    if (any.kind === 'open') any.ws.close();
  });

  it('a bad value fails at createBroker', () => {
    expect(() =>
      createBroker({ endpoints: [{ path: '/ws', protocol: envelope(), allowedOrigins: 'any' as never }], authenticate: () => null }),
    ).toThrow(/endpoints\[0\]\.allowedOrigins must be/);
  });
});
