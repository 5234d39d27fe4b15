/**
 * Mounts a broker on the http.Server a Koa app listens on. Upgrades for the broker's paths can
 * first run a composition of middleware on a Koa context built by the app (its `app.context`,
 * `keys`, `proxy`); upgrades for other paths go to the app, which answers as it always would.
 */
import type { IncomingMessage, Server } from 'node:http';
import Koa, { type Context, type Middleware } from 'koa';
import type { Broker, Handshake } from 'switchyard';
import { attach as attachHttp, frameworkGate, upgradeResponse } from 'switchyard/http';

export interface KoaAttachOptions {
  /**
   * The app serving `server`. It answers upgrade requests for paths the broker does not own
   * (its router, its 404) when no other 'upgrade' listener takes them, and `use` runs on
   * contexts built from its `app.context`, `keys` and proxy settings.
   */
  app?: Koa;
  /**
   * Middleware composed and run on each upgrade request for the broker's paths before
   * `authenticate`; the context (and its `ctx.state`) is `koaContext(handshake)`. One that
   * answers instead of calling `next()`, or throws (`ctx.throw(401)`), refuses with that answer.
   */
  use?: Middleware[];
}

const passed = new WeakMap<IncomingMessage, Context>();

/** The Koa context `use` ran on, in `authenticate`: `koaContext(handshake)?.state.user`. */
export function koaContext(handshake: Handshake): Context | undefined {
  return passed.get(handshake.request);
}

/** Attaches the broker to `server` (what `app.listen()` returns). Returns `detach()`. */
export function attach(broker: Broker, server: Server, options: KoaAttachOptions = {}): () => void {
  const { app, use = [] } = options;
  const chain = new Koa();
  if (app !== undefined) {
    Object.assign(chain, { keys: app.keys, proxy: app.proxy, proxyIpHeader: app.proxyIpHeader, maxIpsCount: app.maxIpsCount, env: app.env, silent: app.silent });
    Object.setPrototypeOf(chain.context, app.context);
    chain.on('error', (err: Error, ctx: Context) => (app.listenerCount('error') > 0 ? app.emit('error', err, ctx) : app.onerror(err)));
  }
  const gate = frameworkGate<Context>((req, res) => handle(req, res), passed);
  for (const middleware of use) chain.use(middleware);
  chain.use((ctx) => {
    ctx.respond = false;
    gate.pass(ctx.req, ctx);
  });
  // Koa's callback resolves once the middleware is done, so the gate waits for it.
  const handle = chain.callback();
  return attachHttp(broker, server, {
    ...(app !== undefined && { notFound: (req, socket) => void app.callback()(req, upgradeResponse(req, socket)) }),
    ...(use.length > 0 && { prepare: gate.prepare }),
  });
}
