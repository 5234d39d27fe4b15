// Peer 1: nats-server (the Debian package, /usr/sbin/nats-server), clients over its WebSocket
// listener. Fresh config per step on spare 127.0.0.1 ports (WebSocket, client TCP, monitoring;
// the config is PEER_CONFIGS.nats in external.mjs): no TLS, no compression, no auth (any client
// may publish and subscribe), defaults otherwise (max_pending 64 MB, write_deadline 10 s). Pinned like the Node servers: it inherits
// the wrapper's affinity, so the Go runtime sees one CPU (GOMAXPROCS 1). See external.mjs.
import http from 'node:http';
import { runPeer } from './external.mjs';

/** Connections and subscriptions as the server counts them (monitoring endpoint /varz). */
function varz(port) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/varz', timeout: 2000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => {
        try {
          const v = JSON.parse(body);
          resolve({ connections: v.connections, subscriptions: v.subscriptions, slowConsumers: v.slow_consumers });
        } catch (err) {
          reject(err);
        }
      });
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('varz timeout')));
  });
}

runPeer({
  system: 'nats',
  gcNote: 'nats-server is Go: its garbage collector cannot be forced from outside, so RSS may include garbage',
  appStats: (_pid, [, , monitor]) => varz(monitor),
}).catch((err) => {
  process.send?.({ type: 'failed', error: String(err?.stack ?? err) });
  setTimeout(() => process.exit(1), 50);
});
