/**
 * The broker's logger takes `(msg, ctx)`; pino (Fastify's `app.log`) takes `(obj, msg)` and is
 * recognised and adapted, so switchyard's context reaches the log line; the Fastify plugin uses
 * the app's logger when the broker has none. Real pino through Fastify, real handshakes.
 */
import { Writable } from 'node:stream';
import Fastify from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { createBroker, envelope, objectFirst, type Broker, type BrokerOptions, type Logger } from 'switchyard';
import { fastifySwitchyard } from 'switchyard/fastify';
import { tryConnect } from './adapter-helpers.js';
import { until } from './helpers.js';

/** A pino destination that keeps the JSON lines. */
function sink(): { stream: Writable; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { stream, lines };
}

/** An authenticate that fails with a plain Error: reported (no 'error' listener) to the logger. */
function failingBroker(logger?: BrokerOptions['logger']): Broker {
  return createBroker({
    endpoints: [{ path: '/ws', protocol: envelope() }],
    heartbeat: false,
    ...(logger !== undefined && { logger }),
    authenticate: () => {
      throw new Error('session store down');
    },
  });
}

describe('logger conventions', () => {
  let app: ReturnType<typeof Fastify> | undefined;
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  async function fastifyWith(broker: Broker, lines: { stream: Writable }): Promise<number> {
    app = Fastify({ logger: { level: 'debug', stream: lines.stream } });
    await app.register(fastifySwitchyard, { broker });
    await app.listen({ port: 0, host: '127.0.0.1' });
    return (app.server.address() as { port: number }).port;
  }

  const hookFailure = (lines: Array<Record<string, unknown>>) => lines.find((l) => l.msg === 'session store down');

  it("the Fastify plugin logs through app.log when the broker has no logger; switchyard's context is in the line", async () => {
    const out = sink();
    const port = await fastifyWith(failingBroker(), out);
    expect(await tryConnect(`ws://127.0.0.1:${port}/ws`)).toEqual({ kind: 'close', code: 1011 });
    await until(() => hookFailure(out.lines) !== undefined, 'the log line');
    expect(hookFailure(out.lines)).toMatchObject({ level: 50, during: 'authenticate', path: '/ws', err: { message: 'session store down' } });
  });

  it('a pino logger given as the broker logger is adapted; a logger the host gave is kept by the plugin', async () => {
    const out = sink();
    const mine: string[] = [];
    const own: Logger = { debug() {}, info() {}, warn() {}, error: (msg, ctx) => void mine.push(`${msg} during ${String(ctx?.during)}`) };
    const port = await fastifyWith(failingBroker(own), out);
    expect(await tryConnect(`ws://127.0.0.1:${port}/ws`)).toEqual({ kind: 'close', code: 1011 });
    await until(() => mine.length > 0, "the host's logger");
    expect(mine).toEqual(['session store down during authenticate']);
    expect(hookFailure(out.lines)).toBeUndefined();

    // app.log given directly (pino's (obj, msg) order) is recognised.
    const other = sink();
    const pinoApp = Fastify({ logger: { stream: other.stream } });
    try {
      const broker = failingBroker(pinoApp.log);
      await pinoApp.register(fastifySwitchyard, { broker });
      await pinoApp.listen({ port: 0, host: '127.0.0.1' });
      const p = (pinoApp.server.address() as { port: number }).port;
      await tryConnect(`ws://127.0.0.1:${p}/ws`);
      await until(() => hookFailure(other.lines) !== undefined, 'the pino line');
      expect(hookFailure(other.lines)).toMatchObject({ during: 'authenticate', path: '/ws' });
    } finally {
      await pinoApp.close();
    }
  });

  it('objectFirst() adapts any (obj, msg) logger', () => {
    const calls: Array<[Record<string, unknown>, string | undefined]> = [];
    const record = (obj: Record<string, unknown>, msg?: string) => void calls.push([obj, msg]);
    const logger = objectFirst({ debug: record, info: record, warn: record, error: record });
    const err = new Error('x');
    logger.warn('slow consumer', { connection: 'c1' });
    logger.error('failed', { error: err, during: 'open' });
    logger.info('plain');
    expect(calls).toEqual([[{ connection: 'c1' }, 'slow consumer'], [{ during: 'open', err }, 'failed'], [{}, 'plain']]);
  });
});
