/**
 * The host's hand on one connection (Socket.IO's `socket.disconnect()` / `socket.join()`):
 * close it, subscribe or unsubscribe it from the server, and list connections with what they
 * hold. Everything here answers for this node's connections only; on a cluster each node
 * controls its own.
 */
import type { Socket } from 'node:net';
import type { Access } from './access.js';
import type { Connections } from './connections.js';
import { BrokerError } from './errors.js';
import type { ResolvedOptions } from './options.js';
import type { SubscribeResult } from './protocol.js';
import type { Requests } from './requests.js';
import type { Router } from './router.js';
import type { Session } from './session.js';
import { matches } from './topics.js';
import type { Filter } from './types.js';

/** One connection as `broker.connections()` lists it. */
export interface ConnectionDetails {
  id: string;
  principalId: string;
  /** The endpoint's path pattern (`/ws/device/:deviceId`). */
  path: string;
  params: Record<string, string>;
  remoteAddress: string | undefined;
  /** Subscribed patterns, as given. */
  subscriptions: string[];
  /** When the connection was accepted, ms since the epoch. */
  connectedAt: number;
  /** Bytes queued for it and not yet taken by the kernel. */
  bufferedBytes: number;
}

/** Which connections `connections()` lists; both given means both must hold. */
export interface ConnectionFilter {
  /** Only this principal's connections. */
  principal?: string;
  /** Only connections a publish on this topic reaches (or that hold exactly this pattern). */
  topic?: string;
}

export interface ServerSubscribeOptions {
  /** Check each pattern with `authorize` (or the grants) as a client's Subscribe is. Default true. */
  authorize?: boolean;
  /** Subscription filters (seed 003), as a client's Subscribe carries them. */
  filters?: Filter;
}

export interface ControlParts {
  options: ResolvedOptions;
  connections: Connections;
  requests: Requests;
  router: Router;
  access: Access;
}

export class ConnectionControl {
  readonly #p: ControlParts;
  readonly #byId = new Map<string, Session>();
  readonly #sockets = new WeakMap<Session, Socket>();

  constructor(parts: ControlParts) {
    this.#p = parts;
  }

  /** A connection was accepted (its socket is kept to read the peer's address when asked). */
  track(session: Session, socket: Socket): void {
    this.#byId.set(session.id, session);
    this.#sockets.set(session, socket);
  }

  untrack(session: Session): void {
    this.#byId.delete(session.id);
  }

  /** Closes one connection; false when it is not (or no longer) on this node. */
  disconnect(connectionId: string, code = 1000, reason = ''): boolean {
    // RFC 6455 §7.4: 1000 and the application range are the codes a server may choose here.
    if (!Number.isInteger(code) || !(code === 1000 || code === 1001 || (code >= 3000 && code <= 4999))) {
      throw new TypeError(`disconnect: close code must be 1000, 1001 or 3000–4999, not ${String(code)}`);
    }
    if (typeof reason !== 'string' || Buffer.byteLength(reason) > 123) throw new TypeError('disconnect: reason must be a string of at most 123 bytes');
    const session = this.#byId.get(connectionId);
    if (session === undefined || session.closing) return false;
    session.close(code, reason);
    return true;
  }

  async subscribe(connectionId: string, topics: string[], options: ServerSubscribeOptions = {}): Promise<SubscribeResult> {
    const session = this.#session(connectionId);
    const filters = options.filters ?? null;
    const result = await this.#p.requests.subscribe(session, topics, filters, undefined, options.authorize ?? true);
    if (!session.closing) session.endpoint.protocol.subscribed?.(session, result);
    return result;
  }

  unsubscribe(connectionId: string, topics: string[]): SubscribeResult {
    const session = this.#session(connectionId);
    const result = this.#p.requests.unsubscribe(session, topics);
    if (!session.closing) session.endpoint.protocol.unsubscribed?.(session, result);
    return result;
  }

  list(filter: ConnectionFilter = {}): ConnectionDetails[] {
    const { principal, topic } = filter;
    const syntax = this.#p.options.syntax;
    const sessions = principal === undefined ? this.#p.connections.all() : this.#p.connections.of(principal);
    const list: ConnectionDetails[] = [];
    for (const s of sessions) {
      if (s.phase !== 'upgraded') continue;
      if (topic !== undefined && ![...s.subscriptions.keys()].some((p) => p === topic || matches(syntax, p, topic))) continue;
      list.push({
        id: s.id,
        principalId: s.principal.id,
        path: s.endpoint.pattern,
        params: { ...s.params },
        remoteAddress: this.#sockets.get(s)?.remoteAddress,
        subscriptions: [...s.subscriptions.keys()],
        connectedAt: s.connectedAt,
        bufferedBytes: s.bufferedBytes,
      });
    }
    return list;
  }

  #session(connectionId: string): Session {
    const session = this.#byId.get(connectionId);
    if (session === undefined || session.closing) {
      throw new BrokerError('SY_ERR_NOT_FOUND', `connection ${String(connectionId)} is not open on this node`);
    }
    return session;
  }
}
