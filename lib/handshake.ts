/**
 * The upgrade path: route by endpoint, find credentials, ask the host, enforce connection
 * limits, then either complete the upgrade or refuse (HTTP status or close code). Nothing is
 * delivered to a connection before this finishes: its session does not exist until then.
 */
import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { findCredentials, redactError } from './auth.js';
import { negotiate, type Negotiated } from './deflate.js';
import { splitTarget } from './path.js';
import { BrokerError, CloseCode } from './errors.js';
import type { ResolvedEndpoint, ResolvedOptions } from './options.js';
import { textFrame } from './frame.js';
import type { Handshake, Principal } from './types.js';
import { acceptUpgrade, checkUpgrade, Wire, type WireListener } from './wire.js';
import { isThenable, type Awaitable } from './awaitable.js';

/** A connection the registry admitted: its id, and whether it is its principal's first anywhere. */
export interface Admitted {
  id: string;
  first: boolean;
}

/** What the gate needs from its broker. */
export interface GateHost {
  readonly closed: boolean;
  readonly connectionCount: number;
  connectionsOf(principalId: string): number;
  /**
   * Admits a connection of the principal (connection limit, exclusive identity, revoked token;
   * cluster-wide): its id, or the refusal thrown (or rejected) as a BrokerError. Synchronous
   * when the registry is.
   */
  admit(endpoint: ResolvedEndpoint, principal: Principal): Awaitable<Admitted>;
  /** An admitted connection that will never open (its client left, the handshake timed out). */
  release(principal: Principal, admitted: Admitted): void;
  /** Takes an upgraded connection over (the 101 is written). Must not throw; if it does, the gate closes 1011. */
  open(endpoint: ResolvedEndpoint, socket: Duplex, head: Buffer, principal: Principal, handshake: Handshake, admitted: Admitted): void;
  reportError(error: unknown, context: Record<string, unknown>): void;
  countRejection(): void;
}

/**
 * A handshake's phase. deciding: credentials, `authenticate`, limits (it may still be refused,
 * by HTTP status or by close code). upgraded: the 101 is written and the session owns the socket;
 * nothing may refuse it any more. closing: a close frame is on its way (a refusal under the
 * `'close'` policy, or a failure after the 101, with 1011). closed: the gate is done with it.
 */
export type GatePhase = 'deciding' | 'upgraded' | 'closing' | 'closed';

interface Attempt {
  readonly socket: Duplex;
  phase: GatePhase;
  timer: NodeJS.Timeout | undefined;
}

const NEXT: Record<GatePhase, readonly GatePhase[]> = {
  deciding: ['upgraded', 'closing', 'closed'],
  upgraded: ['closing', 'closed'],
  closing: ['closed'],
  closed: [],
};

export class Gate {
  readonly #options: ResolvedOptions;
  readonly #host: GateHost;
  /** Handshakes being decided, so close() can end them. */
  readonly #pending = new Set<Attempt>();

  constructor(options: ResolvedOptions, host: GateHost) {
    this.#options = options;
    this.#host = host;
  }

  get pendingCount(): number {
    return this.#pending.size;
  }

  /** The one place a handshake's phase changes; false when the transition does not apply. */
  #to(attempt: Attempt, next: GatePhase): boolean {
    if (!NEXT[attempt.phase].includes(next)) return false;
    if (attempt.phase === 'deciding') {
      this.#pending.delete(attempt);
      clearTimeout(attempt.timer);
    }
    attempt.phase = next;
    return true;
  }

  /** Returns false when no endpoint owns the request's path (it is left to others). */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer, deadline?: number): boolean {
    // The raw target, never `new URL()`: it resolves `..` (finding 9 of issue 16) and throws on
    // targets it cannot parse, with the whole target (token included) in the error (finding 1).
    const target = splitTarget(request.url ?? '/');
    if (target === null) return false;
    let endpoint: ResolvedEndpoint | undefined;
    let params: Record<string, string> | undefined;
    for (const candidate of this.#options.endpoints) {
      const match = candidate.match(target.path);
      if (match === null) continue;
      if (match === 'malformed') {
        writeHttp(socket, 400, 'malformed path parameter');
        return true;
      }
      endpoint = candidate;
      params = match.params;
      break;
    }
    if (endpoint === undefined || params === undefined) return false;
    socket.on('error', ignore);
    const attempt: Attempt = { socket, phase: 'deciding', timer: undefined };
    const invalid = checkUpgrade(request, endpoint.credentials.includes('subprotocol'));
    if (invalid !== null) {
      this.#answer(attempt, invalid.status, invalid.message, invalid.headers);
      return true;
    }
    if (endpoint.origin !== undefined && !endpoint.origin(request)) {
      // Always HTTP, whatever the endpoint's reject policy: a page from another site gets nothing.
      this.#refuse(attempt, endpoint, request, head, new BrokerError('SY_ERR_ORIGIN'));
      return true;
    }
    if (negotiateCompression(endpoint, request) === 'malformed') {
      this.#answer(attempt, 400, 'invalid Sec-WebSocket-Extensions header');
      return true;
    }
    if (this.#host.closed) {
      this.#refuse(attempt, endpoint, request, head, new BrokerError('SY_ERR_CLOSED'));
      return true;
    }
    if (this.#host.connectionCount + this.#pending.size >= this.#options.limits.maxConnections) {
      this.#refuse(attempt, endpoint, request, head, new BrokerError('SY_ERR_UNAVAILABLE', 'too many connections'));
      return true;
    }
    const timeoutMs = this.#options.limits.handshakeTimeoutMs;
    const remaining = deadline === undefined ? timeoutMs : Math.min(timeoutMs, deadline - Date.now());
    if (remaining <= 0) {
      this.#answer(attempt, 408, 'handshake timed out');
      return true;
    }
    this.#pending.add(attempt);
    attempt.timer = setTimeout(() => this.#answer(attempt, 408, 'handshake timed out'), remaining);
    void this.#decide(attempt, endpoint, params, new URLSearchParams(target.query), request, head).catch((err: unknown) => {
      // A bug of ours: still deciding, it is refused (500/1011); past that, unless a session
      // owns the socket now, it is dropped.
      this.#host.reportError(err, { during: 'handshake', path: endpoint.pattern });
      if (attempt.phase === 'deciding') this.#refuse(attempt, endpoint, request, head, new BrokerError('SY_ERR_INTERNAL', undefined, { cause: err }));
      else if (attempt.phase !== 'closed' && !socket.destroyed) socket.destroy();
    });
    return true;
  }

  /** Decides, then accepts or refuses. Refusals happen only while deciding; after the 101, see #accept. */
  async #decide(
    attempt: Attempt,
    endpoint: ResolvedEndpoint,
    params: Record<string, string>,
    searchParams: URLSearchParams,
    request: IncomingMessage,
    head: Buffer,
  ): Promise<void> {
    const found = findCredentials(request.headers, searchParams, endpoint.credentials);
    // Null prototype: `constructor`, `toString` or `__proto__` are keys like any other (finding 10).
    const query = Object.create(null) as Record<string, string>;
    for (const [key, value] of searchParams) if (key !== 'token' && !Object.hasOwn(query, key)) query[key] = value;
    const handshake: Handshake = {
      credentials: found.credentials,
      headers: request.headers,
      query,
      params,
      path: endpoint.pattern,
      // Read on demand: it costs a getpeername() system call most hosts never need.
      get remoteAddress() {
        return request.socket?.remoteAddress;
      },
      request,
    };
    let principal: Principal;
    let admitted: Admitted;
    try {
      principal = this.#check(endpoint, found.credentials !== undefined, await this.#authenticate(endpoint, handshake));
      // The limits are checked by the registry, atomically for every node; the memory registry
      // answers synchronously, so a single node pays no extra await here.
      const admission = this.#host.admit(endpoint, principal);
      admitted = isThenable(admission) ? await admission : admission;
    } catch (err) {
      if (!this.#stillDeciding(attempt)) return;
      const error = err instanceof BrokerError ? err : new BrokerError('SY_ERR_INTERNAL', undefined, { cause: err });
      if (!(err instanceof BrokerError)) this.#host.reportError(secretless(err, handshake), { during: 'handshake', path: endpoint.pattern });
      this.#refuse(attempt, endpoint, request, head, error);
      return;
    }
    if (!this.#stillDeciding(attempt)) {
      this.#host.release(principal, admitted);
      return;
    }
    this.#accept(attempt, endpoint, request, head, principal, handshake, found.subprotocol, admitted);
  }

  /** False when the handshake timed out, was shut down, or its client left meanwhile. */
  #stillDeciding(attempt: Attempt): boolean {
    if (attempt.phase !== 'deciding') return false;
    if (!attempt.socket.destroyed) return true;
    this.#to(attempt, 'closed');
    return false;
  }

  async #authenticate(endpoint: ResolvedEndpoint, handshake: Handshake): Promise<Principal | null> {
    try {
      return await endpoint.authenticate(handshake);
    } catch (err) {
      // A BrokerError is the host's chosen refusal (e.g. SY_ERR_INVALID_CREDENTIALS for a 403
      // even without credentials); anything else is a failure of the hook.
      if (err instanceof BrokerError) throw err;
      this.#host.reportError(secretless(err, handshake), { during: 'authenticate', path: endpoint.pattern });
      throw new BrokerError('SY_ERR_HOOK', 'authentication failed', { cause: err });
    }
  }

  /** The principal, or the refusal (thrown) for a null answer, a malformed one, or a limit. */
  #check(endpoint: ResolvedEndpoint, hadCredentials: boolean, principal: Principal | null): Principal {
    if (principal === null || principal === undefined || (principal as unknown) === false) {
      throw new BrokerError(hadCredentials ? 'SY_ERR_INVALID_CREDENTIALS' : 'SY_ERR_MISSING_CREDENTIALS');
    }
    if (typeof principal !== 'object' || typeof principal.id !== 'string' || principal.id === '') {
      const err = new TypeError('authenticate must resolve to null or a principal with a non-empty string id');
      this.#host.reportError(err, { during: 'authenticate', path: endpoint.pattern });
      throw new BrokerError('SY_ERR_HOOK', 'authentication failed', { cause: err });
    }
    if (this.#host.closed) throw new BrokerError('SY_ERR_CLOSED');
    return principal;
  }

  /**
   * Writes the 101 and hands the socket to the broker. From the 101 on the connection is never
   * refused: whatever fails closes it with 1011.
   */
  #accept(
    attempt: Attempt,
    endpoint: ResolvedEndpoint,
    request: IncomingMessage,
    head: Buffer,
    principal: Principal,
    handshake: Handshake,
    subprotocol: string | undefined,
    admitted: Admitted,
  ): void {
    const socket = attempt.socket;
    // Corked, so the 101 and the frames open() writes (a welcome) leave in one write.
    socket.cork();
    try {
      const negotiated = negotiateCompression(endpoint, request);
      if (!acceptUpgrade(request, socket, subprotocol, negotiated === 'malformed' ? null : negotiated)) {
        this.#to(attempt, 'closed');
        this.#host.release(principal, admitted);
        return;
      }
      this.#to(attempt, 'upgraded');
      socket.removeListener('error', ignore);
      try {
        this.#host.open(endpoint, socket, head, principal, handshake, admitted);
        this.#to(attempt, 'closed');
      } catch (err) {
        this.#host.reportError(err, { during: 'open', path: endpoint.pattern });
        if (!this.#to(attempt, 'closing')) return;
        socket.on('error', ignore);
        this.#closeFrame(attempt, head, CloseCode.INTERNAL_ERROR, 'internal error', null);
      }
    } finally {
      socket.uncork();
    }
  }

  /** Refuses by HTTP status (policy `'http'`, or errors with no close code) or by close code. Only while deciding. */
  #refuse(attempt: Attempt, endpoint: ResolvedEndpoint, request: IncomingMessage, head: Buffer, error: BrokerError): void {
    if (attempt.phase !== 'deciding') return;
    if (endpoint.reject === 'http' || error.closeCode === undefined) {
      this.#answer(attempt, error.httpStatus ?? 500, error.message);
      return;
    }
    this.#host.countRejection();
    this.#to(attempt, 'closing');
    const code = endpoint.closeCodes[error.closeCode] ?? error.closeCode;
    // The 101 selects a subprotocol the client offered, as an accepted one would: a browser
    // fails a connection whose answer selects none, and would never see the close code.
    const { subprotocol } = findCredentials(request.headers, new URLSearchParams(), endpoint.credentials);
    if (!acceptUpgrade(request, attempt.socket, subprotocol)) {
      this.#to(attempt, 'closed');
      return;
    }
    let frame: string | null = null;
    try {
      frame = endpoint.protocol.refused?.(error) ?? null;
    } catch (err) {
      this.#host.reportError(err, { during: 'refused', path: endpoint.pattern });
    }
    this.#closeFrame(attempt, head, code, error.message, frame);
  }

  /** Sends an optional text frame, then a close frame, on an upgraded socket no session owns. */
  #closeFrame(attempt: Attempt, head: Buffer, code: number, reason: string, frame: string | null): void {
    const socket = attempt.socket;
    const wire = new Wire(socket, head, this.#options.limits, REFUSED);
    // Sent before the close frame, so the client reads it first (seed 003's AUTH_ERROR).
    if (frame !== null) socket.write(textFrame(frame), 'latin1');
    wire.close(code, reason);
    const timer = setTimeout(() => wire.terminate(), this.#options.limits.closeTimeoutMs);
    timer.unref();
    socket.once('close', () => {
      clearTimeout(timer);
      this.#to(attempt, 'closed');
    });
  }

  /** Answers with an HTTP status before any upgrade (a refusal, a timeout, a malformed request). */
  #answer(attempt: Attempt, status: number, message: string, headers?: Record<string, string>): void {
    if (!this.#to(attempt, 'closed')) return;
    this.#host.countRejection();
    writeHttp(attempt.socket, status, message, headers);
  }

  /** Ends every handshake still being decided. */
  close(): void {
    for (const attempt of [...this.#pending]) {
      if (this.#to(attempt, 'closed')) writeHttp(attempt.socket, 503, 'server shutting down');
    }
  }
}

function ignore(): void {}

/** permessage-deflate for an endpoint that compresses (RFC 7692 §5): the agreement, none, or a malformed header (400). */
function negotiateCompression(endpoint: ResolvedEndpoint, request: IncomingMessage): Negotiated | null | 'malformed' {
  if (endpoint.compression === null) return null;
  const header = request.headers['sec-websocket-extensions'];
  return negotiate(Array.isArray(header) ? header.join(', ') : header, endpoint.compression);
}

/** A hook's error with the presented token replaced wherever it appears (hosts quote it in messages). */
function secretless(err: unknown, handshake: Handshake): unknown {
  return err instanceof Error ? redactError(err, [handshake.credentials?.token]) : err;
}

/** A refused connection reads only until the client answers its close frame. */
const REFUSED: WireListener = {
  receive() {},
  pong() {},
  protocolError() {},
  socketClosed() {},
};

/** Answers an upgrade request with a plain HTTP response and closes the socket. */
export function writeHttp(socket: Duplex, status: number, message: string, headers: Record<string, string> = {}): void {
  if (socket.destroyed) return;
  const body = `${message}\n`;
  let extra = '';
  for (const [name, value] of Object.entries(headers)) extra += `${name}: ${value}\r\n`;
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n` +
      `Connection: close\r\nContent-Type: text/plain; charset=utf-8\r\n${extra}` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    // HTTP servers keep sockets half-open after end(): destroy once the answer is flushed.
    () => socket.destroy(),
  );
}
