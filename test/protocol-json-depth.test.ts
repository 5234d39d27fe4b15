/**
 * `maxJsonDepth` at its exact bound, over a real socket: a frame nested exactly `maxDepth`
 * levels is handled, one level more is refused with the depth error (not a parse error, not a
 * shape error), however short the frame; brackets inside strings, escaped quotes and escaped
 * backslashes are read as JSON reads them. And the option refuses what is not a positive integer.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { envelope, events, stream, tagged } from 'switchyard';
import { connectAs, startEnvelope, type Running } from './helpers.js';

let running: Running | undefined;
afterEach(async () => {
  await running?.stop();
  running = undefined;
});

/** Sends a raw text frame with id `id` inside and resolves with the Ack or Error naming it. */
async function reply(client: Awaited<ReturnType<typeof connectAs>>, text: string, id: string) {
  client.ws.send(text);
  return client.next((f) => f.data?.message_id === id || f.data?.details?.message_id === id, `reply to ${id}`);
}

describe('maxJsonDepth at its bound', () => {
  it('handles a frame exactly maxDepth deep and refuses one level more, naming the depth', async () => {
    running = await startEnvelope({}, envelope({ maxJsonDepth: 4 }));
    const c = await connectAs(running, 'alice:#');
    // frame (1) → data (2) → a (3) → [ (4)
    expect((await reply(c, '{"type":"Ping","id":"at","data":{"a":[[1]]}}', 'at')).type).toBe('Ack');
    const over = await reply(c, '{"type":"Ping","id":"deep","data":{"a":[[[1]]]}}', 'deep');
    expect(over.data).toEqual({ code: 400, message: 'JSON nested deeper than 4 levels', details: { max_depth: 4, message_id: 'deep' } });
    await c.close();
  });

  it('refuses the shortest text that is too deep (2 × (maxDepth + 1) characters) for its depth', async () => {
    running = await startEnvelope({}, envelope({ maxJsonDepth: 3 }));
    const c = await connectAs(running, 'alice:#');
    c.ws.send('[[[[]]]]'); // 8 characters, 4 deep: no id to name
    const error = await c.nextOf('Error');
    expect(error.data.message).toBe('JSON nested deeper than 3 levels');
    c.ws.send('[[[]]]'); // 3 deep: parsed, then refused for its shape
    expect((await c.nextOf('Error')).data.message).toBe('a message must be a JSON object');
    await c.close();
  });

  it('skips strings, escaped quotes in them, and counts again after an escaped backslash ends one', async () => {
    running = await startEnvelope({}, envelope({ maxJsonDepth: 3 }));
    const c = await connectAs(running, 'alice:#');
    // An escaped quote does not end the string: the brackets after it are text.
    const quoted = JSON.stringify({ type: 'Ping', id: 'q', data: { s: '"[[[[[[' } });
    expect((await reply(c, quoted, 'q')).type).toBe('Ack');
    const twoQuotes = JSON.stringify({ type: 'Ping', id: 'q2', data: { s: 'a\\"[[[[[[' } }); // \\\" : backslash then quote, both escaped
    expect((await reply(c, twoQuotes, 'q2')).type).toBe('Ack');
    // An escaped backslash right before the closing quote: the string ends there, and the
    // nesting after it counts (frame, data, a, [ = 4 > 3).
    const afterBackslash = `{"type":"Ping","id":"b","data":{"s":"x\\\\","a":[[1]]}}`;
    expect(JSON.parse(afterBackslash).data.s).toBe('x\\');
    const b = await reply(c, afterBackslash, 'b');
    expect(b.data.message).toBe('JSON nested deeper than 3 levels');
    // Closing brackets bring the depth back down: many shallow siblings are fine.
    const flat = JSON.stringify({ type: 'Ping', id: 'f', data: { a: 1, b: [1], c: [2], d: [3], e: [4] } });
    expect((await reply(c, flat, 'f')).type).toBe('Ack');
    await c.close();
  });

  it('leaves a string that never ends to the JSON parser (400 invalid JSON)', async () => {
    running = await startEnvelope({}, envelope({ maxJsonDepth: 2 }));
    const c = await connectAs(running, 'alice:#');
    c.ws.send('{"type":"Ping","data":{"s":"[[[[[[[[');
    expect((await c.nextOf('Error')).data.message).toMatch(/^invalid JSON: /);
    await c.close();
  });
});

describe('maxJsonDepth option', () => {
  it('takes a positive integer and refuses anything else, in every JSON protocol', () => {
    const bind = () => null;
    const makers: Array<[string, (depth: number) => unknown]> = [
      ['envelope', (d) => envelope({ maxJsonDepth: d })],
      ['events', (d) => events({ maxJsonDepth: d })],
      ['stream', (d) => stream({ bind, maxJsonDepth: d })],
      ['tagged', (d) => tagged({ maxJsonDepth: d })],
    ];
    for (const [name, make] of makers) {
      expect(() => make(1), name).not.toThrow();
      for (const bad of [0, -1, 1.5, Number.NaN, 2 ** 53]) {
        expect(() => make(bad), `${name} ${bad}`).toThrow(new TypeError(`${name}: maxJsonDepth must be a positive integer`));
      }
    }
  });
});
