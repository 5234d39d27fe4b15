/**
 * A client on node 1 receives what a client on node 3 publishes (start the nodes first with
 * `npm run example:cluster`).
 *
 *   npx tsx examples/cluster/demo.ts [ws://127.0.0.1:8091/ws] [ws://127.0.0.1:8093/ws]
 */
import WebSocket from 'ws';

const [first = 'ws://127.0.0.1:8091/ws', third = 'ws://127.0.0.1:8093/ws'] = process.argv.slice(2);

function open(url: string, user: string): Promise<WebSocket> {
  const ws = new WebSocket(`${url}?token=${user}`);
  return new Promise((done, fail) => {
    ws.once('error', fail);
    ws.on('message', (data) => {
      const frame = JSON.parse(data.toString()) as { type: string; data: { status?: string } };
      if (frame.type === 'Status' && frame.data.status === 'connected') done(ws);
    });
  });
}

/** Sends a request and waits for its Ack. */
function request(ws: WebSocket, type: string, data: unknown, id: string): Promise<void> {
  return new Promise((done) => {
    const onMessage = (raw: WebSocket.RawData) => {
      const frame = JSON.parse(raw.toString()) as { type: string; data: { message_id?: string } };
      if (frame.type === 'Ack' && frame.data.message_id === id) {
        ws.off('message', onMessage);
        done();
      }
    };
    ws.on('message', onMessage);
    ws.send(JSON.stringify({ type, data, id }));
  });
}

const alice = await open(first, 'alice');
await request(alice, 'Subscribe', { topics: ['demo/#'] }, 's1');
console.log(`alice on node 1 (${first}) subscribed to demo/#`);
const received = new Promise<string>((done) =>
  alice.on('message', (raw) => {
    const frame = JSON.parse(raw.toString()) as { type: string };
    if (frame.type === 'Broadcast') done(raw.toString());
  }),
);

const bob = await open(third, 'bob');
await request(bob, 'Broadcast', { topic: 'demo/greetings', payload: { text: 'hello from node 3' } }, 'b1');
console.log(`bob on node 3 (${third}) published to demo/greetings`);
console.log(`alice received: ${await received}`);
alice.close();
bob.close();
