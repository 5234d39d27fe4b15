/** What every JSON protocol does first with a text frame. */
import { BrokerError } from '../errors.js';

/** Parses a frame that must be one JSON object; anything else is a 400 saying what was wrong. */
export function parseObject(raw: Buffer, what = 'a message'): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(raw.toString('utf8'));
  } catch (err) {
    throw new BrokerError('SY_ERR_BAD_FRAME', `invalid JSON: ${(err as Error).message}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new BrokerError('SY_ERR_BAD_FRAME', `${what} must be a JSON object`);
  }
  return value as Record<string, unknown>;
}
