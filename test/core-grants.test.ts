/**
 * The built-in permission model called directly: `grants()` (the default authorize) and
 * `grantsAllow`. Written from `npm run mutate` survivors (issue 19).
 */
import { describe, expect, it } from 'vitest';
import { grants, grantsAllow, resolveTopicSyntax, type Grant, type Principal } from 'switchyard';

const mqtt = resolveTopicSyntax();
const dotted = resolveTopicSyntax({ separator: '.', single: '*', multi: '>' });

describe('grantsAllow', () => {
  it('looks past grants that do not apply to one that does', () => {
    const list: Grant[] = [
      { topic: 'news/#', access: 'read' },
      { topic: 'chat/+', access: 'read' },
      { topic: 'chat/general', access: 'readwrite' },
    ];
    expect(grantsAllow(mqtt, list, 'publish', 'chat/general')).toBe(true); // after a read grant that matches
    expect(grantsAllow(mqtt, list, 'publish', 'chat/random')).toBe(false); // only a read grant matches
    expect(grantsAllow(mqtt, list, 'subscribe', 'chat/random')).toBe(true);
    expect(grantsAllow(mqtt, list, 'subscribe', 'chat/+')).toBe(true);
    expect(grantsAllow(mqtt, list, 'subscribe', 'chat/#')).toBe(false); // no grant covers it all
    expect(grantsAllow(mqtt, list, 'publish', 'news/today')).toBe(false);
  });

  it('lets a readwrite grant allow subscribing too', () => {
    expect(grantsAllow(mqtt, [{ topic: 'a/#', access: 'readwrite' }], 'subscribe', 'a/+')).toBe(true);
  });

  it('allows nothing with no grants or an empty list, except direct messages', () => {
    expect(grantsAllow(mqtt, undefined, 'publish', 'a')).toBe(false);
    expect(grantsAllow(mqtt, [], 'subscribe', 'a')).toBe(false);
    expect(grantsAllow(mqtt, undefined, 'direct', 'bob')).toBe(true);
    expect(grantsAllow(mqtt, [], 'direct', 'bob')).toBe(true);
  });
});

describe('grants(): the default authorize', () => {
  const principal = (list?: Grant[]): Principal => ({ id: 'u', ...(list && { grants: list }) });

  it("decides with the principal's own grants and the broker's syntax from the context", async () => {
    const authorize = grants();
    const p = principal([{ topic: 'updates.>', access: 'read' }, { topic: 'cmd.*', access: 'readwrite' }]);
    const ctx = { params: {}, syntax: dotted };
    expect(await authorize(p, 'subscribe', 'updates.*', ctx)).toBe(true);
    expect(await authorize(p, 'publish', 'updates.x', ctx)).toBe(false);
    expect(await authorize(p, 'publish', 'cmd.reboot', ctx)).toBe(true);
    expect(await authorize(p, 'subscribe', 'other', ctx)).toBe(false);
    // the same grants read with MQTT characters mean something else
    expect(await authorize(p, 'subscribe', 'updates.x', { params: {}, syntax: mqtt })).toBe(false);
  });

  it('refuses a principal without grants, but lets it send direct messages', async () => {
    const authorize = grants();
    const ctx = { params: {}, syntax: mqtt };
    expect(await authorize(principal(), 'subscribe', 'a', ctx)).toBe(false);
    expect(await authorize(principal(), 'direct', 'bob', ctx)).toBe(true);
  });
});
