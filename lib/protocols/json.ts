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
  const text = raw.toString('utf8');
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
  const value = parseJson(raw, maxDepth);
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
