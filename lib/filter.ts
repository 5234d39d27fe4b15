/**
 * Subscription filters (seed 003): `{ field: [allowed values] }`, the field a dot path into the
 * payload. A payload without the field passes (DESIGN.md), so `devices` updates still arrive
 * when `alerts` are filtered by severity. Compiled once per subscription.
 */
import { BrokerError } from './errors.js';
import type { Filter } from './types.js';

export interface CompiledFilter {
  readonly source: Filter;
  readonly fields: ReadonlyArray<{ path: string[]; values: ReadonlySet<unknown> }>;
}

const MAX_FIELDS = 16;
const MAX_VALUES = 64;

/** Validates and compiles a filter; throws a 400 naming what is wrong. */
export function compileFilter(filter: unknown): CompiledFilter | null {
  if (filter === undefined || filter === null) return null;
  if (typeof filter !== 'object' || Array.isArray(filter)) {
    throw new BrokerError('SY_ERR_BAD_FRAME', 'filters must be an object of field → array of values');
  }
  const entries = Object.entries(filter);
  if (entries.length === 0) return null;
  if (entries.length > MAX_FIELDS) throw new BrokerError('SY_ERR_BAD_FRAME', `filters may name at most ${MAX_FIELDS} fields`);
  const fields = entries.map(([field, values]) => {
    if (field === '' || !Array.isArray(values) || values.length === 0 || values.length > MAX_VALUES) {
      throw new BrokerError('SY_ERR_BAD_FRAME', `filters.${field} must be a non-empty array of at most ${MAX_VALUES} values`);
    }
    if (values.some((v) => v !== null && typeof v === 'object')) {
      throw new BrokerError('SY_ERR_BAD_FRAME', `filters.${field} values must be strings, numbers, booleans or null`);
    }
    return { path: field.split('.'), values: new Set<unknown>(values) };
  });
  return { source: filter as Filter, fields };
}

export function passesFilter(filter: CompiledFilter, payload: unknown): boolean {
  for (const { path, values } of filter.fields) {
    let value: unknown = payload;
    for (const key of path) {
      // Own properties only: a field named `constructor` or `toString` is not found on
      // Object.prototype (finding 10 of issue 16), and an array's `length` is not a field.
      if (value === null || typeof value !== 'object' || !Object.hasOwn(value, key)) {
        value = undefined;
        break;
      }
      value = (value as Record<string, unknown>)[key];
    }
    if (value !== undefined && !values.has(value)) return false;
  }
  return true;
}
