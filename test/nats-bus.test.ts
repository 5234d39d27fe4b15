/** NatsBus runs the Bus conformance suite on the shared nats-server, on a subject of its own. */
import { randomUUID } from 'node:crypto';
import { NatsBus } from 'switchyard/nats';
import { busConformance } from './conformance/bus.js';
import { NATS_SERVERS, serviceUp } from './cluster/services.js';

if (await serviceUp('NATS', 4222)) {
  busConformance('NatsBus', (size) => {
    const subject = `sy-test.${randomUUID()}`;
    return Array.from({ length: size }, () => new NatsBus({ connection: { servers: NATS_SERVERS }, subject }));
  });
}
