/**
 * Topic syntax: levels joined by a separator, with MQTT 3.1.1 §4.7 wildcards in subscriptions.
 * The characters are options so `.` with `*` can serve seed 001's `updates.*`.
 */
import { BrokerError } from './errors.js';

export interface TopicOptions {
  /** Level separator. Default `'/'`. */
  separator?: string;
  /** Single-level wildcard. Default `'+'`. */
  single?: string;
  /** Multi-level wildcard, last level only. Default `'#'`. */
  multi?: string;
  /** Longest topic or pattern, in UTF-16 code units. Default 256. */
  maxLength?: number;
  /** Most levels in a topic or pattern. Default 16. */
  maxDepth?: number;
}

export interface TopicSyntax {
  readonly separator: string;
  readonly single: string;
  readonly multi: string;
  readonly maxLength: number;
  readonly maxDepth: number;
}

export function resolveTopicSyntax(options: TopicOptions = {}): TopicSyntax {
  const syntax: TopicSyntax = {
    separator: options.separator ?? '/',
    single: options.single ?? '+',
    multi: options.multi ?? '#',
    maxLength: options.maxLength ?? 256,
    maxDepth: options.maxDepth ?? 16,
  };
  const chars = [syntax.separator, syntax.single, syntax.multi];
  if (chars.some((c) => c.length !== 1) || new Set(chars).size !== 3) {
    throw new BrokerError('SY_ERR_OPTIONS', 'topics: separator, single and multi must be three distinct single characters');
  }
  if (!(syntax.maxLength > 0) || !(syntax.maxDepth > 0)) {
    throw new BrokerError('SY_ERR_OPTIONS', 'topics: maxLength and maxDepth must be positive');
  }
  return syntax;
}

/**
 * Returns why `topic` is not acceptable, or `null` when it is. With `pattern` true the
 * wildcards are allowed (each alone in its level, the multi-level one last). One pass over the
 * characters, no allocation: every publish is checked.
 */
export function checkTopic(syntax: TopicSyntax, topic: unknown, pattern: boolean): string | null {
  if (typeof topic !== 'string') return 'topic must be a string';
  const length = topic.length;
  if (length === 0) return 'topic is empty';
  if (length > syntax.maxLength) return `topic is longer than ${syntax.maxLength} characters`;
  if (topic.includes('\0')) return 'topic contains NUL';
  // Lone surrogates cannot be encoded as UTF-8: they are what "bad UTF-8" looks like after JSON.parse.
  if (!topic.isWellFormed()) return 'topic is not valid UTF-8';
  const separator = syntax.separator.charCodeAt(0);
  const single = syntax.single.charCodeAt(0);
  const multi = syntax.multi.charCodeAt(0);
  let levels = 1;
  let levelStart = 0;
  let wildcard: string | null = null; // the first wildcard problem; the depth is reported first
  for (let i = 0; i < length; i++) {
    const c = topic.charCodeAt(i);
    if (c === separator) {
      levels++;
      levelStart = i + 1;
    } else if ((c === single || c === multi) && wildcard === null) {
      const alone = i === levelStart && (i + 1 === length || topic.charCodeAt(i + 1) === separator);
      if (!pattern) wildcard = `wildcards ('${syntax.single}', '${syntax.multi}') are not allowed in a topic to publish to`;
      else if (c === single && !alone) wildcard = `'${syntax.single}' must occupy a whole level`;
      else if (c === multi && (!alone || i + 1 !== length)) wildcard = `'${syntax.multi}' must be the whole last level`;
    }
  }
  if (levels > syntax.maxDepth) return `topic has more than ${syntax.maxDepth} levels`;
  return wildcard;
}

/** Throws a 400 BrokerError naming the topic when it is not acceptable. */
export function assertTopic(syntax: TopicSyntax, topic: unknown, pattern: boolean): asserts topic is string {
  const problem = checkTopic(syntax, topic, pattern);
  if (problem !== null) {
    throw new BrokerError('SY_ERR_BAD_TOPIC', `invalid topic: ${problem}`, { details: { topics: [topic] } });
  }
}

export function hasWildcard(syntax: TopicSyntax, pattern: string): boolean {
  return firstWildcard(syntax, pattern) !== -1;
}

/** Index of the first wildcard character in `pattern`, or -1. */
function firstWildcard(syntax: TopicSyntax, pattern: string): number {
  const single = pattern.indexOf(syntax.single);
  const multi = pattern.indexOf(syntax.multi);
  return single === -1 ? multi : multi === -1 ? single : Math.min(single, multi);
}

/**
 * Whether a concrete topic matches a pattern (MQTT §4.7: `a/#` matches `a`, `+` matches an
 * empty level, wildcards at the first level do not match topics starting with `$`).
 */
export function matches(syntax: TopicSyntax, pattern: string, topic: string): boolean {
  return covers(syntax, pattern, topic);
}

/**
 * Whether every topic matched by `inner` is also matched by `outer`. With a concrete `inner`
 * this is plain matching. `sensors/#` covers `sensors/+/temp`; the reverse does not hold.
 */
export function covers(syntax: TopicSyntax, outer: string, inner: string): boolean {
  if (outer === inner) return true;
  // Fast paths for the common grants ('#', 'a/b/#', concrete topics), checked on every publish.
  if (outer === syntax.multi) return !inner.startsWith('$');
  const wildAt = firstWildcard(syntax, outer);
  if (wildAt === -1) return false; // a concrete pattern covers only itself
  if (wildAt === outer.length - 1 && outer[wildAt] === syntax.multi && outer[wildAt - 1] === syntax.separator) {
    // 'prefix/#': the prefix itself and everything below it ('$' only matters at a wildcard first level)
    const prefixLength = wildAt - 1;
    return inner.startsWith(outer.slice(0, prefixLength)) && (inner.length === prefixLength || inner[prefixLength] === syntax.separator);
  }
  const o = outer.split(syntax.separator);
  const n = inner.split(syntax.separator);
  if (n[0]?.startsWith('$') && (o[0] === syntax.single || o[0] === syntax.multi)) return false;
  for (let i = 0; i < o.length; i++) {
    const level = o[i]!;
    if (level === syntax.multi) return true; // covers the rest, including nothing at all
    if (i >= n.length) return false;
    const other = n[i]!;
    if (other === syntax.multi) return false; // a multi-level inner needs a multi-level outer
    if (level === syntax.single) continue; // one level: a name or a single wildcard
    if (level !== other) return false;
  }
  return o.length === n.length;
}
