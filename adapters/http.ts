/**
 * Mounts a broker on a Node `http.Server` (or https, or anything emitting 'upgrade'). The
 * one place an upgrade is routed: framework adapters build on it.
 */
import { ServerResponse, type IncomingMessage, type Server } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { reportError, writeHttp, type Broker } from 'switchyard';

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

/**
 * Routes the server's upgrade requests for the broker's paths to the broker and leaves the
 * others to the server's other 'upgrade' listeners, including ones added later (404 when there
 * are none). Returns `detach()`, which removes exactly what this added.
 */
export function attach(broker: Broker, server: Server, options: AttachOptions = {}): () => void {
  const { notFound = true, prepare } = options;
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
  server.on('upgrade', onUpgrade);
  broker.once('close', onClose);
  let attached = true;
  function detach(): void {
    if (!attached) return;
    attached = false;
    server.removeListener('upgrade', onUpgrade);
    broker.removeListener('close', onClose);
    for (const socket of preparing) writeHttp(socket, 503, 'server shutting down');
    preparing.clear();
  }
  return detach;
}

function ignore(): void {}
