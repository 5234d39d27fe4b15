/** The built-in permission model (seed 000): grants of `read` or `readwrite` on topic patterns. */
import { covers, type TopicSyntax } from './topics.js';
import type { Action, Authorize, Grant } from './types.js';

/**
 * Whether `grants` allow `action` on `topic`:
 * - subscribe: some grant's pattern covers the whole subscription pattern;
 * - publish: some `readwrite` grant matches the concrete topic;
 * - direct: always (the target is a principal id, not a topic).
 */
export function grantsAllow(syntax: TopicSyntax, grants: readonly Grant[] | undefined, action: Action, topic: string): boolean {
  if (action === 'direct') return true;
  if (grants === undefined) return false;
  for (const grant of grants) {
    if (action === 'publish' && grant.access !== 'readwrite') continue;
    if (covers(syntax, grant.topic, topic)) return true;
  }
  return false;
}

/**
 * The default `authorize`: the principal's own grants, read with the broker's topic syntax.
 * Hosts that add rules of their own can call it from their `authorize`.
 */
export function grants(): Authorize {
  return (principal, action, topic, context) => grantsAllow(context.syntax, principal.grants, action, topic);
}
