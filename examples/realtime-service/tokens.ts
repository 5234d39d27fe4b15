/**
 * JWTs for the realtime service (seed 001 "Authentication Methods"): HS256 tokens signed and
 * verified with `jose`, mapped to a switchyard Principal, plus the revocation list that keeps a
 * revoked token from simply reconnecting until it expires.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { SignJWT, jwtVerify, type JWTPayload } from 'jose';
import type { Grant, Principal } from 'switchyard';

/** What a token may carry besides the registered claims. */
export interface ServiceClaims {
  /** `user` for everyone; `admin` may also call /api/notify and revoke any token. */
  roles: Role[];
  /** Shown to presence watchers (seed 001 "Presence Updates": `metadata {device, location}`). */
  presence?: { device?: string; location?: string };
}

export type Role = 'user' | 'admin';

export interface IssuedToken {
  token: string;
  tokenId: string;
  /** Seconds since the epoch, as in the JWT `exp` claim. */
  exp: number;
}

const ISSUER = 'switchyard-realtime-service';
const AUDIENCE = 'switchyard-realtime-service/ws';

/**
 * What each role may do. Topics use seed 001's dotted names; `>` is the multi-level wildcard.
 * Presence topics start with `$`, which (MQTT §4.7) no `>` grant reaches: they are granted
 * explicitly so a catch-all never leaks who is online.
 */
export const ROLE_GRANTS: Record<Role, readonly Grant[]> = {
  user: [
    { topic: 'chat.>', access: 'readwrite' },
    { topic: 'notifications', access: 'read' },
    { topic: 'updates.>', access: 'read' },
    { topic: '$presence.>', access: 'read' },
  ],
  admin: [
    { topic: '>', access: 'readwrite' },
    { topic: '$presence.>', access: 'read' },
  ],
};

/** A signing key from the given secret, `JWT_SECRET`, or (dev only) 32 random bytes. */
export function signingKey(secret: string | undefined = process.env.JWT_SECRET): { key: Uint8Array; generated: boolean } {
  if (secret !== undefined && secret !== '') {
    if (Buffer.byteLength(secret) < 32) throw new TypeError('JWT secret must be at least 32 bytes for HS256');
    return { key: new TextEncoder().encode(secret), generated: false };
  }
  return { key: randomBytes(32), generated: true };
}

/** Issued and revoked token ids, each forgotten once its token would have expired anyway. */
export class TokenRegistry {
  readonly #key: Uint8Array;
  /** jti → owner and exp (s), so a user may revoke their own tokens. */
  readonly #issued = new Map<string, { sub: string; exp: number }>();
  /** jti → exp (s) of tokens that must not be accepted again. */
  readonly #revoked = new Map<string, number>();

  constructor(key: Uint8Array) {
    this.#key = key;
  }

  async issue(sub: string, claims: ServiceClaims, ttlSeconds: number): Promise<IssuedToken> {
    this.#prune();
    const tokenId = randomUUID();
    const exp = Math.floor(Date.now() / 1000) + Math.max(1, Math.floor(ttlSeconds));
    const token = await new SignJWT({ roles: claims.roles, ...(claims.presence && { presence: claims.presence }) })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setSubject(sub)
      .setJti(tokenId)
      .setIssuedAt()
      .setExpirationTime(exp)
      .sign(this.#key);
    this.#issued.set(tokenId, { sub, exp });
    return { token, tokenId, exp };
  }

  /** Verifies signature, algorithm, issuer, audience and expiry; null for anything else. */
  async verify(token: string): Promise<(JWTPayload & { sub: string; jti: string; exp: number }) | null> {
    try {
      const { payload } = await jwtVerify(token, this.#key, {
        algorithms: ['HS256'],
        issuer: ISSUER,
        audience: AUDIENCE,
        requiredClaims: ['sub', 'jti', 'exp'],
      });
      const { sub, jti, exp } = payload;
      if (typeof sub !== 'string' || typeof jti !== 'string' || typeof exp !== 'number') return null;
      if (this.#revoked.has(jti)) return null;
      return { ...payload, sub, jti, exp };
    } catch {
      return null;
    }
  }

  /** The user a token id was issued to, while it is still valid. */
  ownerOf(tokenId: string): string | undefined {
    return this.#issued.get(tokenId)?.sub;
  }

  /** Refuses the token id from now on (until it would have expired anyway). */
  revoke(tokenId: string): void {
    this.#prune();
    const exp = this.#issued.get(tokenId)?.exp ?? Math.floor(Date.now() / 1000) + 24 * 3600;
    this.#revoked.set(tokenId, exp);
  }

  #prune(): void {
    const now = Date.now() / 1000;
    for (const [jti, { exp }] of this.#issued) if (exp < now) this.#issued.delete(jti);
    for (const [jti, exp] of this.#revoked) if (exp < now) this.#revoked.delete(jti);
  }
}

/** Maps verified claims to the Principal switchyard keeps with each connection. */
export function principalOf(claims: JWTPayload & { sub: string; jti: string; exp: number }): Principal {
  const roles = rolesOf(claims.roles);
  const grants = roles.flatMap((r) => ROLE_GRANTS[r]);
  const presence = presenceOf(claims.presence);
  return {
    id: claims.sub,
    tokenId: claims.jti,
    grants,
    // The core warns with `AuthStatus token_expiring` ahead of this and closes 4002 at it.
    expiresAt: claims.exp * 1000,
    data: { roles, presence },
  };
}

export function rolesOf(value: unknown): Role[] {
  if (!Array.isArray(value)) return [];
  return value.filter((r): r is Role => r === 'user' || r === 'admin');
}

function presenceOf(value: unknown): { device?: string; location?: string } {
  if (value === null || typeof value !== 'object') return {};
  const { device, location } = value as Record<string, unknown>;
  return {
    ...(typeof device === 'string' && { device }),
    ...(typeof location === 'string' && { location }),
  };
}
