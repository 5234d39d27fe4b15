/**
 * What the host learns when an `X-` handler's result cannot be sent (DESIGN.md "Acks": the client
 * gets Error 500 naming the id): the broker's 'error' event carries the handler's type in its
 * message and JSON.stringify's own error as its `cause`, so the host can see which value was
 * at fault. Real sockets.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { envelope } from 'switchyard';
import { connectAs, startEnvelope, type Running } from './helpers.js';

let running: Running | undefined;
afterEach(async () => {
  await running?.stop();
  running = undefined;
});

function stringifyError(value: unknown): Error {
  try {
    JSON.stringify(value);
  } catch (err) {
    return err as Error;
  }
  throw new Error('JSON.stringify took it');
}

describe('an X- result JSON cannot encode', () => {
  it("is reported with JSON.stringify's error as the cause, and the client gets Error 500 naming its id", async () => {
    const cyclic: Record<string, unknown> = { name: 'loop' };
    cyclic.self = cyclic;
    running = await startEnvelope({}, envelope({ handlers: { 'X-Big': () => ({ n: 10n }), 'X-Cycle': () => cyclic } }));
    const errors: Error[] = [];
    running.broker.on('error', (e) => errors.push(e));
    const c = await connectAs(running, 'alice');
    for (const [type, value] of [['X-Big', { n: 10n }], ['X-Cycle', cyclic]] as const) {
      const reply = await c.request(type, {});
      expect(reply.data).toMatchObject({ code: 500, details: { message_id: expect.any(String) } });
      const reported = errors.shift()!;
      const cause = reported.cause as Error;
      expect(cause).toBeInstanceOf(TypeError);
      expect(cause.message).toBe(stringifyError(value).message);
      expect(reported.message).toBe(`the ${type} handler returned a result JSON cannot encode: ${cause.message}`);
    }
    await c.close();
  });
});
