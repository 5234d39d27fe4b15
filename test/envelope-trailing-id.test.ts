/**
 * A request's `id` written last (`…,"id":"…"}`) is read from the frame's bytes without
 * JSON.parse (issue 17, lib/protocols/json.ts trailingMember). Whatever the frame, the client
 * must be answered exactly as if the whole frame had gone through JSON.parse: the same id (once,
 * in an Ack that is valid JSON), or the same refusal with the same message. Every expectation here
 * is computed from JSON.parse's reading of the frame, so the table cannot drift from what JSON
 * means; the frames are hostile on purpose (escapes, non-ASCII, numbers, whitespace, duplicate
 * and nested ids, ids that only look like ids, truncated and malformed JSON). Real sockets.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { envelope, type BrokerOptions } from 'switchyard';
import { Client, connectAs, startEnvelope, type Frame, type Running } from './helpers.js';

let running: Running | undefined;
afterEach(async () => {
  await running?.stop();
  running = undefined;
});

async function broker(extra: Partial<BrokerOptions> = {}, protocol = envelope()): Promise<Client> {
  running = await startEnvelope(extra, protocol);
  return connectAs(running, 'alice:#');
}

let sentinels = 0;

/** Sends `raw` as a text frame and resolves with every frame the server answered it with. */
async function answers(c: Client, raw: string): Promise<Frame[]> {
  const from = c.frames.length;
  c.ws.send(raw);
  // The client's Pong with an id gets only its Ack: everything before that Ack answered `raw`.
  const sentinel = `sentinel-${++sentinels}`;
  c.sendJson({ type: 'Pong', id: sentinel });
  await c.nextOf('Ack', (f) => f.data.message_id === sentinel);
  const all = c.frames.slice(from);
  return all.slice(0, all.findIndex((f) => f.type === 'Ack' && f.data.message_id === sentinel));
}

const MAX_ID = 128;

/** What the envelope answers a Ping frame, computed from JSON.parse's reading of the whole frame. */
function expected(raw: string): unknown[] {
  let message: unknown;
  try {
    message = JSON.parse(raw);
  } catch (err) {
    return [{ type: 'Error', data: { code: 400, message: `invalid JSON: ${(err as Error).message}`, details: {} } }];
  }
  if (message === null || typeof message !== 'object' || Array.isArray(message)) {
    return [{ type: 'Error', data: { code: 400, message: 'a message must be a JSON object', details: {} } }];
  }
  const { type, id } = message as { type?: unknown; id?: unknown };
  if (id !== undefined && (typeof id !== 'string' || id === '' || id.length > MAX_ID)) {
    return [{ type: 'Error', data: { code: 400, message: `id must be a non-empty string of at most ${MAX_ID} characters`, details: { field: 'id' } } }];
  }
  if (type === undefined) return [{ type: 'Error', data: { code: 400, message: "missing 'type'", details: { field: 'type', ...(id !== undefined && { message_id: id }) } } }];
  if (type !== 'Ping') throw new Error(`the table holds Pings only: ${raw}`);
  const pong = { type: 'Pong', data: { timestamp: expect.any(Number) } };
  return id === undefined ? [pong] : [pong, { type: 'Ack', data: { message_id: id, status: 'ok' } }];
}

const a128 = 'a'.repeat(MAX_ID);
// Written as the client sends them: String.raw keeps every backslash a JSON escape.
const FRAMES: Array<[string, string]> = [
  // Taken by the byte reader: printable ASCII without quotes or backslashes, last, no whitespace.
  ['a short id', String.raw`{"type":"Ping","id":"c1"}`],
  ['an id with a space', String.raw`{"type":"Ping","id":"a b"}`],
  ['an id that is one space', String.raw`{"type":"Ping","id":" "}`],
  ['an id of a closing brace', String.raw`{"type":"Ping","id":"}"}`],
  ['an id of every punctuation JSON leaves unescaped', String.raw`{"type":"Ping","id":"~!@#$%^&*()_+-=[]{}|;':,./<>?` + '`' + String.raw`"}`],
  ['an id of digits (a string, not a number)', String.raw`{"type":"Ping","id":"5"}`],
  ['an id of 128 characters', `{"type":"Ping","id":"${a128}"}`],
  ['an id of 129 characters', `{"type":"Ping","id":"${a128}b"}`],
  ['an empty id', String.raw`{"type":"Ping","id":""}`],
  ['an id after an object', String.raw`{"type":"Ping","data":{"id":"inner"},"id":"outer"}`],
  ['an id after an array holding "id"', String.raw`{"type":"Ping","x":["x","id","y"],"id":"z"}`],
  ['an id after false', String.raw`{"type":"Ping","x":false,"id":"f"}`],
  ['an id after a negative exponent', String.raw`{"type":"Ping","x":-0.5e-10,"id":"n"}`],
  ['a number id, then a string id', String.raw`{"type":"Ping","id":5,"id":"late"}`],
  ['an empty id, then a good one', String.raw`{"type":"Ping","id":"","id":"x"}`],
  ['an id too long, then a good one', `{"type":"Ping","id":"${a128}b","id":"ok"}`],
  ['an id but no type', String.raw`{"data":null,"id":"t"}`],
  ['whitespace before the frame', ` \n{"type":"Ping","id":"w0"}`],
  // Left to JSON.parse: escapes, non-ASCII, control characters, whitespace, not last, not "id".
  ['an id with an escaped slash', String.raw`{"type":"Ping","id":"<\/script>"}`],
  ['an id with an escaped quote at its end', String.raw`{"type":"Ping","id":"a\""}`],
  ['an id with a \\u escape', String.raw`{"type":"Ping","id":"\u0041\u00e9"}`],
  ['an id with an escaped NUL', String.raw`{"type":"Ping","id":"\u0000"}`],
  ['an id of a lone surrogate', String.raw`{"type":"Ping","id":"\ud800"}`],
  ['an id of an emoji pair', String.raw`{"type":"Ping","id":"\ud83d\ude00"}`],
  ['a non-ASCII id', '{"type":"Ping","id":"é€😀"}'],
  ['an id with DEL (valid raw in JSON)', '{"type":"Ping","id":"a\u007fb"}'],
  ['an id of 128 characters with an escape', `{"type":"Ping","id":"${'a'.repeat(MAX_ID - 1)}\\u0062"}`],
  ['an id of 129 characters with an escape', `{"type":"Ping","id":"${a128}\\/"}`],
  ['a number id', String.raw`{"type":"Ping","id":5}`],
  ['a null id', String.raw`{"type":"Ping","id":null}`],
  ['a true id', String.raw`{"type":"Ping","id":true}`],
  ['an array id', String.raw`{"type":"Ping","id":["x"]}`],
  ['an object id holding an id', String.raw`{"type":"Ping","id":{"id":"x"}}`],
  ['a string id, then a number id', String.raw`{"type":"Ping","id":"early","id":5}`],
  ['a space before the id', String.raw`{"type":"Ping", "id":"w1"}`],
  ['a space before the colon', String.raw`{"type":"Ping","id" :"w2"}`],
  ['a space after the colon', String.raw`{"type":"Ping","id": "w3"}`],
  ['a space before the brace', String.raw`{"type":"Ping","id":"w4" }`],
  ['a newline before the comma', '{"type":"Ping"\n,"id":"w5"}'],
  ['a newline after the frame', '{"type":"Ping","id":"w6"}\n'],
  ['an id first', String.raw`{"id":"x","type":"Ping"}`],
  ['an id, then data', String.raw`{"type":"Ping","id":"x","data":{}}`],
  ['a key ending in id', String.raw`{"type":"Ping","xid":"c"}`],
  ['a key Id', String.raw`{"type":"Ping","Id":"c"}`],
  ['an empty key last', String.raw`{"type":"Ping","":"abc"}`],
  ['an empty key last, with a one-letter value', String.raw`{"type":"Ping","":"x"}`],
  ['the key id with an escaped letter', String.raw`{"type":"Ping","i\u0064":"c"}`],
  ['the key id with an escaped first letter', String.raw`{"type":"Ping","\u0069d":"c"}`],
  ['an id nested in data, last', String.raw`{"type":"Ping","data":{"id":"inner"}}`],
  ['an id nested in data after a number', String.raw`{"type":"Ping","data":{"a":1,"id":"inner"}}`],
  ['a string that reads like an id', String.raw`{"type":"Ping","note":"\",\"id\":\"fake"}`],
  ['a string ending like an id', String.raw`{"type":"Ping","note":"a,\"id\":\"b\"}"}`],
  ['an id with a raw tab', '{"type":"Ping","id":"a\tb"}'],
  // Malformed: every one must be refused with JSON.parse's message for the text that was sent.
  ['no closing brace', String.raw`{"type":"Ping","id":"c"`],
  ['an object left open before a trailing id', String.raw`{"type":"Ping","data":{"a":1,"id":"c"}`],
  ['a member with no value before the id', String.raw`{"type":"Ping","x","id":"c"}`],
  ['a string run into another before the id', String.raw`{"type":"Ping","x":"a"b","id":"c"}`],
  ['a misspelt null before the id', String.raw`{"type":"Ping","x":nul,"id":"c"}`],
  ['a misspelt true before the id', String.raw`{"type":"Ping","x":tru,"id":"c"}`],
  ['a number with no digits after the point', String.raw`{"type":"Ping","x":1.,"id":"c"}`],
  ['two commas before the id', String.raw`{"type":"Ping",,"id":"c"}`],
  ['a comma right after the brace', String.raw`{,"id":"c"}`],
  ['an array closed by a brace', String.raw`[1,"id":"c"}`],
  ['a number, then an id', String.raw`1,"id":"c"}`],
  ['a string, then an id', String.raw`"x","id":"c"}`],
  ['an unterminated id with an escaped quote', String.raw`{"type":"Ping","id":"{\"}`],
  ['one brace too many', String.raw`{"type":"Ping","id":"c"}}`],
  ['only an id member', String.raw`"id":"c"}`],
];

describe('a trailing id is read as JSON.parse reads the whole frame', () => {
  it.each(FRAMES)('%s', async (_name, raw) => {
    const c = await broker();
    const want = expected(raw);
    expect(await answers(c, raw)).toEqual(want);
    await c.close();
  });

  it('answers every frame of the table in one connection, in order, each exactly once', async () => {
    const c = await broker();
    for (const [name, raw] of FRAMES) expect(await answers(c, raw), name).toEqual(expected(raw));
    await c.close();
  });

  it('acks a Broadcast with the id written as it came, for ids JSON.stringify leaves as they are', async () => {
    const c = await broker();
    for (const id of ['b1', '<p/ q=\'1\'>', '{}[]:,', ' ', '~`!', a128]) {
      c.ws.send(`{"type":"Broadcast","data":{"topic":"t","payload":1},"id":${JSON.stringify(id)}}`);
      expect((await c.nextOf('Ack')).data, id).toEqual({ message_id: id, status: 'delivered', recipients: 0 });
    }
    await c.close();
  });
});

describe('a trailing id and maxJsonDepth', () => {
  it('a frame too deep names its trailing id, as it names an id written first', async () => {
    const c = await broker({}, envelope({ maxJsonDepth: 4 }));
    const refused = { code: 400, message: 'JSON nested deeper than 4 levels' };
    expect(await answers(c, '{"type":"Ping","data":[[[[1]]]],"id":"d1"}')).toEqual([{ type: 'Error', data: { ...refused, details: { max_depth: 4, message_id: 'd1' } } }]);
    expect(await answers(c, '{"id":"d2","type":"Ping","data":[[[[1]]]]}')).toEqual([{ type: 'Error', data: { ...refused, details: { max_depth: 4, message_id: 'd2' } } }]);
    // Four levels are allowed either way.
    expect((await answers(c, '{"type":"Ping","data":{"a":[[1]]},"id":"d3"}')).map((f) => f.type)).toEqual(['Pong', 'Ack']);
    await c.close();
  });

  it('a malformed frame nesting too deep before a trailing id is refused for its depth, as without the id', async () => {
    const c = await broker({}, envelope({ maxJsonDepth: 4 }));
    // Five brackets opened and never closed: the frame as sent is deeper than 4 levels (and not
    // JSON); the same bytes with the member named otherwise are refused the same way.
    const deep = { type: 'Error', data: { code: 400, message: 'JSON nested deeper than 4 levels', details: { max_depth: 4 } } };
    expect(await answers(c, '[[[[[1,"xx":"c"}')).toEqual([deep]);
    expect(await answers(c, '[[[[[1,"id":"c"}')).toEqual([deep]);
    await c.close();
  });
});
