/**
 * The HTTP side of the realtime service, on the same server as the WebSocket endpoint:
 *   POST /api/login   {user, device?, location?}        → a short-lived JWT (demo: no password)
 *   POST /api/notify  {target?, data}   (admin token)   → broker.notify(target, data)
 *   POST /api/revoke  {token_id} | {user}  (token)      → broker.revoke(...), 4002 on the socket
 * Tokens for the API come in `Authorization: Bearer <jwt>`, as on the WebSocket.
 */
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { reportError, type Broker } from 'switchyard';
import { rolesOf, type Role, type TokenRegistry } from './tokens.js';

export interface ApiOptions {
  broker: Broker;
  tokens: TokenRegistry;
  /** Users who get the `admin` role at login. */
  admins: ReadonlySet<string>;
  /** Lifetime of tokens from /api/login, in seconds. */
  tokenTtlSeconds: number;
}

const MAX_BODY_BYTES = 16 * 1024;
const NAME = /^[A-Za-z0-9_-]{1,64}$/;

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

type NotifyTarget = 'all' | { principal: string } | { topic: string };

export function api(options: ApiOptions): RequestListener {
  const { broker, tokens, admins, tokenTtlSeconds } = options;

  async function caller(req: IncomingMessage): Promise<{ sub: string; jti: string; roles: Role[] }> {
    const match = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
    if (match === null) throw new HttpError(401, 'missing bearer token');
    const claims = await tokens.verify(match[1]!);
    if (claims === null) throw new HttpError(401, 'invalid or expired token');
    return { sub: claims.sub, jti: claims.jti, roles: rolesOf(claims.roles) };
  }

  const routes: Record<string, (req: IncomingMessage, body: Record<string, unknown>) => Promise<unknown>> = {
    async 'POST /api/login'(_req, body) {
      const user = body.user;
      if (typeof user !== 'string' || !NAME.test(user)) throw new HttpError(400, 'user must be 1-64 letters, digits, _ or -');
      const device = optionalString(body.device, 'device');
      const location = optionalString(body.location, 'location');
      const roles: Role[] = admins.has(user) ? ['user', 'admin'] : ['user'];
      const presence = { ...(device !== undefined && { device }), ...(location !== undefined && { location }) };
      const issued = await tokens.issue(user, { roles, presence }, tokenTtlSeconds);
      return { token: issued.token, token_id: issued.tokenId, expires_at: issued.exp * 1000, roles };
    },

    async 'POST /api/notify'(req, body) {
      const who = await caller(req);
      if (!who.roles.includes('admin')) throw new HttpError(403, 'admin role required');
      if (!('data' in body)) throw new HttpError(400, 'data is required');
      const target = notifyTarget(body.target);
      const { recipients } = await broker.notify(target, body.data);
      return { recipients };
    },

    async 'POST /api/revoke'(req, body) {
      const who = await caller(req);
      const isAdmin = who.roles.includes('admin');
      if (typeof body.token_id === 'string' && body.token_id !== '') {
        // A user may revoke their own tokens (log out a device); an admin any token.
        if (!isAdmin && tokens.ownerOf(body.token_id) !== who.sub) throw new HttpError(403, 'not your token');
        tokens.revoke(body.token_id);
        return { closed: broker.revoke({ tokenId: body.token_id }) };
      }
      if (typeof body.user === 'string' && body.user !== '') {
        if (!isAdmin && body.user !== who.sub) throw new HttpError(403, 'admin role required');
        return { closed: broker.revoke({ principal: body.user }) };
      }
      throw new HttpError(400, 'token_id or user is required');
    },
  };

  return (req, res) => {
    const route = routes[`${req.method} ${(req.url ?? '').split('?')[0]}`];
    if (route === undefined) {
      reply(res, 404, { error: 'not found' });
      return;
    }
    readJson(req)
      .then((body) => route(req, body))
      .then(
        (result) => reply(res, 200, result),
        (err: unknown) => {
          if (err instanceof HttpError) reply(res, err.status, { error: err.message });
          else {
            reportError(broker, err, { during: 'api', route: req.url });
            reply(res, 500, { error: 'internal error' });
          }
        },
      );
  };
}

function notifyTarget(value: unknown): NotifyTarget {
  if (value === undefined || value === 'all') return 'all';
  if (value !== null && typeof value === 'object') {
    const { principal, topic } = value as Record<string, unknown>;
    if (typeof principal === 'string' && principal !== '') return { principal };
    if (typeof topic === 'string' && topic !== '') return { topic };
  }
  throw new HttpError(400, "target must be 'all', {principal} or {topic}");
}

function optionalString(value: unknown, field: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.length > 64) throw new HttpError(400, `${field} must be a string of at most 64 characters`);
  return value;
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, 'body too large');
    chunks.push(chunk);
  }
  if (size === 0) return {};
  let value: unknown;
  try {
    value = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new HttpError(400, 'body must be JSON');
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new HttpError(400, 'body must be a JSON object');
  return value as Record<string, unknown>;
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}
