/**
 * The browser build of switchyard/client as a page loads it: lib/client/index.ts bundled by
 * esbuild (what tsup uses) for the browser, minified. Its gzipped size is what README reports.
 */
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

export const CLIENT_ENTRY = new URL('../lib/client/index.ts', import.meta.url).pathname;

export async function clientBundle(): Promise<{ code: string; minifiedBytes: number; gzipBytes: number }> {
  const result = await build({ entryPoints: [CLIENT_ENTRY], bundle: true, format: 'esm', platform: 'browser', target: 'es2022', minify: true, write: false });
  const code = result.outputFiles[0]!.text;
  return { code, minifiedBytes: Buffer.byteLength(code), gzipBytes: gzipSync(code, { level: 9 }).length };
}
