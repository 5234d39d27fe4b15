/**
 * The real services the bus tests use, and the rule for when one is absent: in CI (CI=true) the
 * tests must run, so an absent service fails the file; elsewhere they are skipped with a reason.
 */
import net from 'node:net';

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
export const NATS_SERVERS = process.env.NATS_URL ?? '127.0.0.1:4222';

/** Whether something accepts TCP connections at host:port (within a second). */
export function reachable(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** True when the service is there; throws in CI when it is not; otherwise says why tests skip. */
export async function serviceUp(name: string, port: number): Promise<boolean> {
  if (await reachable(port)) return true;
  if (process.env.CI === 'true') throw new Error(`${name} is not reachable on 127.0.0.1:${port}, and CI never skips its tests`);
  process.stderr.write(`skipping ${name} tests: nothing listens on 127.0.0.1:${port}\n`);
  return false;
}
