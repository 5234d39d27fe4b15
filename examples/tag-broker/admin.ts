/**
 * The admin HTTP routes: what "the database" of seed 000 is here. Changing a token or a
 * permission while clients are connected tells the broker, which closes them as the seed's
 * table says: a token revoked or modified → 4002, a permission a subscription relies on
 * changed or deleted → 4003. Every route needs `Authorization: Token <admin token>`.
 *
 *   POST   /admin/tokens                        {name, max_connections?, permissions?: {tag: access}}
 *   GET    /admin/tokens, /admin/tokens/:id
 *   PATCH  /admin/tokens/:id                    {max_connections}       → live connections get 4002
 *   DELETE /admin/tokens/:id                                            → live connections get 4002
 *   PUT    /admin/tokens/:id/permissions        {tag, access}           → re-check: lost tags get 4003
 *   DELETE /admin/tokens/:id/permissions?tag=…                          → re-check: lost tags get 4003
 */
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { checkTopic, verifyToken, type Access, type Broker } from 'switchyard';
import type { TokenRecord, TokenStore } from './tokens.js';

export interface AdminContext {
  broker: Broker;
  tokens: TokenStore;
  /** hashToken(admin token, adminPepper). */
  adminHash: string;
  adminPepper: string;
}

const MAX_BODY_BYTES = 16 * 1024;

class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

export function adminRoutes(ctx: AdminContext): RequestListener {
  return (req, res) => {
    handle(ctx, req, res).catch((err: unknown) => {
      const status = err instanceof HttpError ? err.status : 500;
      const message = err instanceof HttpError ? err.message : 'internal error';
      if (!(err instanceof HttpError)) console.error('admin route failed:', err);
      if (!res.headersSent) reply(res, status, { error: message });
      else res.end();
    });
  };
}

async function handle(ctx: AdminContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const parts = url.pathname.split('/').filter((p) => p !== '');
  if (parts[0] !== 'admin' || parts[1] !== 'tokens' || parts.length > 4 || (parts.length === 4 && parts[3] !== 'permissions')) {
    throw new HttpError(404, 'not found');
  }
  checkAdmin(ctx, req);
  const { broker, tokens } = ctx;
  const id = parts[2];

  if (id === undefined) {
    if (req.method === 'GET') return reply(res, 200, tokens.list().map((r) => describe(broker, r)));
    if (req.method === 'POST') {
      const body = await readJson(req);
      const name = typeof body.name === 'string' && body.name !== '' ? body.name : fail(400, 'name must be a non-empty string');
      const maxConnections = body.max_connections === undefined ? 1 : limit(body.max_connections);
      const permissions: Record<string, Access> = {};
      for (const [tag, access] of Object.entries(objectOr(body.permissions))) permissions[validTag(broker, tag)] = validAccess(access);
      const { token, record } = tokens.create({ name, maxConnections, permissions });
      // The only time the plaintext token is shown.
      return reply(res, 201, { ...describe(broker, record), token });
    }
    throw new HttpError(405, 'method not allowed');
  }

  const record = tokens.get(id) ?? fail(404, `no token ${id}`);
  if (parts.length === 3) {
    if (req.method === 'GET') return reply(res, 200, describe(broker, record));
    if (req.method === 'DELETE') {
      tokens.delete(id);
      // Seed 000: "The client's token was … deleted in the database while the client was connected" → 4002.
      return reply(res, 200, { closed: broker.revoke({ tokenId: record.id }, 'token revoked') });
    }
    if (req.method === 'PATCH') {
      const body = await readJson(req);
      record.maxConnections = limit(body.max_connections);
      // Seed 000: "The client's token was modified …" → 4002; clients reconnect under the new terms.
      return reply(res, 200, { ...describe(broker, record), closed: broker.revoke({ tokenId: record.id }, 'token modified') });
    }
    throw new HttpError(405, 'method not allowed');
  }

  if (req.method === 'PUT') {
    const body = await readJson(req);
    record.permissions.set(validTag(broker, body.tag), validAccess(body.access));
  } else if (req.method === 'DELETE') {
    const tag = url.searchParams.get('tag') ?? fail(400, 'DELETE needs ?tag=');
    if (!record.permissions.delete(tag)) throw new HttpError(404, `token ${id} has no permission for ${tag}`);
  } else {
    throw new HttpError(405, 'method not allowed');
  }
  // Seed 000: "A permission affecting one of the client's subscriptions was changed or deleted" → 4003.
  // The broker re-checks every subscription of the token's connections against the new grants.
  const dropped = await broker.reauthorize(record.id, tokens.principal(record));
  return reply(res, 200, { ...describe(broker, record), dropped });
}

function checkAdmin(ctx: AdminContext, req: IncomingMessage): void {
  const match = /^Token\s+(\S+)$/i.exec(req.headers.authorization ?? '');
  if (match === null) throw new HttpError(401, 'Authorization: Token <admin token> required');
  if (!verifyToken(match[1]!, ctx.adminHash, ctx.adminPepper)) throw new HttpError(403, 'invalid admin token');
}

function describe(broker: Broker, r: TokenRecord) {
  return {
    id: r.id,
    name: r.name,
    max_connections: r.maxConnections,
    permissions: Object.fromEntries(r.permissions),
    connections: broker.connectionsOf(r.id),
  };
}

function fail(status: number, message: string): never {
  throw new HttpError(status, message);
}

function validTag(broker: Broker, tag: unknown): string {
  const problem = checkTopic(broker.syntax, tag, true);
  if (problem !== null) fail(400, `invalid tag: ${problem}`);
  return tag as string;
}

function validAccess(access: unknown): Access {
  if (access !== 'read' && access !== 'readwrite') fail(400, "access must be 'read' or 'readwrite'");
  return access;
}

function limit(value: unknown): number {
  if (!Number.isInteger(value) || (value as number) < 1) fail(400, 'max_connections must be a positive integer');
  return value as number;
}

function objectOr(value: unknown): Record<string, unknown> {
  if (value === undefined) return {};
  if (value === null || typeof value !== 'object' || Array.isArray(value)) fail(400, 'permissions must be an object of tag → access');
  return value as Record<string, unknown>;
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) fail(413, 'body too large');
    chunks.push(chunk);
  }
  let value: unknown;
  try {
    value = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    fail(400, 'body must be JSON');
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) fail(400, 'body must be a JSON object');
  return value as Record<string, unknown>;
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
