/** What a Subscribe asks for, validated before any permission is checked (DESIGN.md). */
import { BrokerError } from './errors.js';
import { compileFilter, type CompiledFilter } from './filter.js';
import { positionFrom, type HistoryPosition } from './store.js';
import { checkTopic, hasWildcard, type TopicSyntax } from './topics.js';

export interface SubscribeRequest {
  patterns: string[];
  filter: CompiledFilter | null;
  /** Topics to replay from history, with the last position (or bare offset) the client saw. */
  recover: Array<[string, HistoryPosition | number]>;
}

export function parseSubscribe(
  syntax: TopicSyntax,
  patterns: unknown,
  filters: unknown,
  recover: unknown,
  keepsHistory: (topic: string) => boolean,
): SubscribeRequest {
  if (!Array.isArray(patterns) || patterns.length === 0) {
    throw new BrokerError('SY_ERR_BAD_FRAME', 'topics must be a non-empty array of strings');
  }
  const invalid: unknown[] = [];
  let problem = '';
  for (const p of patterns) {
    const why = checkTopic(syntax, p, true);
    if (why !== null) {
      invalid.push(p);
      problem ||= why;
    }
  }
  if (invalid.length > 0) {
    throw new BrokerError('SY_ERR_BAD_TOPIC', `invalid topic: ${problem}`, { details: { topics: invalid } });
  }
  const unique = [...new Set(patterns as string[])];
  return {
    patterns: unique,
    filter: compileFilter(filters),
    recover: parseRecover(syntax, unique, recover, keepsHistory),
  };
}

/** `recover` names concrete topics of the same Subscribe that keep history. */
function parseRecover(
  syntax: TopicSyntax,
  patterns: string[],
  recover: unknown,
  keepsHistory: (topic: string) => boolean,
): Array<[string, HistoryPosition | number]> {
  if (recover === undefined || recover === null) return [];
  if (typeof recover !== 'object' || Array.isArray(recover)) {
    throw new BrokerError('SY_ERR_BAD_FRAME', 'recover must be an object of topic → last position ({offset, epoch}) or offset seen');
  }
  const entries: Array<[string, HistoryPosition | number]> = [];
  for (const [topic, from] of Object.entries(recover as Record<string, unknown>)) {
    if (!patterns.includes(topic) || hasWildcard(syntax, topic)) {
      throw new BrokerError('SY_ERR_BAD_FRAME', `recover names ${topic}, which is not a concrete topic of this Subscribe`, {
        details: { topics: [topic] },
      });
    }
    const position = positionFrom(from);
    if (position === undefined) {
      throw new BrokerError('SY_ERR_BAD_FRAME', `recover for ${topic} must be {offset, epoch} (a non-negative integer and a string) or a non-negative integer`, {
        details: { topics: [topic] },
      });
    }
    if (!keepsHistory(topic)) {
      throw new BrokerError('SY_ERR_BAD_FRAME', `${topic} keeps no history to recover from`, { details: { topics: [topic] } });
    }
    entries.push([topic, position]);
  }
  return entries;
}
