/**
 * Endpoint path patterns: which request paths an endpoint owns (`broker.owns`), and the path
 * parameters `authenticate` is given over a real socket. Written from `npm run mutate`
 * survivors (issue 19).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createBroker, envelope, type Broker, type EndpointOptions, type Handshake } from 'switchyard';
import { Client, type Running, start } from './helpers.js';

const brokers: Broker[] = [];
const running: Running[] = [];
afterEach(async () => {
  await Promise.all(brokers.splice(0).map((b) => b.close()));
  await Promise.all(running.splice(0).map((r) => r.stop()));
});

function owner(path: string, extra: Partial<EndpointOptions> = {}): (url: string) => boolean {
  const broker = createBroker({ endpoints: [{ path, protocol: envelope(), ...extra }], authenticate: () => ({ id: 'u' }) });
  brokers.push(broker);
  return (url) => broker.owns(url);
}

describe('paths with regex characters match themselves only', () => {
  it.each([
    ['/v1.0/ws', ['/v1x0/ws', '/v10/ws', '/v1/0/ws']],
    ['/socket.io', ['/socketXio', '/socket/io', '/socketio']],
    ['/a+b', ['/aab', '/aaab', '/b']],
    ['/a*b', ['/ab', '/aab']],
    ['/(x)', ['/x']],
    ['/a$b', ['/a']],
    ['/a|b', ['/a', '/b']],
    ['/[x]', ['/x']],
    ['/a^b', ['/ab']],
  ])('%s', (path, others) => {
    const owns = owner(path);
    expect(owns(path)).toBe(true);
    expect(owns(`${path}?token=x`)).toBe(true);
    for (const other of others) expect(owns(other), other).toBe(false);
  });
});

describe('trailing slash, anchoring and case', () => {
  it('lets one trailing slash differ by default, both ways', () => {
    const owns = owner('/ws');
    expect(owns('/ws')).toBe(true);
    expect(owns('/ws/')).toBe(true);
    const slashed = owner('/live/');
    expect(slashed('/live/')).toBe(true);
    expect(slashed('/live')).toBe(true);
  });

  it('with strict: true refuses the trailing slash', () => {
    const owns = owner('/ws', { strict: true });
    expect(owns('/ws')).toBe(true);
    expect(owns('/ws/')).toBe(false);
    const slashed = owner('/live/', { strict: true });
    expect(slashed('/live/')).toBe(true);
    expect(slashed('/live')).toBe(false);
  });

  it('matches the whole path, not a part of it', () => {
    const owns = owner('/ws');
    expect(owns('/ws/x')).toBe(false);
    expect(owns('/x/ws')).toBe(false);
    expect(owns('/wsx')).toBe(false);
    expect(owns('/')).toBe(false);
  });

  it('is case-sensitive by default, and not with caseSensitive: false', () => {
    expect(owner('/Ws')('/ws')).toBe(false);
    expect(owner('/Ws')('/Ws')).toBe(true);
    const loose = owner('/Ws', { caseSensitive: false });
    expect(loose('/ws')).toBe(true);
    expect(loose('/WS/')).toBe(true);
  });

  it('takes one whole, non-empty segment for a parameter', () => {
    const owns = owner('/ws/device/:deviceId');
    expect(owns('/ws/device/d1')).toBe(true);
    expect(owns('/ws/device/d1/')).toBe(true);
    expect(owns('/ws/device/')).toBe(false);
    expect(owns('/ws/device/d1/x')).toBe(false);
    expect(owns('/ws/device/:deviceId')).toBe(true); // any segment, the pattern's text included
    expect(owner('/ws/dev:ice')('/ws/dev:ice')).toBe(true); // ':' not at the start is text
    expect(owner('/ws/dev:ice')('/ws/devXice')).toBe(false);
  });
});

describe('path parameters reach authenticate', () => {
  async function serve(endpoints: string[]): Promise<{ running: Running; seen: Handshake[] }> {
    const seen: Handshake[] = [];
    const r = await start({
      endpoints: endpoints.map((path) => ({ path, protocol: envelope() })),
      authenticate: (handshake) => {
        seen.push(handshake);
        return { id: 'u' };
      },
    });
    running.push(r);
    return { running: r, seen };
  }

  async function open(url: string): Promise<void> {
    const c = new Client(url);
    await c.opened;
    await c.close();
  }

  it('named after the pattern, URL-decoded, in order', async () => {
    const { running: r, seen } = await serve(['/ws/device/:deviceId', '/rooms/:room/users/:user']);
    await open(r.url('/ws/device/sensor%201'));
    await open(r.url('/rooms/r%2F1/users/%C3%A9ric'));
    expect(seen.map((h) => [h.path, h.params])).toEqual([
      ['/ws/device/:deviceId', { deviceId: 'sensor 1' }],
      ['/rooms/:room/users/:user', { room: 'r/1', user: 'éric' }],
    ]);
  });

  it('answers 400 to a parameter whose percent-encoding is broken, and never calls authenticate', async () => {
    const { running: r, seen } = await serve(['/ws/device/:deviceId']);
    const c = new Client(r.url('/ws/device/%E0%A4%A'));
    await expect(c.opened).rejects.toMatchObject({ status: 400 });
    await open(r.url('/ws/device/ok'));
    expect(seen.map((h) => h.params)).toEqual([{ deviceId: 'ok' }]);
  });

  it('gives an endpoint without parameters an empty params object', async () => {
    const { running: r, seen } = await serve(['/v1.0/ws']);
    await open(r.url('/v1.0/ws'));
    expect(seen[0]!.params).toEqual({});
    const wrong = new Client(r.url('/v1x0/ws'));
    await expect(wrong.opened).rejects.toBeDefined(); // not ours: left to the host (404 here)
  });
});
