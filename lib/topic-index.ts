/**
 * Subscriptions by pattern. Exact (wildcard-free) patterns live in one map, found with a single
 * lookup; patterns with wildcards live in a trie of levels, walked along one path per wildcard
 * branch. Matching a topic therefore costs one map lookup plus a walk bounded by the topic's
 * depth and the wildcard subscriptions on its path, never by unrelated subscriptions.
 */
import type { TopicSyntax } from './topics.js';

class Node<K, V> {
  readonly children = new Map<string, Node<K, V>>();
  /** Subscribers whose (wildcard) pattern ends at this node. */
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
  readonly #exact = new Map<string, Map<K, V>>();
  readonly #root = new Node<K, V>();
  /** Patterns with wildcards that have at least one subscriber. */
  #wild = 0;

  constructor(syntax: TopicSyntax) {
    this.#syntax = syntax;
  }

  /** Number of distinct patterns with at least one subscriber. */
  get size(): number {
    return this.#exact.size + this.#wild;
  }

  /** Adds or replaces `key`'s subscription to `pattern` (the pattern must be valid). */
  add(pattern: string, key: K, value: V): void {
    if (!this.#isWild(pattern)) {
      let entries = this.#exact.get(pattern);
      if (entries === undefined) {
        entries = new Map();
        this.#exact.set(pattern, entries);
      }
      entries.set(key, value);
      return;
    }
    const levels = pattern.split(this.#syntax.separator);
    const last = levels.length - 1;
    let node = this.#root;
    for (let i = 0; i < last; i++) node = child(node, levels[i]!);
    if (levels[last] === this.#syntax.multi) {
      node.multi ??= new Map();
      if (node.multi.size === 0) this.#wild++;
      node.multi.set(key, value);
    } else {
      node = child(node, levels[last]!);
      node.entries ??= new Map();
      if (node.entries.size === 0) this.#wild++;
      node.entries.set(key, value);
    }
  }

  /** Removes `key`'s subscription to `pattern`; returns whether there was one. */
  remove(pattern: string, key: K): boolean {
    if (!this.#isWild(pattern)) {
      const entries = this.#exact.get(pattern);
      if (entries === undefined || !entries.delete(key)) return false;
      if (entries.size === 0) this.#exact.delete(pattern);
      return true;
    }
    const levels = pattern.split(this.#syntax.separator);
    const last = levels.length - 1;
    const path: Node<K, V>[] = [this.#root];
    let node = this.#root;
    for (let i = 0; i < last; i++) {
      const next = node.children.get(levels[i]!);
      if (next === undefined) return false;
      node = next;
      path.push(node);
    }
    let removed = false;
    let emptied = false;
    if (levels[last] === this.#syntax.multi) {
      removed = node.multi?.delete(key) ?? false;
      if (removed && node.multi!.size === 0) {
        node.multi = null;
        emptied = true;
      }
    } else {
      const leaf = node.children.get(levels[last]!);
      if (leaf === undefined) return false;
      path.push(leaf);
      removed = leaf.entries?.delete(key) ?? false;
      if (removed && leaf.entries!.size === 0) {
        leaf.entries = null;
        emptied = true;
      }
    }
    if (emptied) {
      this.#wild--;
      this.#prune(levels, path);
    }
    return removed;
  }

  /** Whether some subscription matches the concrete `topic`. */
  has(topic: string): boolean {
    if (this.#exact.has(topic)) return true;
    if (this.#wild === 0) return false;
    let found = false;
    const levels = topic.split(this.#syntax.separator);
    this.#walk(this.#root, levels, 0, () => (found = true), levels[0]!.startsWith('$'));
    return found;
  }

  /** Calls `visit` for every subscription whose pattern matches the concrete `topic`. */
  match(topic: string, visit: MatchVisitor<K, V>): void {
    this.#exact.get(topic)?.forEach((value, key) => visit(key, value));
    if (this.#wild === 0) return;
    const levels = topic.split(this.#syntax.separator);
    // MQTT §4.7.2: wildcards in the first level do not match topics that start with '$'.
    const dollar = levels[0]!.startsWith('$');
    this.#walk(this.#root, levels, 0, visit, dollar);
  }

  #walk(node: Node<K, V>, levels: string[], depth: number, visit: MatchVisitor<K, V>, dollar: boolean): void {
    const wildcardsAllowed = !(dollar && depth === 0);
    // `x/#` matches `x` itself and everything below it.
    if (node.multi !== null && wildcardsAllowed) node.multi.forEach((value, key) => visit(key, value));
    if (depth === levels.length) {
      // Only wildcard patterns end in the trie; exact ones were found in the map.
      if (node.entries !== null) node.entries.forEach((value, key) => visit(key, value));
      return;
    }
    const literal = node.children.get(levels[depth]!);
    if (literal !== undefined) this.#walk(literal, levels, depth + 1, visit, dollar);
    if (wildcardsAllowed) {
      const single = node.children.get(this.#syntax.single);
      if (single !== undefined) this.#walk(single, levels, depth + 1, visit, dollar);
    }
  }

  #isWild(pattern: string): boolean {
    return pattern.includes(this.#syntax.single) || pattern.includes(this.#syntax.multi);
  }

  #prune(levels: string[], path: Node<K, V>[]): void {
    for (let i = path.length - 1; i > 0; i--) {
      if (!path[i]!.isEmpty()) return;
      path[i - 1]!.children.delete(levels[i - 1]!);
    }
  }
}

function child<K, V>(node: Node<K, V>, level: string): Node<K, V> {
  let next = node.children.get(level);
  if (next === undefined) {
    next = new Node();
    node.children.set(level, next);
  }
  return next;
}
