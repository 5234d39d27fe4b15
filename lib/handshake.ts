/**
 * The upgrade path: route by endpoint, find credentials, ask the host, enforce connection
 * limits, then either complete the upgrade or refuse (HTTP status or close code). Nothing is
 * delivered to a connection before this finishes: its session does not exist until then.
 */
import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { findCredentials, redactError } from './auth.js';
import { splitTarget } from './path.js';
import { BrokerError } from './errors.js';
import type { ResolvedEndpoint, ResolvedOptions } from './options.js';
import { textFrame } from './frame.js';
import type { Handshake, Principal } from './types.js';
import { acceptUpgrade, checkUpgrade, Wire, type WireListener } from './wire.js';

/** What the gate needs from its broker. */
export interface GateHost {
  readonly closed: boolean;
  readonly connectionCount: number;
  connectionsOf(principalId: string): number;
  open(endpoint: ResolvedEndpoint, socket: Duplex, head: Buffer, principal: Principal, handshake: Handshake): void;
  reportError(error: unknown, context: Record<string, unknown>): void;
  countRejection(): void;
}

export class Gate {
  readonly #options: ResolvedOptions;
  readonly #host: GateHost;
  /** Sockets whose handshake is being decided, so close() can end them. */
  readonly #pending = new Set<Duplex>();

  constructor(options: ResolvedOptions, host: GateHost) {
    this.#options = options;
    this.#host = host;
  }

  get pendingCount(): number {
    return this.#pending.size;
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
    const invalid = checkUpgrade(request);
    if (invalid !== null) {
      this.#host.countRejection();
      writeHttp(socket, invalid.status, invalid.message, invalid.headers);
      return true;
    }
    if (this.#host.closed) {
      this.#refuse(endpoint, request, socket, head, new BrokerError('SY_ERR_CLOSED'));
      return true;
    }
    if (this.#host.connectionCount + this.#pending.size >= this.#options.limits.maxConnections) {
      this.#refuse(endpoint, request, socket, head, new BrokerError('SY_ERR_UNAVAILABLE', 'too many connections'));
      return true;
    }
    const timeoutMs = this.#options.limits.handshakeTimeoutMs;
    const remaining = deadline === undefined ? timeoutMs : Math.min(timeoutMs, deadline - Date.now());
    if (remaining <= 0) {
      this.#host.countRejection();
      writeHttp(socket, 408, 'handshake timed out');
      return true;
    }
    void this.#decide(endpoint, params, new URLSearchParams(target.query), request, socket, head, remaining);
    return true;
  }

  async #decide(
    endpoint: ResolvedEndpoint,
    params: Record<string, string>,
    searchParams: URLSearchParams,
    request: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    timeoutMs: number,
  ): Promise<void> {
    this.#pending.add(socket);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      this.#pending.delete(socket);
      this.#host.countRejection();
      writeHttp(socket, 408, 'handshake timed out');
    }, timeoutMs);
    // The presented token, redacted from whatever the host's hook throws before it is reported.
    let secret: string | undefined;
    const report = (err: unknown, context: Record<string, unknown>): void =>
      this.#host.reportError(err instanceof Error ? redactError(err, [secret]) : err, context);
    try {
      const found = findCredentials(request.headers, searchParams, endpoint.credentials);
      secret = found.credentials?.token;
      // Null prototype: `constructor`, `toString` or `__proto__` are keys like any other (finding 10).
      const query: Record<string, string> = Object.create(null) as Record<string, string>;
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
      let principal: Principal | null;
      try {
        principal = await endpoint.authenticate(handshake);
      } catch (err) {
        // A BrokerError is the host's chosen refusal (e.g. SY_ERR_INVALID_CREDENTIALS for a 403
        // even without credentials); anything else is a failure of the hook.
        if (err instanceof BrokerError) throw err;
        report(err, { during: 'authenticate', path: endpoint.pattern });
        throw new BrokerError('SY_ERR_HOOK', 'authentication failed', { cause: err });
      }
      if (timedOut || socket.destroyed) return;
      if (principal === null || principal === undefined || (principal as unknown) === false) {
        throw new BrokerError(found.credentials === undefined ? 'SY_ERR_MISSING_CREDENTIALS' : 'SY_ERR_INVALID_CREDENTIALS');
      }
      if (typeof principal !== 'object' || typeof principal.id !== 'string' || principal.id === '') {
        const err = new TypeError('authenticate must resolve to null or a principal with a non-empty string id');
        report(err, { during: 'authenticate', path: endpoint.pattern });
        throw new BrokerError('SY_ERR_HOOK', 'authentication failed', { cause: err });
      }
      if (this.#host.closed) throw new BrokerError('SY_ERR_CLOSED');
      // From here to open() everything is synchronous, so two handshakes of one principal
      // cannot both pass the limit checks.
      const existing = this.#host.connectionsOf(principal.id);
      if ((principal.exclusive ?? endpoint.exclusive) && existing > 0) throw new BrokerError('SY_ERR_ALREADY_CONNECTED');
      const max = principal.maxConnections ?? endpoint.maxConnectionsPerPrincipal;
      if (existing >= max) throw new BrokerError('SY_ERR_CONNECTION_LIMIT');
      const accepted = principal;
      this.#pending.delete(socket);
      clearTimeout(timer);
      // Corked, so the 101 and the frames open() writes (a welcome) leave in one write.
      socket.cork();
      try {
        if (acceptUpgrade(request, socket, found.subprotocol)) {
          socket.removeListener('error', ignore);
          this.#host.open(endpoint, socket, head, accepted, handshake);
        }
      } finally {
        socket.uncork();
      }
    } catch (err) {
      if (timedOut || socket.destroyed) return;
      const error = err instanceof BrokerError ? err : new BrokerError('SY_ERR_INTERNAL', undefined, { cause: err });
      if (!(err instanceof BrokerError)) report(err, { during: 'handshake', path: endpoint.pattern });
      this.#refuse(endpoint, request, socket, head, error);
    } finally {
      clearTimeout(timer);
      this.#pending.delete(socket);
    }
  }

  /** Refuses by HTTP status (policy `'http'`, or errors with no close code) or by close code. */
  #refuse(endpoint: ResolvedEndpoint, request: IncomingMessage, socket: Duplex, head: Buffer, error: BrokerError): void {
    this.#host.countRejection();
    if (endpoint.reject === 'http' || error.closeCode === undefined) {
      writeHttp(socket, error.httpStatus ?? 500, error.message);
      return;
    }
    const code = endpoint.closeCodes[error.closeCode] ?? error.closeCode;
    // The 101 selects a subprotocol the client offered, as an accepted one would: a browser
    // fails a connection whose answer selects none, and would never see the close code.
    const { subprotocol } = findCredentials(request.headers, new URLSearchParams(), endpoint.credentials);
    if (!acceptUpgrade(request, socket, subprotocol)) return;
    const wire = new Wire(socket, head, this.#options.limits.maxMessageBytes, REFUSED);
    let frame: string | null = null;
    try {
      frame = endpoint.protocol.refused?.(error) ?? null;
    } catch (err) {
      this.#host.reportError(err, { during: 'refused', path: endpoint.pattern });
    }
    // Sent before the close frame, so the client reads it first (seed 003's AUTH_ERROR).
    if (frame !== null) socket.write(textFrame(frame), 'latin1');
    wire.close(code, error.message);
    const timer = setTimeout(() => wire.terminate(), this.#options.limits.closeTimeoutMs);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
  }

  /** Ends every handshake still being decided. */
  close(): void {
    for (const socket of this.#pending) writeHttp(socket, 503, 'server shutting down');
    this.#pending.clear();
  }
}

function ignore(): void {}

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
