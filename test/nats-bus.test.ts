/**
 * NatsBus runs the Bus conformance suite: on the shared nats-server (a subject of its own), and on
 * a nats-server of this file's own whose monitoring port counts the connections left open.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll } from 'vitest';
import { NatsBus } from 'switchyard/nats';
import { busConformance } from './conformance/bus.js';
import { OwnServer, sparePort } from './cluster/procs.js';
import { NATS_SERVERS, serviceUp } from './cluster/services.js';

if (await serviceUp('NATS', 4222)) {
  busConformance('NatsBus', (size) => {
    const subject = `sy-test.${randomUUID()}`;
    return Array.from({ length: size }, () => new NatsBus({ connection: { servers: NATS_SERVERS }, subject }));
  });
}

const monitor = await sparePort();
const own = await OwnServer.nats(monitor);
const name = `sy-bus-${randomUUID().slice(0, 8)}`;
beforeAll(() => own.start());
afterAll(() => own.kill());
busConformance(
  'NatsBus (connections counted by the server)',
  (size) => {
    const subject = `sy-test.${randomUUID()}`;
    return Array.from({ length: size }, () => new NatsBus({ connection: { servers: `127.0.0.1:${own.port}`, name }, subject }));
  },
  {
    openConnections: async () => {
      const connz = (await (await fetch(`http://127.0.0.1:${monitor}/connz?limit=1024`)).json()) as { connections?: Array<{ name?: string }> };
      return (connz.connections ?? []).filter((c) => c.name === name).length;
    },
  },
);
