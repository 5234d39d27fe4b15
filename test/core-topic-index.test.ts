/**
 * TopicIndex when subscriptions come and go: several subscribers on one wildcard pattern,
 * siblings and parents in the trie, removals of what was never added, the pattern count.
 * Written from `npm run mutate` survivors (issue 19).
 */
import { describe, expect, it } from 'vitest';
import { resolveTopicSyntax, TopicIndex } from 'switchyard';

const mqtt = resolveTopicSyntax();

function index(...subscriptions: Array<[pattern: string, key: string]>): TopicIndex<string, string> {
  const i = new TopicIndex<string, string>(mqtt);
  for (const [pattern, key] of subscriptions) i.add(pattern, key, pattern);
  return i;
}

/** `key@pattern` for every subscription matching `topic`, sorted. */
function matched(i: TopicIndex<string, string>, topic: string): string[] {
  const out: string[] = [];
  i.match(topic, (key, pattern) => out.push(`${key}@${pattern}`));
  return out.sort();
}

describe('several subscribers on one wildcard pattern', () => {
  it.each(['a/+', 'a/#', '+', '#', '+/b/+'])('removing one of three on %j leaves the other two receiving', (pattern) => {
    const i = index([pattern, 'k1'], [pattern, 'k2'], [pattern, 'k3']);
    expect(i.size).toBe(1);
    expect(i.remove(pattern, 'k2')).toBe(true);
    expect(matched(i, 'a/b/c'.split('/').slice(0, pattern.split('/').length).join('/'))).toEqual([`k1@${pattern}`, `k3@${pattern}`]);
    expect(i.size).toBe(1);
    expect(i.remove(pattern, 'k2')).toBe(false); // already gone
    expect(i.remove(pattern, 'k1')).toBe(true);
    expect(i.remove(pattern, 'k3')).toBe(true);
    expect(i.size).toBe(0);
    expect(matched(i, 'a/b/c')).toEqual([]);
  });

  it('counts a pattern once however many subscribe, and drops to 0 when the last one leaves', () => {
    const i = index(['a/+', 'k1'], ['a/+', 'k2'], ['a/#', 'k1'], ['a/#', 'k2'], ['x', 'k1'], ['x', 'k2']);
    expect(i.size).toBe(3);
    i.add('a/+', 'k1', 'again'); // replacing a subscription adds no pattern
    expect(i.size).toBe(3);
    i.remove('a/+', 'k1');
    i.remove('a/#', 'k1');
    i.remove('x', 'k1');
    expect(i.size).toBe(3);
    i.remove('a/+', 'k2');
    expect(i.size).toBe(2);
    i.remove('a/#', 'k2');
    expect(i.size).toBe(1);
    i.remove('x', 'k2');
    expect(i.size).toBe(0);
    i.add('a/+', 'k9', 'back');
    expect(i.size).toBe(1);
    expect(matched(i, 'a/b')).toEqual(['k9@back']);
  });
});

describe('removing a pattern leaves its neighbours in the trie alone', () => {
  it('removing a/+/c does not touch a sibling a/+/d', () => {
    const i = index(['a/+/c', 'k'], ['a/+/d', 'k']);
    expect(i.remove('a/+/c', 'k')).toBe(true);
    expect(matched(i, 'a/x/d')).toEqual(['k@a/+/d']);
    expect(matched(i, 'a/x/c')).toEqual([]);
    expect(i.size).toBe(1);
  });

  it('removing a/# does not drop a/+ or a/+/c (same node, other slots)', () => {
    const i = index(['a/#', 'k'], ['a/+', 'k'], ['a/+/c', 'k']);
    expect(i.remove('a/#', 'k')).toBe(true);
    expect(matched(i, 'a/x')).toEqual(['k@a/+']);
    expect(matched(i, 'a/x/c')).toEqual(['k@a/+/c']);
    expect(matched(i, 'a')).toEqual([]);
  });

  it('removing a/+ keeps the longer a/+/c below it, and removing a/+/c keeps a/+ above it', () => {
    const i = index(['a/+', 'k'], ['a/+/c', 'k']);
    expect(i.remove('a/+', 'k')).toBe(true);
    expect(matched(i, 'a/x/c')).toEqual(['k@a/+/c']);
    expect(matched(i, 'a/x')).toEqual([]);
    const j = index(['a/+', 'k'], ['a/+/c', 'k']);
    expect(j.remove('a/+/c', 'k')).toBe(true);
    expect(matched(j, 'a/x')).toEqual(['k@a/+']);
  });

  it('removing a deeper branch keeps a shallower one through the same first level', () => {
    const i = index(['a/+', 'k'], ['a/x/+', 'k'], ['a/x/y/#', 'k']);
    expect(i.remove('a/x/y/#', 'k')).toBe(true);
    expect(i.remove('a/x/+', 'k')).toBe(true);
    expect(matched(i, 'a/q')).toEqual(['k@a/+']);
    expect(matched(i, 'a/x')).toEqual(['k@a/+']);
    expect(i.size).toBe(1);
    // the emptied branch can be built again
    i.add('a/x/+', 'k', 'a/x/+');
    expect(matched(i, 'a/x/z')).toEqual(['k@a/x/+']);
  });

  it('removing x/# keeps x/+ when both hang off one node', () => {
    const i = index(['x/#', 'k'], ['x/+', 'j']);
    expect(i.remove('x/#', 'k')).toBe(true);
    expect(matched(i, 'x/y')).toEqual(['j@x/+']);
  });
});

describe('removing what was never added', () => {
  it('returns false for a wildcard pattern never added, and changes nothing', () => {
    const i = index(['a/+', 'k'], ['a/+/c', 'k'], ['a/b/#', 'k'], ['q', 'k']);
    const before = matched(i, 'a/b/c');
    for (const pattern of ['b/+', 'a/+/d', 'a/#', 'a/b/+', 'a/+/c/#', '#', '+', 'a/b/c/+', 'a/b/x/#']) {
      expect(i.remove(pattern, 'k'), pattern).toBe(false);
    }
    expect(i.remove('a/+', 'other')).toBe(false); // pattern known, key not
    expect(i.remove('a/b/#', 'other')).toBe(false);
    expect(i.remove('q', 'other')).toBe(false);
    expect(i.remove('nope', 'k')).toBe(false);
    const prefixOnly = index(['x/+/c', 'k']); // 'x/+' is a node in the trie, but nobody's pattern
    expect(prefixOnly.remove('x/+', 'k')).toBe(false);
    expect(matched(prefixOnly, 'x/y/c')).toEqual(['k@x/+/c']);
    expect(i.size).toBe(4);
    expect(matched(i, 'a/b/c')).toEqual(before);
    expect(matched(i, 'a/b')).toEqual(['k@a/+', 'k@a/b/#']);
  });
});

describe('matching', () => {
  it('a single-level wildcard at the end matches exactly one more level', () => {
    const i = index(['a/+', 'k'], ['+', 'j']);
    expect(matched(i, 'a/b')).toEqual(['k@a/+']);
    expect(matched(i, 'a/b/c')).toEqual([]);
    expect(matched(i, 'a')).toEqual(['j@+']);
  });

  it('keeps $-topics out of wildcards at the first level only', () => {
    const i = index(['#', 'all'], ['+', 'one'], ['+/x', 'plus'], ['$SYS/+', 'sys'], ['$SYS/#', 'sysall'], ['a/#', 'a']);
    expect(matched(i, '$SYS')).toEqual(['sysall@$SYS/#']);
    expect(matched(i, '$SYS/x')).toEqual(['sys@$SYS/+', 'sysall@$SYS/#']);
    expect(matched(i, 'a/$x')).toEqual(['a@a/#', 'all@#']);
    expect(matched(i, 'b/x')).toEqual(['all@#', 'plus@+/x']);
    expect(matched(i, 'b$/x')).toEqual(['all@#', 'plus@+/x']); // only a leading '$' counts
  });

  it('finds exact and wildcard subscriptions of one topic together', () => {
    const i = index(['a/b', 'exact'], ['a/+', 'wild']);
    expect(matched(i, 'a/b')).toEqual(['exact@a/b', 'wild@a/+']);
    i.remove('a/+', 'wild');
    expect(matched(i, 'a/b')).toEqual(['exact@a/b']);
    i.remove('a/b', 'exact');
    expect(matched(i, 'a/b')).toEqual([]);
  });
});
