/**
 * Mounts a broker on the http.Server an Express app listens on. Upgrades for the broker's
 * paths can first run some of the app's own middleware (a session or token check); upgrades
 * for other paths go to the app itself, which answers them as it would without switchyard.
 */
import type { IncomingMessage, Server } from 'node:http';
import express, { type Express, type Request, type RequestHandler } from 'express';
import type { Broker, Handshake } from 'switchyard';
import { attach as attachHttp, frameworkGate, upgradeResponse } from 'switchyard/http';

export interface ExpressAttachOptions {
  /**
   * The app serving `server`. It answers upgrade requests for paths the broker does not own
   * (its routes, its 404) when no other 'upgrade' listener takes them, and its settings
   * (`trust proxy`, `query parser`, …) and `locals` apply while `use` runs.
   */
  app?: Express;
  /**
   * Middleware run in order on each upgrade request for the broker's paths, before
   * `authenticate`; what they put on `req` is on `handshake.request` (see `expressRequest`).
   * One that answers (`res.status(401).json(…)`) or fails refuses the upgrade with that answer.
   */
  use?: RequestHandler[];
}

const passed = new WeakMap<IncomingMessage, Request>();

/** The Express request `use` ran on, in `authenticate`: `expressRequest(handshake)?.user`. */
export function expressRequest(handshake: Handshake): Request | undefined {
  return passed.get(handshake.request);
}

/** Attaches the broker to `server` (what `app.listen()` returns). Returns `detach()`. */
export function attach(broker: Broker, server: Server, options: ExpressAttachOptions = {}): () => void {
  const { app, use = [] } = options;
  const chain = express();
  if (app !== undefined) {
    for (const name of Object.keys(app.settings)) chain.set(name, app.get(name));
    chain.locals = app.locals;
  }
  const gate = frameworkGate<Request>((req, res) => void chain(req, res), passed);
  chain.use(...use, (req: Request) => void gate.pass(req, req));
  return attachHttp(broker, server, {
    ...(app !== undefined && { notFound: (req, socket) => app(req, upgradeResponse(req, socket)) }),
    ...(use.length > 0 && { prepare: gate.prepare }),
  });
}
