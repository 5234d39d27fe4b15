/**
 * Finding 2 of issue 16: a request with an id gets exactly one Ack or Error naming it, even when
 * an `X-` handler returns a result JSON cannot encode (BigInt, a cycle, nesting deeper than
 * `JSON.stringify` can walk).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { envelope } from 'switchyard';
import { connectAs, startEnvelope, type Running } from './helpers.js';

let running: Running | undefined;
afterEach(async () => {
  await running?.stop();
  running = undefined;
});

function deep(levels: number): unknown {
  let value: unknown = 1;
  for (let i = 0; i < levels; i++) value = [value];
  return value;
}

function circular(): unknown {
  const a: Record<string, unknown> = { name: 'a' };
  a.self = a;
  return a;
}

const RESULTS: Record<string, () => unknown> = {
  'X-BigInt': () => ({ n: 10n }),
  'X-Circular': circular,
  'X-Deep': () => deep(200_000),
  'X-AsyncBigInt': async () => 10n,
  'X-AsyncCircular': async () => circular(),
  'X-ToJsonThrows': () => ({ toJSON: () => { throw new Error('no'); } }),
};

describe('X- handler results JSON cannot encode (issue 16, finding 2)', () => {
  it('answers each request with exactly one Error 500 naming its id, and the connection carries on', async () => {
    const errors: Error[] = [];
    running = await startEnvelope({}, envelope({ handlers: { ...RESULTS, 'X-Fine': () => ({ ok: true }) } }));
    running.broker.on('error', (err) => errors.push(err));
    const client = await connectAs(running, 'alice:#');
    const types = Object.keys(RESULTS);
    types.forEach((type, i) => client.sendJson({ type, id: `q${i}`, data: null }));
    client.sendJson({ type: 'X-Fine', id: 'last', data: null });
    const last = await client.next((f) => f.type === 'Ack' && f.data.message_id === 'last');
    expect(last.data.result).toEqual({ ok: true });
    for (let i = 0; i < types.length; i++) {
      const replies = client.frames.filter((f) => f.data?.message_id === `q${i}` || f.data?.details?.message_id === `q${i}`);
      expect(replies.map((f) => [f.type, f.data.code]), types[i]).toEqual([['Error', 500]]);
    }
    // The host hears about its handler's bug.
    expect(errors.length).toBe(types.length);
    expect(errors[0]!.message).toMatch(/X-BigInt handler returned a result JSON cannot encode/);
    await client.close();
  });
});
