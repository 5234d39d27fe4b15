// Peer 2: mosquitto (the Debian package, /usr/sbin/mosquitto, built with libwebsockets), MQTT
// 3.1.1 clients over its WebSocket listener (subprotocol `mqtt`). Fresh config per step on spare
// ports: `listener N` + `protocol websockets`, anonymous access, no persistence, TCP_NODELAY.
// mosquitto 2.0.11 refuses to start when its only listener is a websockets one ("Unable to start
// any listening sockets"), so the config also has a plain MQTT listener on a second spare
// 127.0.0.1 port that nothing uses. libwebsockets binds the WebSocket port on every interface
// (it ignores the 127.0.0.1 in `listener`); the port is random and lives for one step. A build
// without websockets support says so at start, and the step reads n/a. See external.mjs.
import { runPeer } from './external.mjs';

runPeer({
  system: 'mosquitto',
  ports: 2,
  unsupported: /[Ww]ebsockets support not available|not compiled with websockets/,
  setup: (dir, [ws, tcp]) => ({
    args: ['-c', 'mosquitto.conf'],
    files: {
      'mosquitto.conf': [
        // As root, mosquitto would switch to the `mosquitto` user, which clears the parent-death
        // signal that ties it to this step; stay the user we are.
        ...(process.getuid?.() === 0 ? ['user root'] : []),
        'allow_anonymous true',
        'persistence false',
        'log_dest stderr',
        'log_type error',
        'log_type warning',
        'connection_messages false',
        'set_tcp_nodelay true',
        'max_keepalive 65535',
        `listener ${tcp} 127.0.0.1`,
        `listener ${ws} 127.0.0.1`,
        'protocol websockets',
        '',
      ].join('\n'),
    },
  }),
}).catch((err) => {
  process.send?.({ type: 'failed', error: String(err?.stack ?? err) });
  setTimeout(() => process.exit(1), 50);
});
