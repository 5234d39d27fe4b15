/**
 * Mounts a broker on a Node `http.Server` (or https, or anything emitting 'upgrade'). The
 * one place an upgrade is routed: framework adapters build on it.
 */
import { ServerResponse, type IncomingMessage, type Server } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { reportError, writeHttp, type Broker, type Handshake } from 'switchyard';
import { guardUpgrades } from './exclusive.js';
import { limitHeaderTime } from './header-time.js';

/** The arguments of a server's 'upgrade' event. */
export type UpgradeHandler = (request: IncomingMessage, socket: Duplex, head: Buffer) => void;

export interface AttachOptions {
  /**
   * Upgrade requests for paths the broker does not own, when no other 'upgrade' listener is
   * there to take them: `true` answers 404, `false` leaves them alone, a function answers them
   * (framework adapters hand them to the framework, which answers as it would any request).
   * Default true.
   */
  notFound?: boolean | UpgradeHandler;
  /**
   * Runs the host's own machinery (middleware, hooks) on an upgrade request for one of the
   * broker's paths before the broker decides on it. Resolves true to go on to the broker, false
   * when it answered the request itself. The broker's handshake timeout (408) bounds this and
   * the broker's own decision together, not each on its own.
   */
  prepare?: (request: IncomingMessage, socket: Duplex, head: Buffer) => Promise<boolean>;
  /**
   * Bound the server's `headersTimeout`, and the interval Node checks it on, by the broker's
   * `handshakeTimeoutMs`, so an upgrade request whose headers never finish (slowloris) is dropped
   * within the handshake budget too (see header-time.ts). It applies to every request of the
   * server. Attach before `listen()`; on a listening server only `headersTimeout` can change, and
   * a warning says what to pass to `createServer`. Default true.
   */
  limitHeaderTime?: boolean;
}

/** The path patterns of the broker's endpoints (frameworks that route register them). */
export function endpointPaths(broker: Broker): string[] {
  return broker.paths;
}

function owns(broker: Broker, request: IncomingMessage): boolean {
  return broker.owns(request.url ?? '/');
}

/**
 * A response for an upgrade request, so a framework can answer it as it answers any request
 * (its 404, a 401 from its auth middleware). Given the socket it is written there at once;
 * otherwise it is kept until `bindResponse` (or dropped by a request that goes on to the broker).
 */
export function upgradeResponse(request: IncomingMessage, socket?: Duplex): ServerResponse {
  const response = new ServerResponse(request);
  response.shouldKeepAlive = false;
  if (socket !== undefined) bindResponse(response, socket);
  return response;
}

/**
 * Writes a response (and whatever it already holds) onto the upgrade socket, then closes the
 * socket: an upgrade socket never goes back to the HTTP parser.
 */
export function bindResponse(response: ServerResponse, socket: Duplex): void {
  response.once('finish', () => socket.end(() => socket.destroy()));
  // Node types the 'upgrade' socket as a Duplex; it is the connection's net.Socket.
  response.assignSocket(socket as Socket);
}

/** Takes a bound response off its socket once the request goes on to the broker. */
export function releaseResponse(response: ServerResponse): void {
  if (response.socket !== null) response.detachSocket(response.socket);
}

/** What `frameworkGate` returns: the `prepare` for `attach`, and what the framework passed on. */
export interface FrameworkGate<T> {
  /** `attach`'s `prepare`: runs the framework on the upgrade request. */
  prepare: NonNullable<AttachOptions['prepare']>;
  /**
   * Called by the framework's last handler: the request goes on to the broker, carrying `value`
   * (the framework's request or context). False when the request did not come through `prepare`
   * (a plain HTTP GET on a broker path).
   */
  pass(request: IncomingMessage, value: T): boolean;
  /** The value passed on for a handshake's request, in `authenticate`. */
  of(handshake: Handshake): T | undefined;
}

/**
 * The shape every framework adapter shares: "run the framework's middleware, then hand the
 * upgrade to the broker". `run` hands the request and a response to the framework, whose last
 * handler calls `pass`; an answer from the framework (a 401 from its auth middleware, an
 * error page) goes out on the socket instead. When `run` returns a promise (Koa's callback),
 * the decision waits for it, so middleware still running after `next()` is heard, and the
 * response meets the socket only if the framework answered.
 */
export function frameworkGate<T>(
  run: (request: IncomingMessage, response: ServerResponse) => unknown,
  /** Where passed values are kept; an adapter shares one across its attaches for its lookup helper. */
  passed = new WeakMap<IncomingMessage, T>(),
): FrameworkGate<T> {
  const waiting = new WeakMap<IncomingMessage, () => void>();
  return {
    of: (handshake) => passed.get(handshake.request),
    pass(request, value) {
      const resume = waiting.get(request);
      if (resume === undefined) return false;
      waiting.delete(request);
      passed.set(request, value);
      resume();
      return true;
    },
    prepare: (request, socket) =>
      new Promise<boolean>((resolve, reject) => {
        const response = upgradeResponse(request);
        let mode: 'running' | 'sync' | 'async' = 'running';
        let through = false;
        const proceed = (): void => {
          releaseResponse(response);
          resolve(true);
        };
        waiting.set(request, () => {
          through = true;
          if (mode === 'sync') proceed();
        });
        const done = run(request, response);
        if (isPromiseLike(done)) {
          mode = 'async';
          done.then(() => {
            if (through && !response.writableEnded) return proceed();
            bindResponse(response, socket);
            resolve(false);
          }, reject);
        } else {
          mode = 'sync';
          if (through) return proceed();
          response.once('finish', () => resolve(false));
          bindResponse(response, socket);
        }
      }),
  };
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === 'function';
}

/**
 * Routes the server's upgrade requests for the broker's paths to the broker and leaves the
 * others to the server's other 'upgrade' listeners, including ones added later (404 when there
 * are none). The broker's paths are its own: every other 'upgrade' listener, added before or
 * after, is kept off them (so Socket.IO's `destroyUpgrade` or @fastify/websocket cannot cut or
 * take a handshake whose `authenticate` is still running). Returns `detach()`, which removes
 * exactly what this added.
 */
export function attach(broker: Broker, server: Server, options: AttachOptions = {}): () => void {
  const { notFound = true, prepare, limitHeaderTime: limit = true } = options;
  const restoreHeaderTime = limit ? limitHeaderTime(server, broker.limits.handshakeTimeoutMs) : ignore;
  const preparing = new Set<Duplex>();
  const onUpgrade: UpgradeHandler = (request, socket, head) => {
    try {
      if (prepare !== undefined && !broker.closed && owns(broker, request)) {
        void prepared(prepare, request, socket, head);
        return;
      }
      if (broker.handleUpgrade(request, socket, head)) return;
      if (notFound === false || server.listenerCount('upgrade') > 1) return;
      if (notFound === true) writeHttp(socket, 404, 'not found');
      else notFound(request, socket, head);
    } catch (err) {
      reportError(broker, err, { during: 'upgrade' });
      writeHttp(socket, 500, 'internal error');
    }
  };
  async function prepared(run: NonNullable<AttachOptions['prepare']>, request: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    preparing.add(socket);
    socket.on('error', ignore);
    let timer: NodeJS.Timeout | undefined;
    const deadline = Date.now() + broker.limits.handshakeTimeoutMs;
    const timeout = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => {
        writeHttp(socket, 408, 'handshake timed out');
        resolve(false);
      }, broker.limits.handshakeTimeoutMs);
    });
    try {
      const proceed = await Promise.race([run(request, socket, head), timeout]);
      if (!proceed || socket.destroyed || !preparing.has(socket)) return;
      socket.removeListener('error', ignore);
      if (!broker.handleUpgrade(request, socket, head, deadline)) writeHttp(socket, 404, 'not found');
    } catch (err) {
      reportError(broker, err, { during: 'upgrade' });
      writeHttp(socket, 500, 'internal error');
    } finally {
      clearTimeout(timer);
      preparing.delete(socket);
    }
  }
  const onClose = (): void => detach();
  server.prependListener('upgrade', onUpgrade);
  const unguard = guardUpgrades(server, onUpgrade, (request) => owns(broker, request));
  broker.once('close', onClose);
  let attached = true;
  function detach(): void {
    if (!attached) return;
    attached = false;
    unguard();
    server.removeListener('upgrade', onUpgrade);
    broker.removeListener('close', onClose);
    restoreHeaderTime();
    for (const socket of preparing) writeHttp(socket, 503, 'server shutting down');
    preparing.clear();
  }
  return detach;
}

function ignore(): void {}
