/**
 * The token table of seed 000 ("the token is invalid or does not have permission for one or
 * more of the requested tags"; "the maximum number of concurrent connections for this token"),
 * kept in memory. Only a keyed hash of each secret is stored; a token reads `<id>.<secret>`,
 * so the record is found by id and the secret checked in constant time.
 */
import { generateToken, hashToken, verifyToken, type Access, type Principal } from 'switchyard';

export interface TokenRecord {
  id: string;
  name: string;
  /** hashToken(token, pepper): the token itself is never kept. */
  hash: string;
  /** Concurrent connections allowed for this token (seed 000, close 4004 past it). */
  maxConnections: number;
  /** Tag pattern → access, e.g. `sensors/#` → `readwrite`. */
  permissions: Map<string, Access>;
}

export interface TokenSpec {
  name: string;
  /** A fixed secret (demo tokens for scripted clients): the token is then `tok_<name>.<secret>`. Default: random. */
  secret?: string;
  maxConnections?: number;
  permissions?: Record<string, Access>;
}

export class TokenStore {
  readonly #records = new Map<string, TokenRecord>();
  /** A server-side secret mixed into every hash, so a leaked table alone cannot be checked offline. */
  readonly #pepper: string;

  constructor(pepper = generateToken()) {
    this.#pepper = pepper;
  }

  /** Creates a token; its plaintext is returned once and never stored. */
  create(spec: TokenSpec): { token: string; record: TokenRecord } {
    const id = spec.secret === undefined ? `tok_${generateToken(9)}` : `tok_${spec.name}`;
    const token = `${id}.${spec.secret ?? generateToken()}`;
    const record: TokenRecord = {
      id,
      name: spec.name,
      hash: hashToken(token, this.#pepper),
      maxConnections: spec.maxConnections ?? 1,
      permissions: new Map(Object.entries(spec.permissions ?? {})),
    };
    this.#records.set(id, record);
    return { token, record };
  }

  /** The record a presented token belongs to, or undefined (unknown id or wrong secret). */
  verify(token: string): TokenRecord | undefined {
    const id = token.slice(0, token.indexOf('.'));
    const record = this.#records.get(id);
    if (record === undefined || !verifyToken(token, record.hash, this.#pepper)) return undefined;
    return record;
  }

  get(id: string): TokenRecord | undefined {
    return this.#records.get(id);
  }

  list(): TokenRecord[] {
    return [...this.#records.values()];
  }

  delete(id: string): boolean {
    return this.#records.delete(id);
  }

  /** What the broker holds for a connection of this token: one principal per token. */
  principal(record: TokenRecord): Principal {
    return {
      id: record.id,
      tokenId: record.id,
      maxConnections: record.maxConnections,
      grants: [...record.permissions].map(([topic, access]) => ({ topic, access })),
      data: { name: record.name },
    };
  }
}
