/**
 * Finding 1 of issue 16: nothing switchyard logs or emits may carry a credential. Hostile
 * handshakes (request-targets `new URL()` cannot parse, broken paths, broken upgrade headers,
 * hooks that fail) are thrown at the broker, and every logged line and every `error` event,
 * inspected in full (non-enumerable properties like a Node error's `input` included), is
 * scanned for the token.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createBroker, envelope, type Broker, type BrokerOptions } from 'switchyard';
import { attach } from 'switchyard/http';
import { Capture, rawUpgrade } from './hardening-helpers.js';
import { connect } from './helpers.js';
import { redactContext, redactError, redactUrl } from '../lib/auth.js';

const SECRET = 'SeCrEt-t0ken-4f9a';

let cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanup.splice(0)) await c();
});

async function serve(options: BrokerOptions, attachOptions: Parameters<typeof attach>[2] = {}): Promise<{ broker: Broker; port: number }> {
  const broker = createBroker(options);
  const server = http.createServer((_req, res) => res.writeHead(404).end());
  attach(broker, server, attachOptions);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanup.push(async () => {
    await broker.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { broker, port: (server.address() as AddressInfo).port };
}

/** Request-targets and headers no client should send, each carrying the secret somewhere. */
const HOSTILE: Array<{ target: string; headers?: Record<string, string> }> = [
  { target: `//[?token=${SECRET}` },
  { target: `//[/ws?token=${SECRET}` },
  { target: `/ws/..//[?token=${SECRET}` },
  { target: `//evil.example/ws?token=${SECRET}` },
  { target: `http://[::1/ws?token=${SECRET}` },
  { target: `http://a b/ws?token=${SECRET}`.replace(' ', '%20') },
  { target: `/ws?token=${SECRET}%` },
  { target: `/ws?%74oken=${SECRET}` },
  { target: `/ws?access_token=${SECRET}&token=${SECRET}` },
  { target: `/ws/%E0%A4%A?token=${SECRET}` },
  { target: `/dev/%E0%A4%A?token=${SECRET}` },
  { target: `/ws?token=${SECRET}`, headers: { 'Sec-WebSocket-Version': '8' } },
  { target: `/ws?token=${SECRET}`, headers: { 'Sec-WebSocket-Key': 'short' } },
  { target: `/ws?token=${SECRET}`, headers: { Authorization: `Bearer ${SECRET}` } },
  { target: `/ws`, headers: { Authorization: `Bearer ${SECRET}` } },
  { target: `/ws`, headers: { 'Sec-WebSocket-Protocol': `access_token.${SECRET}` } },
  { target: `/ws`, headers: { 'Sec-WebSocket-Protocol': `Token, ${SECRET}` } },
  { target: `/ws/throws?token=${SECRET}` },
  { target: `/ws/bad-principal?token=${SECRET}` },
  { target: `/ws/url-error?token=${SECRET}` },
];

function options(): BrokerOptions {
  return {
    endpoints: [
      { path: '/ws', protocol: envelope() },
      { path: '/ws/throws', protocol: envelope() },
      { path: '/ws/bad-principal', protocol: envelope() },
      { path: '/ws/url-error', protocol: envelope() },
      { path: '/dev/:id', protocol: envelope() },
    ],
    authenticate: (h) => {
      // A careless host: its errors quote the credentials it was given.
      if (h.path === '/ws/throws') throw new Error(`lookup failed for ${h.credentials?.token} at ${h.request.url}`);
      if (h.path === '/ws/bad-principal') return { id: 42 } as never;
      // A host that parses the target itself: Node's ERR_INVALID_URL carries it in `input`.
      if (h.path === '/ws/url-error') new URL(`//[${h.request.url}`, 'http://localhost');
      return null;
    },
  };
}

describe('no credential in any log or error event (issue 16, finding 1)', () => {
  for (const mode of ['logger', 'error event'] as const) {
    for (const withPrepare of [false, true]) {
      it(`hostile handshakes leak nothing through the ${mode}${withPrepare ? ' (attach with prepare)' : ''}`, async () => {
        const capture = new Capture();
        const { broker, port } = await serve(
          { ...options(), logger: capture.logger },
          withPrepare ? { prepare: async () => true } : {},
        );
        if (mode === 'error event') broker.on('error', capture.onError);
        const statuses: number[] = [];
        for (let round = 0; round < 5; round++) {
          statuses.push(...(await Promise.all(HOSTILE.map((h) => rawUpgrade(port, h.target, h.headers)))));
        }
        // Every request was answered (none hung), and something was reported to scan.
        expect(statuses.every((s) => s >= 100)).toBe(true);
        expect(capture.lines.length).toBeGreaterThan(0);
        expect(capture.containing(SECRET)).toEqual([]);
      });
    }
  }
});

describe('redaction helpers', () => {
  it('redactError cleans a Node ERR_INVALID_URL (its input included) and a cause chain; redactUrl decodes names', () => {
    let urlError: Error | undefined;
    try {
      new URL(`//[?token=${SECRET}`, 'http://localhost');
    } catch (err) {
      urlError = err as Error;
    }
    const capture = new Capture();
    capture.add('error', '', redactError(urlError!));
    capture.add('error', '', redactError(new Error('outer', { cause: new Error(`inner /ws?%74oken=${SECRET}`) })));
    capture.add('error', '', redactError(new Error(`bare ${SECRET}`), [SECRET]));
    capture.add('error', '', redactContext({ url: `/ws?access_token=${SECRET}` }));
    expect(capture.containing(SECRET)).toEqual([]);
    expect(redactUrl(`/ws?a=1&TOKEN=${SECRET}&b=2`)).toBe('/ws?a=1&TOKEN=[redacted]&b=2');
    const frozen = Object.freeze(new Error(`/ws?token=${SECRET}`));
    expect(redactError(frozen).message).toBe('/ws?token=[redacted]');
  });
});

describe('in-band token refresh', () => {
  it("a hook error quoting the refreshed token is reported without it", async () => {
    const capture = new Capture();
    const { broker, port } = await serve({
      endpoints: [{ path: '/ws', protocol: envelope() }],
      authenticate: (h) => {
        if (h.credentials?.source === 'refresh') throw new Error(`token store down while checking ${h.credentials.token}`);
        return { id: 'alice' };
      },
    });
    broker.on('error', capture.onError);
    const client = await connect(`ws://127.0.0.1:${port}/ws?token=first`);
    const reply = await client.request('Refresh', { token: SECRET });
    expect(reply.type).toBe('Error');
    expect(capture.lines.length).toBeGreaterThan(0);
    expect(capture.containing(SECRET)).toEqual([]);
    await client.close();
  });
});
