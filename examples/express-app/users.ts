/**
 * The app's own users and API tokens: an in-memory table standing in for its database. Tokens
 * are `<id>.<secret>`; only a hash of the secret is kept (`hashToken`), and a presented token is
 * looked up by id and checked in constant time (`verifyToken`).
 */
import { generateToken, hashToken, verifyToken, type Grant } from 'switchyard';

export type Role = 'admin' | 'member' | 'viewer';

export interface User {
  id: string;
  name: string;
  role: Role;
}

/** Who a valid token belongs to: what the app's middleware puts on `req.auth`. */
export interface Auth {
  user: User;
  tokenId: string;
}

interface TokenRecord {
  userId: string;
  hash: string;
}

/** What each role may do on the broker's topics, as switchyard grants. */
export function grantsFor(role: Role): Grant[] {
  switch (role) {
    case 'admin':
      return [{ topic: '#', access: 'readwrite' }];
    case 'member':
      return [
        { topic: 'rooms/#', access: 'readwrite' },
        { topic: 'announcements', access: 'read' },
      ];
    case 'viewer':
      return [
        { topic: 'rooms/#', access: 'read' },
        { topic: 'announcements', access: 'read' },
      ];
  }
}

export class Users {
  readonly #users = new Map<string, User>();
  readonly #tokens = new Map<string, TokenRecord>();
  #nextToken = 1;

  add(user: User): User {
    this.#users.set(user.id, user);
    return user;
  }

  get(id: string): User | undefined {
    return this.#users.get(id);
  }

  /** Issues a token for a user and returns its plaintext: the only time it exists. */
  issueToken(userId: string): { tokenId: string; token: string } {
    if (!this.#users.has(userId)) throw new Error(`no user ${userId}`);
    const tokenId = `t${this.#nextToken++}`;
    const secret = generateToken();
    this.#tokens.set(tokenId, { userId, hash: hashToken(secret) });
    return { tokenId, token: `${tokenId}.${secret}` };
  }

  /** The user a presented token belongs to, or undefined (unknown, revoked, or wrong secret). */
  verify(token: string): Auth | undefined {
    const dot = token.indexOf('.');
    if (dot <= 0) return undefined;
    const tokenId = token.slice(0, dot);
    const record = this.#tokens.get(tokenId);
    if (record === undefined || !verifyToken(token.slice(dot + 1), record.hash)) return undefined;
    const user = this.#users.get(record.userId);
    return user === undefined ? undefined : { user, tokenId };
  }

  revokeToken(tokenId: string): boolean {
    return this.#tokens.delete(tokenId);
  }
}
