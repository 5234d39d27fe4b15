// Baseline 1: the pub/sub server most people would write in an afternoon with `ws`.
//
// Naive on purpose, but not careless: a delivery is JSON-serialised ONCE per publish and then
// `ws.send(string)` is called once per subscriber (so `ws` converts and frames it per socket).
// Exact topics only (a Map of Sets), no wildcards, no limits, no heartbeat. It speaks the subset
// of the envelope protocol (seed 001) the load generator needs, so the same client code drives it
// and switchyard: connected welcome, Subscribe → Status + Ack, Broadcast → delivery + Ack with
// recipients, Ping → Pong. Auth is "a non-empty ?token=", checked before the upgrade.
import http from 'node:http';
import { WebSocketServer } from 'ws';
import { readConfig, serve, fail } from './common.mjs';

const config = readConfig();

/** @type {Map<string, Set<import('ws').WebSocket>>} */
const topics = new Map();
let connections = 0;
let subscriptions = 0;
let nextConnection = 0;
let nextMessage = 0;

const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 64 * 1024 });
const server = http.createServer((req, res) => {
  res.writeHead(404).end();
});

server.on('upgrade', (req, socket, head) => {
  const q = req.url.indexOf('?');
  const path = q === -1 ? req.url : req.url.slice(0, q);
  if (path !== '/ws') {
    socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
    return;
  }
  const token = q === -1 ? null : new URLSearchParams(req.url.slice(q + 1)).get('token');
  if (!token) {
    socket.end('HTTP/1.1 401 Unauthorized\r\nConnection: close\r\n\r\n');
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws, token));
});

function onConnection(ws, principal) {
  connections++;
  const mine = new Set();
  const id = `c${++nextConnection}`;
  ws.send(
    JSON.stringify({
      type: 'Status',
      data: {
        status: 'connected',
        details: { connection_id: id, server_time: Date.now(), protocol_version: '1.0', features: ['broadcast'] },
      },
    }),
  );
  ws.on('message', (data, isBinary) => {
    if (isBinary) return;
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      ws.send('{"type":"Error","data":{"code":400,"message":"invalid JSON","details":{}}}');
      return;
    }
    const d = msg.data ?? {};
    switch (msg.type) {
      case 'Broadcast': {
        const subs = topics.get(d.topic);
        let n = 0;
        if (subs) {
          const out = JSON.stringify({
            type: 'Broadcast',
            data: { topic: d.topic, payload: d.payload, metadata: { sent_at: Date.now(), message_id: `m${++nextMessage}` } },
          });
          for (const s of subs) {
            if (s !== ws) {
              s.send(out);
              n++;
            }
          }
        }
        if (msg.id !== undefined) {
          ws.send(JSON.stringify({ type: 'Ack', data: { message_id: msg.id, status: 'delivered', recipients: n } }));
        }
        break;
      }
      case 'Subscribe':
      case 'Unsubscribe': {
        const list = Array.isArray(d.topics) ? d.topics : [];
        const sub = msg.type === 'Subscribe';
        for (const t of list) {
          if (sub && !mine.has(t)) {
            mine.add(t);
            subscriptions++;
            let set = topics.get(t);
            if (!set) topics.set(t, (set = new Set()));
            set.add(ws);
          } else if (!sub && mine.delete(t)) {
            subscriptions--;
            const set = topics.get(t);
            set?.delete(ws);
            if (set?.size === 0) topics.delete(t);
          }
        }
        ws.send(
          JSON.stringify({
            type: 'Status',
            data: { status: sub ? 'subscribed' : 'unsubscribed', details: { topics: list, active_subscriptions: mine.size } },
          }),
        );
        if (msg.id !== undefined) ws.send(JSON.stringify({ type: 'Ack', data: { message_id: msg.id, status: 'ok' } }));
        break;
      }
      case 'Ping':
        ws.send(JSON.stringify({ type: 'Pong', data: { timestamp: d.timestamp } }));
        if (msg.id !== undefined) ws.send(JSON.stringify({ type: 'Ack', data: { message_id: msg.id, status: 'ok' } }));
        break;
      default:
        ws.send(
          JSON.stringify({
            type: 'Error',
            data: { code: 400, message: `unsupported type ${msg.type}`, details: { message_id: msg.id } },
          }),
        );
    }
  });
  ws.on('close', () => {
    connections--;
    for (const t of mine) {
      const set = topics.get(t);
      set?.delete(ws);
      if (set?.size === 0) topics.delete(t);
    }
    subscriptions -= mine.size;
    mine.clear();
  });
  ws.on('error', () => {});
  void principal;
}

server.on('error', fail);
server.listen(config.port ?? 0, config.host ?? '127.0.0.1', () => {
  serve({
    system: 'raw',
    port: server.address().port,
    stats: () => ({ connections, subscriptions, topics: topics.size }),
    close: async () => {
      for (const ws of wss.clients) ws.terminate();
      await new Promise((r) => server.close(r));
    },
  });
});
