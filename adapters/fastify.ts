/**
 * A Fastify plugin that serves the broker's endpoints as Fastify routes: each upgrade request
 * for a broker path is routed through Fastify (its router, the app's hooks, the hooks given
 * here) before the broker decides, as @fastify/websocket does; other upgrades get Fastify's
 * own answer (its 404). Closing the app closes the broker.
 */
import type { IncomingMessage } from 'node:http';
import type { FastifyPluginAsync, FastifyRequest, RouteShorthandOptions } from 'fastify';
import { adoptLogger, type Broker, type Handshake } from 'switchyard';
import { attach, endpointPaths, frameworkGate, upgradeResponse } from 'switchyard/http';

export interface FastifySwitchyardOptions {
  broker: Broker;
  /** Hooks for the broker's routes, after the app's own (inherited) hooks, before `authenticate`. */
  onRequest?: RouteShorthandOptions['onRequest'];
  preHandler?: RouteShorthandOptions['preHandler'];
}

const passed = new WeakMap<IncomingMessage, FastifyRequest>();

/** The Fastify request the hooks ran on, in `authenticate`: `fastifyRequest(handshake)?.user`. */
export function fastifyRequest(handshake: Handshake): FastifyRequest | undefined {
  return passed.get(handshake.request);
}

/**
 * Registered without fastify-plugin on purpose: it decorates nothing, so nothing needs to
 * escape its context. Its routes still inherit the hooks of the contexts above it.
 */
export const fastifySwitchyard: FastifyPluginAsync<FastifySwitchyardOptions> = async (fastify, options) => {
  const { broker, onRequest, preHandler } = options;
  if (fastify.prefix !== '') throw new Error('fastifySwitchyard: register it without a prefix; endpoint paths are absolute');
  // The app's logger (pino) is the broker's, unless the broker was given its own.
  adoptLogger(broker, fastify.log);
  const gate = frameworkGate<FastifyRequest>((req, res) => fastify.routing(req, res), passed);
  for (const url of endpointPaths(broker)) {
    if (fastify.hasRoute({ method: 'GET', url })) {
      throw new Error(`fastifySwitchyard: GET ${url} is already a route of this app (a @fastify/websocket route?); a broker endpoint's path must be the broker's alone: give one of them another path`);
    }
    fastify.route({
      method: 'GET',
      url,
      ...(onRequest !== undefined && { onRequest }),
      ...(preHandler !== undefined && { preHandler }),
      handler: (request, reply) => {
        if (!gate.pass(request.raw, request)) return reply.code(426).header('upgrade', 'websocket').send({ message: 'Upgrade Required' });
        reply.hijack();
      },
    });
  }
  const detach = attach(broker, fastify.server, {
    notFound: (req, socket) => fastify.routing(req, upgradeResponse(req, socket)),
    prepare: gate.prepare,
  });
  // preClose, not only onClose: Fastify closes its server before onClose hooks run, and the
  // server waits for every upgraded socket, so the broker's connections must go first.
  const shutdown = async (): Promise<void> => {
    detach();
    await broker.close();
  };
  fastify.addHook('preClose', shutdown);
  fastify.addHook('onClose', shutdown);
};
