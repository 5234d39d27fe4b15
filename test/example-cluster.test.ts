/**
 * examples/cluster as a user runs it: start.ts brings up three node processes on one Redis (the
 * shared one, on a channel of this run's own), demo.ts has a client on node 1 receive what a
 * client on node 3 published, and Ctrl-C (SIGINT) stops all three.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { until } from './cluster/procs.js';
import { serviceUp } from './cluster/services.js';

const root = fileURLToPath(new URL('..', import.meta.url));

function run(script: string, args: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: string[] = [];
  readline.createInterface({ input: child.stdout }).on('line', (line) => lines.push(line));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, lines, exited };
}

describe('examples/cluster', async () => {
  if (!(await serviceUp('Redis', 6379))) return;

  it('starts three nodes on one Redis; a client on node 1 receives what node 3 published', async () => {
    const cluster = run('examples/cluster/start.ts', [], { BASE_PORT: '0', CHANNEL: `sy-example:${randomUUID()}` });
    try {
      await until(() => cluster.lines.filter((l) => /^node \d: ws:/.test(l)).length === 3, 'three nodes listening', 60_000);
      const url = (n: number) => cluster.lines.find((l) => l.startsWith(`node ${n}: `))!.slice(`node ${n}: `.length);
      const demo = run('examples/cluster/demo.ts', [url(1), url(3)]);
      expect(await demo.exited).toBe(0);
      const received = demo.lines.find((l) => l.startsWith('alice received: '));
      expect(JSON.parse(received!.slice('alice received: '.length))).toMatchObject({ type: 'Broadcast', data: { topic: 'demo/greetings', payload: { text: 'hello from node 3' } } });
    } finally {
      cluster.child.kill('SIGINT');
      await cluster.exited;
    }
    expect(cluster.lines.filter((l) => / exited /.test(l))).toHaveLength(3);
  }, 120_000);
});
