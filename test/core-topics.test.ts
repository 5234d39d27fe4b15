/**
 * Topic syntax at its edges (checkTopic, resolveTopicSyntax, covers, matches): the bounds, wildcards
 * glued to text, custom characters. Written from `npm run mutate` survivors (issue 19).
 */
import { describe, expect, it } from 'vitest';
import { BrokerError, checkTopic, covers, matches, resolveTopicSyntax } from 'switchyard';

const mqtt = resolveTopicSyntax();
const dotted = resolveTopicSyntax({ separator: '.', single: '*', multi: '>' });
const levels = (n: number) => Array.from({ length: n }, (_, i) => `l${i}`).join('/');

describe('topic bounds', () => {
  it('accepts 256 characters and refuses 257 (the default maxLength)', () => {
    expect(checkTopic(mqtt, 'a'.repeat(256), false)).toBeNull();
    expect(checkTopic(mqtt, 'a'.repeat(256), true)).toBeNull();
    expect(checkTopic(mqtt, 'a'.repeat(257), false)).toBe('topic is longer than 256 characters');
  });

  it('accepts 16 levels and refuses 17 (the default maxDepth)', () => {
    expect(checkTopic(mqtt, levels(16), false)).toBeNull();
    expect(checkTopic(mqtt, `${levels(15)}/#`, true)).toBeNull();
    expect(checkTopic(mqtt, levels(17), false)).toBe('topic has more than 16 levels');
    expect(checkTopic(mqtt, '/'.repeat(15), false)).toBeNull(); // 16 empty levels
    expect(checkTopic(mqtt, '/'.repeat(16), false)).toBe('topic has more than 16 levels');
  });

  it('honours configured bounds exactly', () => {
    const small = resolveTopicSyntax({ maxLength: 5, maxDepth: 2 });
    expect(checkTopic(small, 'abcde', false)).toBeNull();
    expect(checkTopic(small, 'abcdef', false)).toBe('topic is longer than 5 characters');
    expect(checkTopic(small, 'a/b', false)).toBeNull();
    expect(checkTopic(small, 'a/b/c', false)).toBe('topic has more than 2 levels');
    const one = resolveTopicSyntax({ maxLength: 1, maxDepth: 1 });
    expect(checkTopic(one, 'a', false)).toBeNull();
  });

  it('reports the depth before a wildcard problem', () => {
    expect(checkTopic(mqtt, `a+/${levels(16)}`, true)).toBe('topic has more than 16 levels');
  });

  it('names what is wrong with the empty topic, NUL and lone surrogates', () => {
    expect(checkTopic(mqtt, '', true)).toBe('topic is empty');
    expect(checkTopic(mqtt, 'a\0', false)).toBe('topic contains NUL');
    expect(checkTopic(mqtt, '\udc00/a', false)).toBe('topic is not valid UTF-8');
    expect(checkTopic(mqtt, 'ok/\ud83d\ude00', false)).toBeNull(); // a surrogate pair is fine
    expect(checkTopic(mqtt, null, true)).toBe('topic must be a string');
  });
});

describe('wildcards glued to text', () => {
  it.each(['a/+b', 'a/b+', '+b', 'b+', '+/b+', 'a/++', '+a/b'])("refuses %j: '+' must occupy a whole level", (pattern) => {
    expect(checkTopic(mqtt, pattern, true)).toBe("'+' must occupy a whole level");
  });

  it.each(['#b', 'b#', 'a/#b', 'a/b#', '#/', 'a/#/', '#/a', '##'])("refuses %j: '#' must be the whole last level", (pattern) => {
    expect(checkTopic(mqtt, pattern, true)).toBe("'#' must be the whole last level");
  });

  it.each(['+', '#', '+/#', 'a/+', '+/a', 'a/+/b', '+/+', 'a/#', '/+', '+/', '/#'])('accepts %j as a pattern', (pattern) => {
    expect(checkTopic(mqtt, pattern, true)).toBeNull();
  });

  it('reports the first wildcard problem, not a later one', () => {
    expect(checkTopic(mqtt, 'a+/#b', true)).toBe("'+' must occupy a whole level");
    expect(checkTopic(mqtt, '#b/c+', true)).toBe("'#' must be the whole last level");
  });

  it('refuses any wildcard, glued or alone, in a topic to publish to, naming the characters', () => {
    for (const topic of ['a+b', 'a/+', '#', 'x#y']) {
      expect(checkTopic(mqtt, topic, false)).toBe("wildcards ('+', '#') are not allowed in a topic to publish to");
    }
    expect(checkTopic(dotted, 'a.*', false)).toBe("wildcards ('*', '>') are not allowed in a topic to publish to");
    expect(checkTopic(dotted, 'a.*b', true)).toBe("'*' must occupy a whole level");
    expect(checkTopic(dotted, 'a.>.b', true)).toBe("'>' must be the whole last level");
  });
});

describe('resolveTopicSyntax', () => {
  it('defaults to MQTT: / + #, 256 characters, 16 levels', () => {
    expect(resolveTopicSyntax()).toEqual({ separator: '/', single: '+', multi: '#', maxLength: 256, maxDepth: 16 });
    expect(resolveTopicSyntax({})).toEqual(resolveTopicSyntax());
  });

  it.each([
    [{ separator: '::' }],
    [{ separator: '' }],
    [{ single: '**' }],
    [{ multi: '' }],
    [{ multi: '>>' }],
    [{ separator: '+' }],
    [{ single: '#' }],
    [{ multi: '/' }],
  ])('refuses %j at construction: three distinct single characters', (options) => {
    const error = (() => {
      try {
        resolveTopicSyntax(options);
      } catch (e) {
        return e;
      }
      return null;
    })();
    expect(error).toBeInstanceOf(BrokerError);
    expect(error).toMatchObject({ code: 'SY_ERR_OPTIONS', message: expect.stringContaining('three distinct single characters') });
  });

  it.each([
    [{ maxLength: 0 }],
    [{ maxLength: -1 }],
    [{ maxLength: Number.NaN }],
    [{ maxDepth: 0 }],
    [{ maxDepth: -3 }],
    [{ maxDepth: Number.NaN }],
  ])('refuses %j at construction: bounds must be positive', (options) => {
    expect(() => resolveTopicSyntax(options)).toThrow(/maxLength and maxDepth must be positive/);
  });

  it('accepts any other three distinct characters', () => {
    const s = resolveTopicSyntax({ separator: ':', single: '?', multi: '!' });
    expect(checkTopic(s, 'a:?:!', true)).toBeNull();
    expect(matches(s, 'a:?:!', 'a:b:c:d')).toBe(true);
  });
});

describe('covers and matches, called directly', () => {
  it.each([
    // 'prefix/#' fast path: the prefix itself and everything below, never a longer sibling name
    ['a/b/#', 'a/b', true],
    ['a/b/#', 'a/b/c/d', true],
    ['a/b/#', 'a/bc', false],
    ['a/b/#', 'a/bc/d', false],
    ['a/b/#', 'a', false],
    ['a/b/#', 'x/b/c', false],
    ['a/b/#', 'a/b/+', true],
    ['a/b/#', 'a/+/c', false],
    ['$SYS/#', '$SYS', true],
    // '#' fast path
    ['#', '#', true],
    ['#', '+/x', true],
    ['#', '$SYS', false],
    ['#', 'a/$b', true],
    // the level-by-level path
    ['a/+/b/#', 'a/x/b/c', true],
    ['a/+/b/#', 'a/x/b', true],
    ['a/+/b/#', 'a/x/c/d', false],
    ['a/+/#', 'a/x/y/z', true],
    ['+/#', '$SYS/x', false],
    ['+/x', '$SYS/x', false],
    ['+/x', 'SYS$/x', true], // only a leading '$' counts
    ['#', 'SYS$', true],
    ['a/+', 'a/$x', true],
    ['+/+', 'a/b/c', false],
    ['+/+', 'a', false],
    ['a/+/c', 'a/+/c', true],
    ['a/+/c', 'a/b/d', false],
    ['a/+/c', 'b/x/c', false],
    ['a/+/+', 'a/+/#', false],
    ['a/+/#', 'a/+/#', true],
    ['a/+/#', 'a/b/#', true],
    ['+/b', 'a/b', true],
    ['a/b', 'a/+', false],
  ])('covers(%j, %j) is %s', (outer, inner, expected) => {
    expect(covers(mqtt, outer, inner)).toBe(expected);
  });

  it('matches a concrete topic with the same rules', () => {
    expect(matches(mqtt, 'sensors/+/temp', 'sensors/room1/temp')).toBe(true);
    expect(matches(mqtt, 'sensors/+/temp', 'sensors/room1/humidity')).toBe(false);
    expect(matches(mqtt, 'sensors/#', 'sensors')).toBe(true);
    expect(matches(mqtt, 'sensors/#', 'sensorsX')).toBe(false);
    expect(matches(mqtt, '#', '$SYS/x')).toBe(false);
    expect(matches(mqtt, 'a/b', 'a/b')).toBe(true);
    expect(matches(mqtt, 'a/b', 'a/c')).toBe(false);
  });

  it('uses the configured characters, and treats the defaults as plain text under them', () => {
    expect(covers(dotted, 'updates.>', 'updates')).toBe(true);
    expect(covers(dotted, 'updates.>', 'updates.a.b')).toBe(true);
    expect(covers(dotted, 'updates.>', 'updatesX')).toBe(false);
    expect(covers(dotted, '>', 'a.b')).toBe(true);
    expect(covers(dotted, '*.x', 'a.x')).toBe(true);
    expect(covers(dotted, '*.x', 'a.b.x')).toBe(false);
    expect(covers(dotted, 'a/#', 'a/b')).toBe(false); // '#' is text here
    expect(covers(dotted, 'a/+', 'a/b')).toBe(false);
    expect(covers(dotted, 'a.*.>', 'a.b.c.d')).toBe(true);
  });
});
