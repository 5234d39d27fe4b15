/**
 * Cost of the JSON nesting check (issue 16, finding 3) on the inbound hot path: parseObject on
 * typical frames with the check and with a plain JSON.parse. Run: npx tsx bench/json-depth.ts
 */
import { DEFAULT_MAX_JSON_DEPTH, nestedDeeperThan, parseObject } from '../lib/protocols/json.js';

const frames: Record<string, Buffer> = {
  'Broadcast, 120 B': Buffer.from(JSON.stringify({ type: 'Broadcast', id: 'r1', data: { topic: 'sensors/room1/temp', payload: { t: 21.5, u: 'C' } } })),
  'Broadcast, 400 B': Buffer.from(
    JSON.stringify({ type: 'Broadcast', id: 'r12345', data: { topic: 'sensors/room1/temp', payload: { readings: Array.from({ length: 20 }, (_, i) => ({ i, v: i * 1.5 })) } } }),
  ),
  'Broadcast, 4 KB text': Buffer.from(JSON.stringify({ type: 'Broadcast', id: 'r1', data: { topic: 'chat/room', payload: { text: 'lorem ipsum '.repeat(340) } } })),
};

function plain(raw: Buffer): Record<string, unknown> {
  return JSON.parse(raw.toString('utf8')) as Record<string, unknown>;
}

function time(fn: (raw: Buffer) => unknown, raw: Buffer, n: number): number {
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) fn(raw);
  return Number(process.hrtime.bigint() - start) / n;
}

for (const [name, raw] of Object.entries(frames)) {
  const n = 300_000;
  for (let r = 0; r < 3; r++) {
    time(plain, raw, n / 10);
    time((b) => parseObject(b), raw, n / 10);
  }
  const results = { plain: [] as number[], checked: [] as number[], scanOnly: [] as number[] };
  for (let r = 0; r < 5; r++) {
    results.plain.push(time(plain, raw, n));
    results.checked.push(time((b) => parseObject(b), raw, n));
    const text = raw.toString('utf8');
    results.scanOnly.push(time(() => nestedDeeperThan(text, DEFAULT_MAX_JSON_DEPTH), raw, n));
  }
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[2]!.toFixed(0);
  console.log(`${name} (${raw.length} B): JSON.parse ${median(results.plain)} ns, parseObject ${median(results.checked)} ns, scan alone ${median(results.scanOnly)} ns`);
}
