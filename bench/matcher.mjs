#!/usr/bin/env node
// Topic matching: switchyard's TopicIndex (a trie with an exact-topic map) against qlobber,
// with more and more unrelated subscriptions. The cost of matching one topic must not grow
// with subscriptions that cannot match it. In-process, single core; run after `npm run build`:
//   node bench/matcher.mjs
import { performance } from 'node:perf_hooks';
import qlobber from 'qlobber';
import { resolveTopicSyntax, TopicIndex } from 'switchyard';

const { Qlobber } = qlobber;
const syntax = resolveTopicSyntax();
const SIZES = [100, 10_000, 100_000];
const MATCHES = 200_000;

function fill(add, n) {
  // n unrelated subscriptions: exact topics and, one in ten, wildcards under other roots.
  for (let i = 0; i < n; i++) {
    if (i % 10 === 0) add(`other${i % 1000}/+/x${i}`, `w${i}`);
    else add(`room/${i}/messages`, `s${i}`);
  }
  // What the measured topic does match: one exact, one '+', one '#'.
  add('room/hot/messages', 'exact');
  add('room/+/messages', 'plus');
  add('room/#', 'hash');
}

function time(label, n, match) {
  for (let i = 0; i < 20_000; i++) match(); // warm up
  const start = performance.now();
  let hits = 0;
  for (let i = 0; i < MATCHES; i++) hits += match();
  const ns = ((performance.now() - start) * 1e6) / MATCHES;
  if (hits !== 3 * MATCHES) throw new Error(`${label}: expected 3 matches per topic, got ${hits / MATCHES}`);
  return ns;
}

const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rows = [];
for (const n of SIZES) {
  const index = new TopicIndex(syntax);
  fill((p, k) => index.add(p, k, null), n);
  let count = 0;
  const visit = () => count++;
  const viaIndex = () => {
    count = 0;
    index.match('room/hot/messages', visit);
    return count;
  };
  const q = new Qlobber({ separator: '/', wildcard_one: '+', wildcard_some: '#', match_empty_levels: true });
  fill((p, k) => q.add(p, k), n);
  const viaQlobber = () => q.match('room/hot/messages').length;
  const a = [];
  const b = [];
  // Alternate the two, several rounds, and keep the medians: JIT warm-up order cancels out.
  for (let round = 0; round < 7; round++) {
    a.push(time('TopicIndex', n, viaIndex));
    b.push(time('qlobber', n, viaQlobber));
  }
  rows.push({ subscriptions: n, 'TopicIndex ns/match': median(a).toFixed(0), 'qlobber ns/match': median(b).toFixed(0) });
}
console.table(rows);
