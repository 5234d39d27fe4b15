/**
 * Topic matching on the client side: one delivery frame names a concrete topic, and every
 * subscription whose pattern matches it hears it (the server sends a message once per
 * connection however many of its subscriptions overlap). MQTT 3.1.1 §4.7 rules, as the server.
 */
export interface TopicSyntax {
  /** Level separator. Default `/`. */
  separator: string;
  /** One-level wildcard. Default `+`. */
  single: string;
  /** Multi-level wildcard (last level only). Default `#`. */
  multi: string;
}

export const DEFAULT_SYNTAX: TopicSyntax = { separator: '/', single: '+', multi: '#' };

export function isPattern(syntax: TopicSyntax, pattern: string): boolean {
  return pattern.split(syntax.separator).some((l) => l === syntax.single || l === syntax.multi);
}

export function topicMatches(syntax: TopicSyntax, pattern: string, topic: string): boolean {
  if (pattern === topic) return true;
  const p = pattern.split(syntax.separator);
  const t = topic.split(syntax.separator);
  // Wildcards at the first level do not match `$` topics ($presence…).
  if (topic.startsWith('$') && (p[0] === syntax.single || p[0] === syntax.multi)) return false;
  for (let i = 0; i < p.length; i++) {
    if (p[i] === syntax.multi) return true;
    if (i >= t.length || (p[i] !== syntax.single && p[i] !== t[i])) return false;
  }
  return p.length === t.length;
}
