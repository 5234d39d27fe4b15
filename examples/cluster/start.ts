/**
 * Starts three broker nodes (examples/cluster/node.ts), each its own process on its own port, all
 * on one Redis, and stops them on Ctrl-C.
 *
 *   npm run example:cluster     (BASE_PORT, default 8091: nodes on 8091, 8092, 8093; 0 for any
 *                                free ports; REDIS_URL; CHANNEL)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

const base = Number(process.env.BASE_PORT ?? 8091);
const node = fileURLToPath(new URL('./node.ts', import.meta.url));
const children: ChildProcess[] = [];

for (let i = 0; i < 3; i++) {
  const child = spawn(process.execPath, ['--import', 'tsx', node], {
    env: { ...process.env, PORT: String(base === 0 ? 0 : base + i) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  readline.createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      const { listening } = JSON.parse(line) as { listening: string };
      process.stdout.write(`node ${i + 1}: ${listening}\n`);
    } catch {
      process.stdout.write(`node ${i + 1}: ${line}\n`);
    }
  });
  child.once('exit', (code, signal) => {
    process.stdout.write(`node ${i + 1} exited (${signal ?? code})\n`);
    if (!stopping) stop();
  });
}

let stopping = false;
function stop(): void {
  stopping = true;
  for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
}
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
