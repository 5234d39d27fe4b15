/**
 * permessage-deflate negotiation (RFC 7692 §5, §7.1) read on the raw 101: which offer is taken,
 * what the answer says, which offers are declined (the connection goes on uncompressed) and which
 * headers are refused with 400.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createBroker, envelope, type BrokerOptions, type CompressionOptions } from 'switchyard';
import { type Running, startEnvelope, tokenAuth } from './helpers.js';
import { request, upgradeRequest } from './wire-raw.js';

let running: Running | undefined;
afterEach(async () => {
  await running?.stop();
  running = undefined;
});

async function broker(compression: boolean | CompressionOptions | undefined, extra: Partial<BrokerOptions> = {}): Promise<Running> {
  running = await startEnvelope({ endpoints: [{ path: '/ws', protocol: envelope(), compression }], ...extra });
  return running;
}

/** The status and Sec-WebSocket-Extensions answer to one upgrade request offering `offer`. */
async function answer(offer: string | undefined): Promise<{ status: number; extensions: string | undefined }> {
  const { socket, status, headers } = await request(running!.port, upgradeRequest('/ws?token=n', offer === undefined ? [] : [`Sec-WebSocket-Extensions: ${offer}`]));
  socket.destroy();
  return { status, extensions: headers['sec-websocket-extensions'] };
}

describe('permessage-deflate negotiation', () => {
  it('is off by default: an offer is ignored and the 101 carries no extension', async () => {
    await broker(undefined);
    expect(await answer('permessage-deflate; client_max_window_bits')).toEqual({ status: 101, extensions: undefined });
    // With compression off the header is not even parsed.
    expect(await answer('permessage-deflate; ="')).toEqual({ status: 101, extensions: undefined });
  });

  it('accepts an offer, always answering server_no_context_takeover (one compression per endpoint)', async () => {
    await broker(true);
    const cases: Array<[string | undefined, string | undefined]> = [
      [undefined, undefined],
      ['permessage-deflate', 'permessage-deflate; server_no_context_takeover'],
      ['permessage-deflate; client_max_window_bits', 'permessage-deflate; server_no_context_takeover'],
      ['permessage-deflate; server_no_context_takeover', 'permessage-deflate; server_no_context_takeover'],
      ['permessage-deflate; client_no_context_takeover', 'permessage-deflate; server_no_context_takeover; client_no_context_takeover'],
      ['permessage-deflate; server_max_window_bits=10', 'permessage-deflate; server_no_context_takeover; server_max_window_bits=10'],
      ['permessage-deflate; server_max_window_bits=8', 'permessage-deflate; server_no_context_takeover; server_max_window_bits=8'],
      ['permessage-deflate; client_max_window_bits=9', 'permessage-deflate; server_no_context_takeover; client_max_window_bits=9'],
      ['permessage-deflate; client_max_window_bits="12"', 'permessage-deflate; server_no_context_takeover; client_max_window_bits=12'],
      ['PerMessage-Deflate ;  client_no_context_takeover ; server_max_window_bits = 15', 'permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=15'],
      // Other extensions are passed over; the first acceptable permessage-deflate offer wins.
      ['x-webkit-deflate-frame, permessage-deflate; client_no_context_takeover, permessage-deflate', 'permessage-deflate; server_no_context_takeover; client_no_context_takeover'],
    ];
    for (const [offer, expected] of cases) expect(await answer(offer), String(offer)).toEqual({ status: 101, extensions: expected });
  });

  it('declines offers with unknown, duplicate or invalid parameters, taking the next acceptable one', async () => {
    await broker(true);
    const declined = [
      'permessage-deflate; foo',
      'permessage-deflate; server_no_context_takeover; server_no_context_takeover',
      'permessage-deflate; client_max_window_bits=10; client_max_window_bits=11',
      'permessage-deflate; server_max_window_bits',
      'permessage-deflate; server_max_window_bits=7',
      'permessage-deflate; server_max_window_bits=16',
      'permessage-deflate; server_max_window_bits=010',
      'permessage-deflate; client_max_window_bits=1a',
      'permessage-deflate; server_no_context_takeover=1',
      'permessage-deflate; client_no_context_takeover="x"',
      'x-webkit-deflate-frame',
    ];
    for (const offer of declined) expect(await answer(offer), offer).toEqual({ status: 101, extensions: undefined });
    expect(await answer('permessage-deflate; foo, permessage-deflate; server_max_window_bits=9')).toEqual({
      status: 101,
      extensions: 'permessage-deflate; server_no_context_takeover; server_max_window_bits=9',
    });
  });

  it('answers 400 to a header that breaks the RFC 6455 §9.1 grammar, before asking the host', async () => {
    let asked = 0;
    await broker(true, {
      authenticate: (h) => {
        asked++;
        return tokenAuth(h);
      },
    });
    for (const offer of ['permessage-deflate; =', 'permessage-deflate; a="open', 'permessage-deflate; a="b c"', 'permessage-deflate x', 'permessage-deflate;; a', '@']) {
      expect((await answer(offer)).status, offer).toBe(400);
    }
    expect(asked).toBe(0);
  });

  it('applies the endpoint bounds: server window, client window, client context takeover', async () => {
    await broker({ serverMaxWindowBits: 11, clientMaxWindowBits: 10, clientNoContextTakeover: true });
    // The client's window cannot be bounded without client_max_window_bits in its offer: declined.
    expect(await answer('permessage-deflate')).toEqual({ status: 101, extensions: undefined });
    expect(await answer('permessage-deflate; client_max_window_bits')).toEqual({
      status: 101,
      extensions: 'permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=10',
    });
    expect(await answer('permessage-deflate; client_max_window_bits=9; server_max_window_bits=13')).toEqual({
      status: 101,
      extensions: 'permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=11; client_max_window_bits=9',
    });
  });

  it('refuses invalid compression options at construction', () => {
    const make = (compression: unknown) => () =>
      createBroker({ endpoints: [{ path: '/ws', protocol: envelope(), compression: compression as CompressionOptions }], authenticate: tokenAuth });
    expect(make({ level: 10 })).toThrow(/compression\.level/);
    expect(make({ serverMaxWindowBits: 7 })).toThrow(/serverMaxWindowBits/);
    expect(make({ clientMaxWindowBits: 16 })).toThrow(/clientMaxWindowBits/);
    expect(make({ threshold: -1 })).toThrow(/threshold/);
    expect(make('yes')).toThrow(/compression/);
    expect(() => createBroker({ endpoints: [{ path: '/ws', protocol: envelope() }], authenticate: tokenAuth, limits: { maxFragments: 0 } })).toThrow(/maxFragments/);
  });
});
