/**
 * Mounts a broker on a Node `http.Server` (or https, or anything emitting 'upgrade'). The
 * one place an upgrade is routed: framework adapters build on it.
 */
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { writeHttp, type Broker } from 'switchyard';

export interface AttachOptions {
  /**
   * Answer 404 to upgrade requests for paths the broker does not own when no other 'upgrade'
   * listener is there to take them. Default true.
   */
  notFound?: boolean;
}

/**
 * Routes the server's upgrade requests for the broker's paths to the broker and leaves the
 * others to the server's other 'upgrade' listeners, including ones added later (404 when there
 * are none). Returns `detach()`, which removes exactly what this added.
 */
export function attach(broker: Broker, server: Server, options: AttachOptions = {}): () => void {
  const notFound = options.notFound ?? true;
  const onUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer): void => {
    try {
      if (broker.handleUpgrade(request, socket, head)) return;
    } catch (err) {
      broker.reportError(err, { during: 'upgrade' });
      writeHttp(socket, 500, 'internal error');
      return;
    }
    if (notFound && server.listenerCount('upgrade') === 1) writeHttp(socket, 404, 'not found');
  };
  const onClose = (): void => detach();
  server.on('upgrade', onUpgrade);
  broker.once('close', onClose);
  let attached = true;
  function detach(): void {
    if (!attached) return;
    attached = false;
    server.removeListener('upgrade', onUpgrade);
    broker.removeListener('close', onClose);
  }
  return detach;
}
