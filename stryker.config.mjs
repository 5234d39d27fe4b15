// Mutation testing of the core modules: `npm run mutate` (not part of CI: too slow).
// One module while iterating: `npx stryker run --mutate lib/filter.ts`.
// Reports go to reports/mutation/ (git-ignored).
//
// Equivalent mutants (survivors no test can kill, because the mutated program behaves the
// same for every input) are listed here, not hidden by ignore patterns:
//
// lib/filter.ts
//   `filter === undefined || filter === null` → `false || filter === null`: undefined never
//     reaches compileFilter; every caller turns a missing filter into null first
//     (Session.subscribe's `filters = null` default, the envelope's `?? null`, the events
//     protocol's rootFilters).
//   `if (entries.length === 0) return null` → `if (false)`: an empty filter then compiles to no
//     fields, and a filter with no fields passes every payload, as null does.
// lib/rate-limit.ts
//   `elapsed > 0` → `elapsed >= 0`: no time elapsed refills no tokens.
// lib/topic-index.ts
//   `if (this.#wild === 0) return` → `if (false)`, and `#isWild` → `true`: speed-ups only (an
//     empty trie matches nothing; an exact pattern kept in the trie matches the same topics).
//   `let removed = false` → `true`: both branches assign it before it is read.
//   #prune and Node.isEmpty mutants (about 10): pruning only frees trie nodes nobody subscribes
//     to; an empty node left behind matches nothing, so no public behaviour changes. They are
//     not equivalent for memory, which no test measures.
// lib/topics.ts (from reading, not yet confirmed by a full run): the '#' and 'prefix/#' fast
//   paths in covers() give the same answers as the level-by-level path when turned off;
//   `i >= n.length` → `>` is caught by the final length comparison; `n[0]?.` always has a level.

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'vitest',
  vitest: { configFile: 'vitest.stryker.config.ts' },
  plugins: ['@stryker-mutator/vitest-runner'],
  // Each mutant runs only the tests that reach it.
  coverageAnalysis: 'perTest',
  mutate: [
    'lib/wire.ts',
    'lib/session.ts',
    'lib/protocols/*.ts',
    'lib/topics.ts',
    'lib/grants.ts',
    'lib/filter.ts',
    'lib/rate-limit.ts',
    'lib/topic-index.ts',
    'lib/path.ts',
    'lib/frame.ts',
  ],
  // The tests that exercise these modules directly or over the wire. The rest of the suite
  // (examples, browsers, adapters, backends, TLS, clusters) would multiply the time per mutant
  // several times over: every publish runs checkTopic and the topic index, so nearly every
  // test covers nearly every mutant. A score here is what these focused tests achieve alone.
  testFiles: [
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
    'test/frame.test.ts',
    'test/envelope.test.ts',
    'test/events.test.ts',
    'test/limits.test.ts',
  ],
  // The machine is shared: one test process at a time.
  concurrency: 1,
  // Tests run over real sockets on a busy CPU: generous per-mutant timeout on top of the dry run's.
  timeoutMS: 20_000,
  timeoutFactor: 2,
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/index.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  tempDirName: '.stryker-tmp',
  cleanTempDir: true,
};
