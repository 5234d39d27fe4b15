/**
 * Subscriptions by pattern, as a trie of levels. Matching a topic walks one path per wildcard
 * branch, so its cost depends on the topic's depth and on the wildcard subscriptions along
 * that path, never on the number of unrelated subscriptions.
 */
import type { TopicSyntax } from './topics.js';

class Node<K, V> {
  readonly children = new Map<string, Node<K, V>>();
  /** Subscribers whose pattern ends at this node, with their per-subscription value. */
  entries: Map<K, V> | null = null;
  /** Subscribers of `<this node>/#`. */
  multi: Map<K, V> | null = null;

  isEmpty(): boolean {
    return this.children.size === 0 && this.entries === null && this.multi === null;
  }
}

export type MatchVisitor<K, V> = (key: K, value: V) => void;

export class TopicIndex<K, V> {
  readonly #syntax: TopicSyntax;
  readonly #root = new Node<K, V>();
  /** Exact (wildcard-free) patterns are the common case: one map lookup finds their node. */
  readonly #exact = new Map<string, Node<K, V>>();
  #patterns = 0;

  constructor(syntax: TopicSyntax) {
    this.#syntax = syntax;
  }

  /** Number of distinct patterns with at least one subscriber. */
  get size(): number {
    return this.#patterns;
  }

  /** Adds or replaces `key`'s subscription to `pattern` (the pattern must be valid). */
  add(pattern: string, key: K, value: V): void {
    const levels = pattern.split(this.#syntax.separator);
    let node = this.#root;
    const last = levels.length - 1;
    for (let i = 0; i < levels.length; i++) {
      const level = levels[i]!;
      if (i === last && level === this.#syntax.multi) {
        if (node.multi === null) {
          node.multi = new Map();
        }
        if (node.multi.size === 0) this.#patterns++;
        node.multi.set(key, value);
        return;
      }
      let child = node.children.get(level);
      if (child === undefined) {
        child = new Node();
        node.children.set(level, child);
      }
      node = child;
    }
    if (node.entries === null) {
      node.entries = new Map();
      this.#patterns++;
      if (!pattern.includes(this.#syntax.single)) this.#exact.set(pattern, node);
    }
    node.entries.set(key, value);
  }

  /** Removes `key`'s subscription to `pattern`; returns whether there was one. */
  remove(pattern: string, key: K): boolean {
    const levels = pattern.split(this.#syntax.separator);
    const path: Node<K, V>[] = [this.#root];
    let node = this.#root;
    const last = levels.length - 1;
    let removed = false;
    for (let i = 0; i < levels.length; i++) {
      const level = levels[i]!;
      if (i === last && level === this.#syntax.multi) {
        removed = node.multi?.delete(key) ?? false;
        if (removed && node.multi!.size === 0) {
          node.multi = null;
          this.#patterns--;
        }
        break;
      }
      const child = node.children.get(level);
      if (child === undefined) return false;
      node = child;
      path.push(node);
      if (i === last) {
        removed = node.entries?.delete(key) ?? false;
        if (removed && node.entries!.size === 0) {
          node.entries = null;
          this.#patterns--;
          this.#exact.delete(pattern);
        }
      }
    }
    if (removed) this.#prune(levels, path);
    return removed;
  }

  /** Calls `visit` for every subscription whose pattern matches the concrete `topic`. */
  match(topic: string, visit: MatchVisitor<K, V>): void {
    if (this.#patterns === this.#exact.size) {
      // No wildcard subscription exists anywhere: one lookup is the whole answer.
      visitAll(this.#exact.get(topic)?.entries ?? null, visit);
      return;
    }
    const levels = topic.split(this.#syntax.separator);
    // MQTT §4.7.2: wildcards in the first level do not match topics that start with '$'.
    const dollar = levels[0]!.startsWith('$');
    this.#walk(this.#root, levels, 0, visit, dollar);
  }

  #walk(node: Node<K, V>, levels: string[], depth: number, visit: MatchVisitor<K, V>, dollar: boolean): void {
    const wildcardsAllowed = !(dollar && depth === 0);
    // `x/#` matches `x` itself and everything below it.
    if (node.multi !== null && wildcardsAllowed) visitAll(node.multi, visit);
    if (depth === levels.length) {
      visitAll(node.entries, visit);
      return;
    }
    const level = levels[depth]!;
    const literal = node.children.get(level);
    if (literal !== undefined) this.#walk(literal, levels, depth + 1, visit, dollar);
    if (wildcardsAllowed) {
      const single = node.children.get(this.#syntax.single);
      if (single !== undefined) this.#walk(single, levels, depth + 1, visit, dollar);
    }
  }

  #prune(levels: string[], path: Node<K, V>[]): void {
    for (let i = path.length - 1; i > 0; i--) {
      if (!path[i]!.isEmpty()) return;
      path[i - 1]!.children.delete(levels[i - 1]!);
    }
  }
}

function visitAll<K, V>(entries: Map<K, V> | null, visit: MatchVisitor<K, V>): void {
  if (entries === null) return;
  for (const [key, value] of entries) visit(key, value);
}
