/**
 * Keeps a server's other 'upgrade' listeners off the broker's paths. Node calls every listener
 * of an event, and some listeners act on upgrades they do not own: engine.io (Socket.IO) ends
 * any upgrade socket nothing was written to within 1 s (`destroyUpgrade`), so a slow
 * `authenticate` is cut; @fastify/websocket routes every upgrade through Fastify and completes
 * it with its own `ws` server. So each other listener, whenever it was added, is wrapped in a
 * guard that skips requests the broker owns.
 *
 * The guard keeps the original in its `listener` property, as Node's own `once` wrappers do,
 * so `server.removeListener(event, original)`, `listeners()` and `listenerCount()` behave as if
 * the guard were not there (@fastify/websocket removes its listener that way in `preClose`).
 */
import type { IncomingMessage } from 'node:http';
import type { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';

type Listener = (this: unknown, request: IncomingMessage, socket: Duplex, head: Buffer) => unknown;
type Guard = Listener & { listener: Listener; inner: Listener; owner: object };

/**
 * Guards every 'upgrade' listener of `server` but `own`, now and as they are added, so none of
 * them sees a request for which `owns(request)` is true. Returns the function that undoes it.
 */
export function guardUpgrades(server: EventEmitter, own: Listener, owns: (request: IncomingMessage) => boolean): () => void {
  const owner = {};
  let active = true;
  const present = (): boolean => server.rawListeners('upgrade').some((fn) => fn === own || (fn as Partial<Guard>).listener === own);
  const isMine = (fn: unknown): fn is Guard => typeof fn === 'function' && (fn as Partial<Guard>).owner === owner;
  const wrap = (fn: Listener): Guard => {
    const original = (fn as Partial<Guard>).listener ?? fn;
    const guard = function (this: unknown, request: IncomingMessage, socket: Duplex, head: Buffer): unknown {
      // Once detached, a guard left inside someone else's wrapper passes everything on; so does
      // every guard while the broker's own listener is off the server (a host that removed it).
      if (active && owns(request) && present()) return undefined;
      return fn.call(this, request, socket, head);
    } as Guard;
    guard.listener = original;
    guard.inner = fn;
    guard.owner = owner;
    return guard;
  };
  /** Rewrites the listener list in place, order kept; `map` returns the same function to keep it. */
  const rewrite = (map: (fn: Listener) => Listener): void => {
    const current = server.rawListeners('upgrade') as Listener[];
    const next = current.map(map);
    if (next.every((fn, i) => fn === current[i])) return;
    rewriting = true;
    try {
      server.removeAllListeners('upgrade');
      for (const fn of next) server.on('upgrade', fn);
    } finally {
      rewriting = false;
    }
  };
  let rewriting = false;
  let scheduled = false;
  const guardAll = (): void => {
    scheduled = false;
    if (active) rewrite((fn) => (fn === own || (fn as Partial<Guard>).listener === own || isMine(fn) ? fn : wrap(fn)));
  };
  // 'newListener' fires before the listener is in the list: guard it right after, before any
  // I/O can emit an upgrade.
  const onNewListener = (event: string | symbol): void => {
    if (event !== 'upgrade' || rewriting || scheduled) return;
    scheduled = true;
    queueMicrotask(guardAll);
  };
  guardAll();
  server.on('newListener', onNewListener);
  return () => {
    if (!active) return;
    server.removeListener('newListener', onNewListener);
    rewrite((fn) => (isMine(fn) ? fn.inner : fn));
    active = false;
  };
}
