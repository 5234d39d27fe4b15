// Baseline 2: Socket.IO 4, the library most Node developers reach for.
// Rooms are topics (exact names only, Socket.IO has no wildcards); WebSocket transport only (no
// long-polling upgrade dance); auth is a middleware accepting any non-empty `auth.token`.
// Events: 'subscribe' (topics, ack) joins rooms; 'publish' ({topic, payload}, ack) emits
// 'message' {topic, payload, metadata} to the room except the sender and acks with the count.
import http from 'node:http';
import { Server } from 'socket.io';
import { readConfig, serve, fail } from './common.mjs';

const config = readConfig();
const server = http.createServer();
const io = new Server(server, {
  transports: ['websocket'],
  perMessageDeflate: false,
  httpCompression: false,
  serveClient: false,
  maxHttpBufferSize: 64 * 1024,
});

let nextMessage = 0;
let subscriptions = 0;

io.use((socket, next) => {
  const token = socket.handshake.auth?.token ?? socket.handshake.query?.token;
  if (token) next();
  else next(new Error('unauthorized'));
});

io.on('connection', (socket) => {
  let mine = 0;
  socket.on('subscribe', (topics, ack) => {
    const list = Array.isArray(topics) ? topics : [topics];
    for (const t of list) {
      if (!socket.rooms.has(t)) {
        socket.join(t);
        mine++;
        subscriptions++;
      }
    }
    if (typeof ack === 'function') ack({ status: 'ok', active_subscriptions: mine });
  });
  socket.on('publish', (msg, ack) => {
    const topic = msg?.topic;
    const room = io.sockets.adapter.rooms.get(topic);
    const n = room ? room.size - (room.has(socket.id) ? 1 : 0) : 0;
    if (n > 0) {
      socket.to(topic).emit('message', {
        topic,
        payload: msg.payload,
        metadata: { sent_at: Date.now(), message_id: `m${++nextMessage}` },
      });
    }
    if (typeof ack === 'function') ack({ status: 'delivered', recipients: n });
  });
  // The connect scenario's "server closes first": the server ends the connection.
  socket.on('bye', () => socket.disconnect(true));
  socket.on('disconnect', () => {
    subscriptions -= mine;
  });
});

server.on('error', fail);
server.listen(config.port ?? 0, config.host ?? '127.0.0.1', () => {
  serve({
    system: 'socketio',
    port: server.address().port,
    stats: () => ({ connections: io.engine.clientsCount, subscriptions, rooms: io.sockets.adapter.rooms.size }),
    close: async () => {
      io.disconnectSockets(true);
      await new Promise((r) => io.close(() => r()));
    },
  });
});
