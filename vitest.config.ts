import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));

export default defineConfig({
  resolve: {
    alias: [
      { find: /^switchyard$/, replacement: here('./lib/index.ts') },
      { find: /^switchyard\/http$/, replacement: here('./adapters/http.ts') },
      { find: /^switchyard\/express$/, replacement: here('./adapters/express.ts') },
      { find: /^switchyard\/fastify$/, replacement: here('./adapters/fastify.ts') },
      { find: /^switchyard\/koa$/, replacement: here('./adapters/koa.ts') },
      { find: /^switchyard\/testing$/, replacement: here('./test/conformance/index.ts') },
      { find: /^switchyard\/client$/, replacement: here('./lib/client/index.ts') },
      { find: /^switchyard\/redis$/, replacement: here('./adapters/redis/index.ts') },
      { find: /^switchyard\/postgres$/, replacement: here('./adapters/postgres/index.ts') },
      { find: /^switchyard\/nats$/, replacement: here('./adapters/nats.ts') },
    ],
  },
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    pool: 'forks',
  },
});
