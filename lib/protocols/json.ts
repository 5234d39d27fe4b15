/** What every JSON protocol does first with a text frame. */
import { BrokerError } from '../errors.js';

/**
 * Deepest nesting of arrays and objects accepted in an inbound JSON frame, by default. Far more
 * than any real message, far less than what `JSON.stringify` (recursive) can encode: a payload
 * nested 20,000 levels is only 40 KB, parses, and then cannot be sent to anyone (issue 16).
 */
export const DEFAULT_MAX_JSON_DEPTH = 128;

/**
 * Whether a JSON text nests arrays/objects deeper than `maxDepth`, found by one pass over it
 * (strings skipped with a native `indexOf`). A level costs at least two characters, so a text
 * shorter than `2 × (maxDepth + 1)` cannot exceed it and is not scanned: small frames pay one
 * comparison. Malformed text is left for `JSON.parse` to refuse.
 */
export function nestedDeeperThan(text: string, maxDepth: number): boolean {
  const length = text.length;
  if (length < 2 * (maxDepth + 1)) return false;
  let depth = 0;
  for (let i = 0; i < length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      // To the next quote not escaped by an odd number of backslashes.
      for (;;) {
        i = text.indexOf('"', i + 1);
        if (i === -1) return false;
        let slashes = 0;
        while (text.charCodeAt(i - 1 - slashes) === 0x5c) slashes++;
        if ((slashes & 1) === 0) break;
      }
    } else if (c === 0x7b || c === 0x5b) {
      if (++depth > maxDepth) return true;
    } else if (c === 0x7d || c === 0x5d) {
      depth--;
    }
  }
  return false;
}

/**
 * Parses a JSON text frame; a 400 when it is not JSON or nests deeper than `maxDepth`. The
 * depth is checked before parsing, so such a payload is refused at the door and never reaches
 * a publish, a store or a subscriber.
 */
export function parseJson(raw: Buffer, maxDepth: number = DEFAULT_MAX_JSON_DEPTH): unknown {
  return parseJsonText(raw.toString('utf8'), maxDepth);
}

/** `parseJson` of a text already decoded. */
export function parseJsonText(text: string, maxDepth: number = DEFAULT_MAX_JSON_DEPTH): unknown {
  if (nestedDeeperThan(text, maxDepth)) {
    throw new BrokerError('SY_ERR_BAD_FRAME', `JSON nested deeper than ${maxDepth} levels`, { details: { max_depth: maxDepth } });
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new BrokerError('SY_ERR_BAD_FRAME', `invalid JSON: ${(err as Error).message}`);
  }
}

/** Parses a frame that must be one JSON object; anything else is a 400 saying what was wrong. */
export function parseObject(raw: Buffer, what = 'a message', maxDepth: number = DEFAULT_MAX_JSON_DEPTH): Record<string, unknown> {
  return parseObjectText(raw.toString('utf8'), what, maxDepth);
}

/** `parseObject` of a text already decoded. */
export function parseObjectText(text: string, what = 'a message', maxDepth: number = DEFAULT_MAX_JSON_DEPTH): Record<string, unknown> {
  const value = parseJsonText(text, maxDepth);
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new BrokerError('SY_ERR_BAD_FRAME', `${what} must be a JSON object`);
  }
  return value as Record<string, unknown>;
}

/** Checks a protocol's `maxJsonDepth` option. */
export function resolveMaxJsonDepth(value: number | undefined, protocol: string): number {
  if (value === undefined) return DEFAULT_MAX_JSON_DEPTH;
  if (!Number.isSafeInteger(value) || value < 1) throw new TypeError(`${protocol}: maxJsonDepth must be a positive integer`);
  return value;
}

/**
 * Where a JSON object text ends in a member `,"<key>":"<value>"}`, written without whitespace or
 * escapes and with a printable-ASCII value (how this library's client and most others append a
 * request's `id`): the index of that comma, or -1. Cutting the member off (the text up to the
 * comma, then `}`) leaves a text that is valid JSON exactly when the whole is, and whose parse is
 * the whole's minus that member; the value is `raw.toString('latin1', comma + key.length + 5,
 * raw.length - 2)`, and with quotes around it, its JSON (`JSON.stringify` would write the same).
 *
 * Why: V8's JSON.parse interns string values of up to 10 characters. A unique short id per
 * request (`c1`, `c2`, …) then costs a string-table insertion and an old-generation string that
 * only a full GC reclaims: about half of what an id cost per publish (bench/PROFILING.md).
 * `key` is ASCII without quotes or backslashes.
 */
export function trailingMember(raw: Buffer, key: string): number {
  const end = raw.length - 2;
  // …"}: the last member's value is a string (a `"` right before the final `}`).
  if (end < 1 || raw[end + 1] !== 0x7d || raw[end] !== 0x22) return -1;
  let i = end - 1;
  for (; i >= 0; i--) {
    const c = raw[i]!;
    if (c === 0x22) break;
    if (c < 0x20 || c > 0x7e || c === 0x5c) return -1;
  }
  // i: the value's opening quote; before it `,"<key>":`.
  const comma = i - key.length - 4;
  if (comma < 1 || raw[i - 1] !== 0x3a || raw[i - 2] !== 0x22 || raw[comma + 1] !== 0x22 || raw[comma] !== 0x2c) return -1;
  for (let k = 0; k < key.length; k++) if (raw[comma + 2 + k] !== key.charCodeAt(k)) return -1;
  // What precedes the comma must end a value (a string, object, array, number, true, false or
  // null): then the comma is the top-level object's, and `{,"id":"x"}` is not taken for `{}`.
  const before = raw[comma - 1]!;
  if (before !== 0x22 && before !== 0x7d && before !== 0x5d && before !== 0x65 && before !== 0x6c && (before < 0x30 || before > 0x39)) return -1;
  return comma;
}
