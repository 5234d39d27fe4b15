/**
 * The real Redis and PostgreSQL the store tests run against (shared with other test runs: every
 * run uses its own key prefix / table prefix, never FLUSH, never another run's tables). Outside
 * CI a missing server skips those tests, saying why; in CI (CI=true) they never skip.
 */
import net from 'node:net';
import { randomUUID } from 'node:crypto';

export const REDIS_URL = process.env.SWITCHYARD_TEST_REDIS ?? 'redis://127.0.0.1:6379';
export const POSTGRES_URL = process.env.SWITCHYARD_TEST_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432/test';

/** A fresh id per test run, for key and table prefixes. */
export const RUN = randomUUID().replaceAll('-', '').slice(0, 12);

/** Whether a TCP server answers at the URL's host and port. */
function reachable(url: string, defaultPort: number): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect({ host: hostname, port: Number(port || defaultPort) });
    socket.setTimeout(2000);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(false));
  });
}

/** True when the tests of this service must be skipped (printing why); in CI never. */
export async function skipWithout(what: 'Redis' | 'PostgreSQL'): Promise<boolean> {
  const up = what === 'Redis' ? await reachable(REDIS_URL, 6379) : await reachable(POSTGRES_URL, 5432);
  if (up) return false;
  if (process.env.CI) throw new Error(`${what} is not reachable (${what === 'Redis' ? REDIS_URL : POSTGRES_URL}) and CI=true: these tests must run`);
  console.log(`skipping the ${what} tests: no server at ${what === 'Redis' ? REDIS_URL : POSTGRES_URL}`);
  return true;
}
