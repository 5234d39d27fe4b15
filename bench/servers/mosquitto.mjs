// Peer 2: mosquitto (the Debian package, /usr/sbin/mosquitto, built with libwebsockets), MQTT
// 3.1.1 clients over its WebSocket listener (subprotocol `mqtt`). Fresh config per step on spare
// ports (PEER_CONFIGS.mosquitto in external.mjs): `listener N` + `protocol websockets`, anonymous access, no persistence, TCP_NODELAY.
// mosquitto 2.0.11 refuses to start when its only listener is a websockets one ("Unable to start
// any listening sockets"), so the config also has a plain MQTT listener on a second spare
// 127.0.0.1 port that nothing uses. libwebsockets binds the WebSocket port on every interface
// (it ignores the 127.0.0.1 in `listener`); the port is random and lives for one step. A build
// without websockets support says so at start, and the step reads n/a. See external.mjs.
import { runPeer } from './external.mjs';

runPeer({
  system: 'mosquitto',
}).catch((err) => {
  process.send?.({ type: 'failed', error: String(err?.stack ?? err) });
  setTimeout(() => process.exit(1), 50);
});
