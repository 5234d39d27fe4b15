/**
 * A host publishing to a bad topic gets a 400 naming the topic (assertTopic), and which patterns
 * count as wildcards (hasWildcard, behind `recover`'s "concrete topics only" rule). Written from
 * `npm run mutate` survivors (issue 19): no test of the core's own files reached either.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { BrokerError, covers, createBroker, envelope, type Broker } from 'switchyard';
import { hasWildcard, resolveTopicSyntax } from '../lib/topics.js';

let broker: Broker | undefined;
afterEach(async () => {
  await broker?.close();
  broker = undefined;
});

function make(topics?: Parameters<typeof resolveTopicSyntax>[0]): Broker {
  broker = createBroker({ endpoints: [{ path: '/ws', protocol: envelope() }], authenticate: () => ({ id: 'host' }), ...(topics ? { topics } : {}) });
  return broker;
}

async function publishError(b: Broker, topic: unknown): Promise<unknown> {
  try {
    await b.publish(topic as string, { n: 1 });
  } catch (e) {
    return e;
  }
  return null;
}

describe('Broker.publish refuses a bad topic with a 400 naming it', () => {
  it.each([
    ['a/+', "wildcards ('+', '#') are not allowed in a topic to publish to"],
    ['#', "wildcards ('+', '#') are not allowed in a topic to publish to"],
    ['', 'topic is empty'],
    ['x'.repeat(257), 'topic is longer than 256 characters'],
  ])('%j', async (topic, why) => {
    const error = await publishError(make(), topic);
    expect(error).toBeInstanceOf(BrokerError);
    expect(error).toMatchObject({ code: 'SY_ERR_BAD_TOPIC', status: 400, message: `invalid topic: ${why}`, details: { topics: [topic] } });
  });

  it('names a non-string topic as given', async () => {
    const error = await publishError(make(), 42);
    expect(error).toMatchObject({ code: 'SY_ERR_BAD_TOPIC', message: 'invalid topic: topic must be a string', details: { topics: [42] } });
  });

  it('publishes to a good topic, at the exact bounds too', async () => {
    const b = make({ maxLength: 8, maxDepth: 3 });
    await expect(b.publish('a/b/c', 1)).resolves.toBeDefined();
    await expect(b.publish('abcdefgh', 1)).resolves.toBeDefined();
    expect(await publishError(b, 'a/b/c/d')).toMatchObject({ code: 'SY_ERR_BAD_TOPIC', message: 'invalid topic: topic has more than 3 levels' });
  });
});

describe('hasWildcard', () => {
  const mqtt = resolveTopicSyntax();
  const dotted = resolveTopicSyntax({ separator: '.', single: '*', multi: '>' });

  it.each([
    ['a/+', true],
    ['+', true],
    ['a/#', true],
    ['#', true],
    ['+/#', true],
    ['a/b', false],
    ['a', false],
    ['a.*', false], // the dotted characters are plain text under '/', '+', '#'
  ])('%j under / + # is %s', (pattern, expected) => {
    expect(hasWildcard(mqtt, pattern)).toBe(expected);
  });

  it('uses the configured characters', () => {
    expect(hasWildcard(dotted, 'a.*')).toBe(true);
    expect(hasWildcard(dotted, 'a.>')).toBe(true);
    expect(hasWildcard(dotted, 'a/+/#')).toBe(false);
  });
});

describe('covers with a malformed pattern (grants and history.topics are not validated)', () => {
  const mqtt = resolveTopicSyntax();

  it("treats a '#' glued to text as text: 'ab#' covers nothing under 'a'", () => {
    expect(covers(mqtt, 'ab#', 'a')).toBe(false);
    expect(covers(mqtt, 'ab#', 'a/x')).toBe(false);
    expect(covers(mqtt, 'a#', '')).toBe(false);
    expect(covers(mqtt, 'a#', '/x')).toBe(false);
  });

  it("never lets a leading '#' level reach a '$' topic, even with levels after it", () => {
    expect(covers(mqtt, '#/a', '$SYS/a')).toBe(false);
    expect(covers(mqtt, '#/a', 'x/a')).toBe(true); // '#' covers the rest, whatever follows it
  });
});
