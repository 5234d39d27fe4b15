/**
 * switchyard on a bare `http.Server`: no framework, so `authenticate` checks the token itself
 * (switchyard has already found it in the Authorization header, `?token=` or the subprotocol).
 *
 *   npm run build && npx tsx examples/http-server/server.ts     (PORT, default 8083; HOST)
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createBroker, envelope, generateToken, hashToken, type Broker } from 'switchyard';
import { attach } from 'switchyard/http';

export interface HttpExample {
  broker: Broker;
  server: http.Server;
  port: number;
  demo: { token: string };
  stop(): Promise<void>;
}

export async function start(options: { port?: number; host?: string } = {}): Promise<HttpExample> {
  const token = generateToken();
  const tokens = new Map([[hashToken(token), 'demo-user']]); // only hashes are kept

  const broker = createBroker({
    endpoints: [{ path: '/ws', protocol: envelope() }],
    authenticate: ({ credentials }) => {
      const id = credentials === undefined ? undefined : tokens.get(hashToken(credentials.token));
      return id === undefined ? null : { id, grants: [{ topic: 'news/#', access: 'readwrite' }] };
    },
  });

  // The host's own HTTP API: POST /publish/news/<…> with a JSON body and the same token publishes it.
  const server = http.createServer((req, res) => {
    const topic = req.method === 'POST' && req.url?.startsWith('/publish/news/') ? decodeURIComponent(req.url.slice('/publish/'.length)) : undefined;
    if (topic === undefined) return void res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    const bearer = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
    if (bearer === undefined || !tokens.has(hashToken(bearer))) return void res.writeHead(401, { 'content-type': 'text/plain' }).end('needs Authorization: Bearer <token>\n');
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      let payload: unknown;
      try {
        payload = JSON.parse(body);
      } catch {
        return void res.writeHead(400, { 'content-type': 'text/plain' }).end('body must be JSON\n');
      }
      broker.publish(topic, payload).then(
        (result) => res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ recipients: result.recipients })),
        (err: Error) => res.writeHead(400, { 'content-type': 'text/plain' }).end(`${err.message}\n`),
      );
    });
  });
  attach(broker, server);
  await new Promise<void>((done, failed) => server.once('error', failed).listen(options.port ?? 8083, options.host ?? '127.0.0.1', done));

  return {
    broker,
    server,
    port: (server.address() as AddressInfo).port,
    demo: { token },
    async stop() {
      await broker.close(); // also detaches from the server
      server.closeAllConnections();
      await new Promise<void>((done) => server.close(() => done()));
    },
  };
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const running = await start({ port: Number(process.env.PORT ?? 8083), host: process.env.HOST ?? '127.0.0.1' });
  const url = `http://localhost:${running.port}`;
  console.log(`switchyard on node:http: ${url.replace('http', 'ws')}/ws   demo token ${running.demo.token}`);
  console.log(`  curl -X POST ${url}/publish/news/today -H 'Authorization: Bearer ${running.demo.token}' -H 'Content-Type: application/json' -d '{"headline":"hi"}'`);
  const shutdown = () => void running.stop().then(() => process.exit(0));
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
}
