/**
 * Slowloris (issue 16, finding 6): an upgrade request whose headers never finish is not an
 * 'upgrade' event yet, so the broker's handshake timeout cannot see it; only Node's own
 * `headersTimeout` (default 60 s) ends it, checked every `connectionsCheckingInterval` (default
 * 30 s): about 90 s per socket. `attach` bounds both by the handshake budget, so a partial
 * request is dropped (Node answers 408) within `handshakeTimeoutMs`.
 */
import type { Server } from 'node:http';

/** Node checks for expired headers at most this often, whatever the budget. */
const MIN_CHECK_MS = 100;

/**
 * Lowers `server.headersTimeout` (to half of `budgetMs`) and the interval Node checks it on (to a
 * quarter) so that a partial request is dropped within the budget. Never raises them.
 * The interval is read by Node when the server starts listening: on a server already listening
 * it cannot change, and a warning says what to pass to `createServer` instead. Returns a
 * function that puts back the `headersTimeout` it changed.
 */
export function limitHeaderTime(server: Server, budgetMs: number): () => void {
  const interval = Math.max(MIN_CHECK_MS, Math.floor(budgetMs / 4));
  // Half for the headers, a quarter for the check: dropped by 3/4 of the budget, leaving the
  // last quarter for Node to write its 408 and close, on a busy event loop.
  const headers = Math.max(1, Math.floor(budgetMs / 2));
  const before = server.headersTimeout;
  if (before === 0 || before > headers) server.headersTimeout = headers;
  // `connectionsCheckingInterval` is a createServer option that Node keeps on the server and
  // reads on 'listening'; @types/node does not declare the property, hence Reflect.
  const current: unknown = Reflect.get(server, 'connectionsCheckingInterval');
  if (typeof current === 'number' && current > interval) {
    if (server.listening) {
      process.emitWarning(
        `switchyard: this server checks for unfinished request headers every ${current} ms, so a ` +
          `partial upgrade request (slowloris) can outlive the ${budgetMs} ms handshake budget. Attach ` +
          `before listen(), or create the server with { connectionsCheckingInterval: ${interval}, headersTimeout: ${headers} }.`,
        { code: 'SWITCHYARD_HEADERS_TIMEOUT' },
      );
    } else {
      Reflect.set(server, 'connectionsCheckingInterval', interval);
    }
  }
  return () => {
    if (server.headersTimeout === headers && before !== headers) server.headersTimeout = before;
  };
}
