import { defineConfig } from 'tsup';

// Each entry is built on its own; adapters import the core as 'switchyard' (external), so the
// built package has exactly one copy of the broker, resolved through the package's own exports.
export default defineConfig({
  entry: {
    index: 'lib/index.ts',
    http: 'adapters/http.ts',
    express: 'adapters/express.ts',
    fastify: 'adapters/fastify.ts',
    koa: 'adapters/koa.ts',
    testing: 'test/conformance/index.ts',
    // Browsers and Node: imports nothing from node:* and nothing else, so dist/client.js is one
    // self-contained ES module a page can load as is.
    client: 'lib/client/index.ts',
    redis: 'adapters/redis/index.ts',
    postgres: 'adapters/postgres/index.ts',
    nats: 'adapters/nats.ts',
  },
  format: ['esm', 'cjs'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
  external: [/^switchyard(\/.*)?$/],
});
