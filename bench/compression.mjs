// permessage-deflate: what compression costs and saves (issue 16, item 12). Standalone, outside
// run.mjs's matrix because only switchyard compresses here and its load generator counts frames
// without extensions. Run after `npm run build`:
//
//   node --expose-gc bench/compression.mjs [--subscribers=500] [--seconds=5] [--connections=1000]
//
// 1. fan-out: 1 publisher, N subscribers on one topic; the publisher keeps a window of 64 un-acked (--window)
//    publishes of a ~2.4 KB JSON payload. Each variant runs in a fresh server process: compression
//    off / on (subscribers offer permessage-deflate). Reported: deliveries/s, bytes the server
//    wrote per delivery (socket.bytesWritten, headers included), server CPU.
// 2. memory per compressed connection: C connections that each publish one compressed message
//    (so the server holds their inflate state, context takeover on) vs. the same with
//    client_no_context_takeover vs. uncompressed; server RSS and external memory growth after GC.
//
// The machine is shared: figures are indicative, the ratios between variants more than the
// absolute numbers. Deliveries are counted by walking frame headers (bench/lib/wsclient.mjs); one
// compressed delivery per variant is inflated and checked. The load generator (this one process,
// counting every subscriber's frames) saturates before the server does: compare server CPU per
// delivery and bytes per delivery, not deliveries/s alone.
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { constants, inflateRawSync } from 'node:zlib';
import WebSocket from 'ws';
import { LightWs } from './lib/wsclient.mjs';

const args = Object.fromEntries(process.argv.slice(2).filter((a) => a.startsWith('--')).map((a) => a.slice(2).split('=')));
const SUBSCRIBERS = Number(args.subscribers ?? 500);
const SECONDS = Number(args.seconds ?? 5);
const CONNECTIONS = Number(args.connections ?? 1000);
const OFFER = 'permessage-deflate; client_max_window_bits';
const WINDOW = Number(args.window ?? 64);

// ── server side (a child process) ──────────────────────────────────────────
if (process.argv[2] === '--server') {
  const compression = JSON.parse(process.argv[3]);
  const http = await import('node:http');
  const { createBroker, envelope } = await import('switchyard');
  const { attach } = await import('switchyard/http');
  const broker = createBroker({
    endpoints: [{ path: '/ws', protocol: envelope(), compression }],
    authenticate: ({ credentials }) => (credentials?.token ? { id: credentials.token, grants: [{ topic: '#', access: 'readwrite' }] } : null),
    limits: { rate: false, maxBufferedBytes: 16 * 1024 * 1024, maxConnections: 1_000_000 },
    heartbeat: false,
    presence: false,
  });
  const server = http.createServer((_q, s) => s.writeHead(404).end());
  const sockets = new Set();
  server.on('connection', (s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  attach(broker, server);
  server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));
  process.on('message', async (m) => {
    if (m === 'gc') for (let i = 0; i < 3; i++) globalThis.gc?.();
    let written = 0;
    for (const s of sockets) written += s.bytesWritten;
    const mem = process.memoryUsage();
    process.send({ written, cpu: process.cpuUsage(), rss: mem.rss, external: mem.external, stats: broker.stats() });
  });
  process.on('disconnect', () => process.exit(0));
} else {
  await main();
}

async function startServer(compression) {
  const child = fork(fileURLToPath(import.meta.url), ['--server', JSON.stringify(compression)], { execArgv: ['--expose-gc'] });
  const [{ port }] = await once(child, 'message');
  const ask = async (m = 'stats') => {
    child.send(m);
    const [answer] = await once(child, 'message');
    return answer;
  };
  return { port, ask, stop: () => child.kill('SIGKILL') };
}

function payload(seq) {
  const readings = Array.from({ length: 24 }, (_, i) => ({ sensor: `room-${i % 6}/temperature`, value: 20 + ((seq * 7 + i) % 50) / 10, unit: 'celsius', ok: true }));
  return { seq, site: 'plant-north', readings };
}

async function fanout(label, compression, offer) {
  const server = await startServer(compression);
  const host = '127.0.0.1';
  let delivered = 0;
  let sample = null;
  const subs = [];
  for (let i = 0; i < SUBSCRIBERS; i++) {
    const ws = new LightWs({
      host,
      port: server.port,
      path: `/ws?token=s${i}`,
      extensions: offer,
      onMessage: (buf, start, end) => {
        delivered++;
        if (sample === null && end - start > 200) sample = Buffer.from(buf.subarray(start - (end - start < 126 ? 2 : 4), end));
      },
    });
    await ws.connect();
    ws.send(JSON.stringify({ type: 'Subscribe', data: { topics: ['bench/t'] }, id: 's' }));
    subs.push(ws);
  }
  let acked = 0;
  const pub = new WebSocket(`ws://${host}:${server.port}/ws?token=pub`, { perMessageDeflate: false });
  pub.on('message', (d) => {
    if (d.toString().includes('"Ack"')) acked++;
  });
  await once(pub, 'open');
  const settle = Date.now() + 10_000;
  while (delivered < SUBSCRIBERS * 2 && Date.now() < settle) await new Promise((r) => setTimeout(r, 20)); // welcome + subscribed
  delivered = 0;
  sample = null;
  let seq = 0;
  let sent = 0;
  const body = (s) => JSON.stringify({ type: 'Broadcast', data: { topic: 'bench/t', payload: payload(s) }, id: `p${s}` });
  const before = await server.ask();
  const t0 = performance.now();
  const deadline = t0 + SECONDS * 1000;
  while (performance.now() < deadline) {
    while (sent - acked < WINDOW) {
      pub.send(body(++seq));
      sent++;
    }
    await new Promise((r) => setImmediate(r));
  }
  const t1 = performance.now();
  const after = await server.ask();
  const count = delivered;
  const cpuMs = (after.cpu.user + after.cpu.system - before.cpu.user - before.cpu.system) / 1000;
  const cpu = cpuMs / (t1 - t0);
  const row = {
    variant: label,
    deliveriesPerSec: Math.round((count / (t1 - t0)) * 1000),
    bytesPerDelivery: Math.round((after.written - before.written) / count),
    serverCpu: `${Math.round(cpu * 100)}%`,
    // The load generator (one process) is the bound here, not the server: server CPU per delivery is the fairer cost.
    serverUsPerDelivery: Math.round((cpuMs * 1000 * 100) / count) / 100,
    deflated: after.stats.deflated - before.stats.deflated,
    publishes: after.stats.published - before.stats.published,
  };
  if (offer && sample) {
    const compressed = (sample[0] & 0x40) !== 0;
    const bytes = sample.subarray((sample[1] & 0x7f) === 126 ? 4 : 2);
    const text = compressed ? inflateRawSync(Buffer.concat([bytes, Buffer.from([0, 0, 0xff, 0xff])]), { finishFlush: constants.Z_SYNC_FLUSH }).toString() : bytes.toString();
    row.sampleChecked = JSON.parse(text).type === 'Broadcast' && compressed;
  }
  pub.terminate();
  for (const s of subs) s.socket.destroy();
  server.stop();
  return row;
}

async function memory(label, compression, perMessageDeflate) {
  const server = await startServer(compression);
  const base = await server.ask('gc');
  const clients = [];
  const big = JSON.stringify({ type: 'Ping', data: { pad: 'x'.repeat(2000) } });
  for (let i = 0; i < CONNECTIONS; i += 100) {
    const batch = [];
    for (let j = i; j < Math.min(CONNECTIONS, i + 100); j++) {
      const ws = new WebSocket(`ws://127.0.0.1:${server.port}/ws?token=m${j}`, { perMessageDeflate });
      batch.push(
        once(ws, 'message').then(() => {
          ws.send(big); // compressed when negotiated (ws compresses from 1 KiB)
          return once(ws, 'message'); // the Pong: the server has inflated it
        }),
      );
      clients.push(ws);
    }
    await Promise.all(batch);
  }
  const after = await server.ask('gc');
  for (const c of clients) c.terminate();
  server.stop();
  return {
    variant: label,
    rssPerConnKiB: Math.round(((after.rss - base.rss) / CONNECTIONS / 1024) * 10) / 10,
    externalPerConnKiB: Math.round(((after.external - base.external) / CONNECTIONS / 1024) * 10) / 10,
  };
}

async function main() {
  console.log(`node ${process.version}; ${SUBSCRIBERS} subscribers, ${SECONDS} s windows; ${CONNECTIONS} connections for memory. Shared machine: indicative figures.`);
  console.table([
    await fanout('compression off', false, undefined),
    await fanout('on, subscribers offer deflate', { threshold: 1024 }, OFFER),
    await fanout('on, level 1', { threshold: 1024, level: 1 }, OFFER),
    await fanout('on, nobody offers it', { threshold: 1024 }, undefined),
  ]);
  console.table([
    await memory('uncompressed', false, false),
    await memory('deflate, client context takeover', true, { threshold: 1024 }),
    await memory('deflate, client_no_context_takeover', true, { threshold: 1024, clientNoContextTakeover: true }),
  ]);
  process.exit(0);
}
