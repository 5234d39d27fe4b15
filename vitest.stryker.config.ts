/**
 * The vitest config Stryker uses (`npm run mutate`, stryker.config.mjs): the project's, with
 *
 * - `include`: the tests a mutant may run. The focused tests that exercise the mutated modules
 *   directly or over the wire; the rest of the suite (examples, browsers, adapters, backends, TLS,
 *   clusters) would multiply the time per mutant several times over: every publish runs
 *   checkTopic and the topic index, so nearly every test covers nearly every mutant. A score is
 *   what these focused tests achieve alone. The list is here and not in Stryker's `testFiles`
 *   (nor `--testFiles`): given test files, StrykerJS 9.6.1 runs a static mutant (a module-level
 *   constant, evaluated once at import) with "runtime" activation, i.e. switched on in a
 *   beforeAll, after the test file imported the module, so it is never active and always
 *   survives (stryker-js #6144). Without test files it switches static mutants on in its setup
 *   file, before the test file's imports, and every run starts a fresh module graph.
 *   `MUTATE_TESTS=glob,glob` narrows the list while working on one module.
 * - `isolate: false`: the test files of one run share one module graph (no re-import per file),
 *   which makes a mutant's run several times cheaper. Stryker switches dynamic mutants at run
 *   time, and each run (one mutant) still imports the modules afresh.
 */
import { defineConfig, mergeConfig } from 'vitest/config';
import base from './vitest.config.js';

const focused = [
  // wire, session and protocols (lib/wire.ts, lib/session.ts, lib/protocols/*)
  'test/wire*.test.ts',
  'test/deflate*.test.ts',
  'test/session-*.test.ts',
  'test/envelope-*.test.ts',
  'test/protocol-*.test.ts',
  'test/stream.test.ts',
  'test/tagged.test.ts',
  'test/hardening-close.test.ts',
  'test/hardening-nesting.test.ts',
  'test/control.test.ts',
  'test/readme-frames.test.ts',
  'test/store-pipelining.test.ts',
  'test/core-*.test.ts',
  'test/topics.test.ts',
  'test/memory-store*.test.ts',
  'test/store.test.ts',
  'test/frame.test.ts',
  'test/envelope.test.ts',
  'test/events.test.ts',
  'test/limits.test.ts',
];

const narrowed = process.env.MUTATE_TESTS?.split(',').map((glob) => glob.trim()).filter((glob) => glob !== '');

const config = mergeConfig(base, defineConfig({ test: { isolate: false } }));
// Replaced, not merged: mergeConfig would append to the base's `test/**/*.test.ts`.
config.test!.include = narrowed !== undefined && narrowed.length > 0 ? narrowed : focused;
export default config;
