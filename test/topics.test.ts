import { describe, expect, it } from 'vitest';
import { checkTopic, covers, grantsAllow, resolveTopicSyntax, TopicIndex } from 'switchyard';

const mqtt = resolveTopicSyntax();
const dotted = resolveTopicSyntax({ separator: '.', single: '*', multi: '>' });

function matched(index: TopicIndex<string, null>, topic: string): string[] {
  const out: string[] = [];
  index.match(topic, (key) => out.push(key));
  return out.sort();
}

describe('topic validation', () => {
  it.each([
    ['', 'empty'],
    ['a'.repeat(257), 'longer than 256'],
    [Array(17).fill('a').join('/'), 'more than 16 levels'],
    ['a/\0/b', 'NUL'],
    ['chat/\ud800', 'not valid UTF-8'],
    ['a/b+/c', "'+' must occupy a whole level"],
    ['a/#/c', "'#' must be the whole last level"],
    ['a/b#', "'#' must be the whole last level"],
  ])('rejects pattern %j (%s)', (topic, why) => {
    expect(checkTopic(mqtt, topic, true)).toContain(why);
  });

  it('refuses wildcards in a topic to publish to, allows them in patterns', () => {
    expect(checkTopic(mqtt, 'a/+/c', false)).toContain('not allowed');
    expect(checkTopic(mqtt, 'a/#', false)).toContain('not allowed');
    expect(checkTopic(mqtt, 'a/+/c', true)).toBeNull();
    expect(checkTopic(mqtt, '#', true)).toBeNull();
    expect(checkTopic(mqtt, 'a//b', false)).toBeNull(); // empty levels are legal (MQTT)
  });

  it('rejects non-strings', () => {
    expect(checkTopic(mqtt, 42, false)).toBe('topic must be a string');
  });

  it('honours configured characters and bounds', () => {
    expect(checkTopic(dotted, 'updates.*', true)).toBeNull();
    expect(checkTopic(dotted, 'updates.>', true)).toBeNull();
    expect(checkTopic(dotted, 'updates/+', false)).toBeNull(); // '/' and '+' are plain characters here
    const short = resolveTopicSyntax({ maxLength: 8, maxDepth: 2 });
    expect(checkTopic(short, 'a/b/c', false)).toContain('more than 2 levels');
    expect(checkTopic(short, 'abcdefghi', false)).toContain('longer than 8');
    expect(() => resolveTopicSyntax({ separator: '+' })).toThrow(/distinct/);
  });
});

describe('coverage (grants) — DESIGN.md', () => {
  it.each([
    ['sensors/#', 'sensors/+/temp', true],
    ['sensors/+/temp', 'sensors/#', false],
    ['sensors/#', 'sensors', true], // MQTT: a/# matches a
    ['sensors/+', 'sensors', false],
    ['sensors/+', 'sensors/+', true],
    ['sensors/+', 'sensors/room1', true],
    ['sensors/room1', 'sensors/+', false],
    ['#', 'anything/at/all', true],
    ['#', '$SYS/info', false], // wildcards at the first level do not reach $-topics
    ['$SYS/#', '$SYS/info', true],
    ['+/+', 'a/#', false],
    ['a/b', 'a/b/c', false],
    ['a/b/c', 'a/b', false],
  ])('%s covers %s: %s', (outer, inner, expected) => {
    expect(covers(mqtt, outer, inner)).toBe(expected);
  });

  it('agrees with a level-by-level reference on every pair of small patterns', () => {
    // The reference is the textbook rule; covers() has fast paths ('#', 'prefix/#', concrete)
    // that must give the same answers, '$' rule and empty levels included.
    const reference = (outer: string, inner: string): boolean => {
      const o = outer.split('/');
      const n = inner.split('/');
      if (n[0]!.startsWith('$') && (o[0] === '+' || o[0] === '#')) return false;
      for (let i = 0; i < o.length; i++) {
        if (o[i] === '#') return true;
        if (i >= n.length || n[i] === '#') return false;
        if (o[i] !== '+' && o[i] !== n[i]) return false;
      }
      return o.length === n.length;
    };
    const levels = ['a', 'b', '', '$s', '+', '#'];
    const patterns = new Set<string>();
    for (const x of levels) {
      patterns.add(x);
      for (const y of levels) {
        patterns.add(`${x}/${y}`);
        for (const z of levels) patterns.add(`${x}/${y}/${z}`);
      }
    }
    const valid = [...patterns].filter((p) => checkTopic(mqtt, p || 'x', true) === null && p !== '');
    let checked = 0;
    for (const outer of valid) {
      for (const inner of valid) {
        expect([outer, inner, covers(mqtt, outer, inner)]).toEqual([outer, inner, reference(outer, inner)]);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(10_000);
  });

  it('publishing needs a readwrite grant that matches the topic', () => {
    const grants = [
      { topic: 'chat/#', access: 'readwrite' as const },
      { topic: 'news/+', access: 'read' as const },
    ];
    expect(grantsAllow(mqtt, grants, 'publish', 'chat/general')).toBe(true);
    expect(grantsAllow(mqtt, grants, 'publish', 'news/today')).toBe(false);
    expect(grantsAllow(mqtt, grants, 'subscribe', 'news/today')).toBe(true);
    expect(grantsAllow(mqtt, grants, 'subscribe', 'news/#')).toBe(false);
    expect(grantsAllow(mqtt, undefined, 'subscribe', 'chat/x')).toBe(false);
  });
});

describe('TopicIndex (MQTT 3.1.1 §4.7 matching)', () => {
  it('matches exact, single- and multi-level wildcards', () => {
    const index = new TopicIndex<string, null>(mqtt);
    for (const p of ['a/b/c', 'a/+/c', 'a/#', '#', '+/b/+', 'a/b', 'x/y']) index.add(p, p, null);
    expect(matched(index, 'a/b/c')).toEqual(['#', '+/b/+', 'a/#', 'a/+/c', 'a/b/c']);
    expect(matched(index, 'a')).toEqual(['#', 'a/#']); // a/# matches its parent
    expect(matched(index, 'a/b')).toEqual(['#', 'a/#', 'a/b']);
    expect(matched(index, 'q')).toEqual(['#']);
  });

  it('lets + match an empty level', () => {
    const index = new TopicIndex<string, null>(mqtt);
    index.add('a/+/c', 'k', null);
    expect(matched(index, 'a//c')).toEqual(['k']);
  });

  it('keeps $-topics out of first-level wildcards', () => {
    const index = new TopicIndex<string, null>(mqtt);
    index.add('#', 'all', null);
    index.add('+/info', 'plus', null);
    index.add('$SYS/#', 'sys', null);
    expect(matched(index, '$SYS/info')).toEqual(['sys']);
    expect(matched(index, 'x/info')).toEqual(['all', 'plus']);
  });

  it('visits a key once per pattern and forgets removed patterns', () => {
    const index = new TopicIndex<string, null>(mqtt);
    index.add('a/#', 'k', null);
    index.add('a/b', 'k', null);
    index.add('a/b', 'j', null);
    const visits: string[] = [];
    index.match('a/b', (key) => visits.push(key));
    expect(visits.sort()).toEqual(['j', 'k', 'k']); // the broker dedupes per connection
    expect(index.size).toBe(2);
    expect(index.remove('a/b', 'k')).toBe(true);
    expect(index.remove('a/b', 'k')).toBe(false);
    expect(index.remove('nope/x', 'k')).toBe(false);
    expect(matched(index, 'a/b')).toEqual(['j', 'k']);
    index.remove('a/b', 'j');
    index.remove('a/#', 'k');
    expect(index.size).toBe(0);
    expect(matched(index, 'a/b')).toEqual([]);
  });

  it('serves the exact-only fast path and the mixed path alike', () => {
    const index = new TopicIndex<string, null>(mqtt);
    for (let i = 0; i < 1000; i++) index.add(`t/${i}`, `s${i}`, null);
    expect(matched(index, 't/42')).toEqual(['s42']);
    index.add('t/+', 'wild', null);
    expect(matched(index, 't/42')).toEqual(['s42', 'wild']);
    index.remove('t/+', 'wild');
    expect(matched(index, 't/999')).toEqual(['s999']);
  });

  it('works with a custom separator and wildcards', () => {
    const index = new TopicIndex<string, null>(dotted);
    index.add('updates.*', 'one', null);
    index.add('updates.>', 'many', null);
    expect(matched(index, 'updates.x')).toEqual(['many', 'one']);
    expect(matched(index, 'updates.x.y')).toEqual(['many']);
  });

  it('keeps the value given per subscription', () => {
    const index = new TopicIndex<string, number>(mqtt);
    index.add('a/+', 'k', 1);
    index.add('a/+', 'k', 2); // replaces
    const values: number[] = [];
    index.match('a/z', (_k, v) => values.push(v));
    expect(values).toEqual([2]);
  });
});
