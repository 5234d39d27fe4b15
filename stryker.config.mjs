// Mutation testing of the core modules: `npm run mutate` (not part of CI: too slow).
// One module while iterating: `npx stryker run --mutate lib/filter.ts`.
// Reports go to reports/mutation/ (git-ignored).
//
// Equivalent mutants (survivors no test can kill, because the mutated program behaves the
// same for every input) are listed here, not hidden by ignore patterns:
//
// lib/wire.ts, lib/session.ts, lib/protocols/* (runs of one module with its tests, --timeoutMS 5000):
//   Static mutants (module-level constants, evaluated once at import) are measured since the
//     tests moved from `testFiles` to vitest.stryker.config.ts's `include`: given test files,
//     StrykerJS 9.6.1 switches every mutant on in a beforeAll, after the test file imported the
//     module (stryker-js #6144), so static mutants were never active and always survived.
//     Without test files it switches static mutants on in its setup file, before the imports,
//     and each run (one mutant) imports the modules afresh, also with `isolate: false`. Checked
//     on wire.ts:40 (KEY) with test/wire-handshake-edges.test.ts: its 4 mutants Survived
//     (testsCompleted 5) with testFiles and were Killed without; on wire.ts:39-43 (GUID, KEY,
//     SCHEME_TOKEN, TOKEN) 18 of 19 were Killed (the 19th was a gap, now tested). Stryker also
//     runs as static every mutant some code reaches outside a test (a server callback after the
//     test ended, an afterEach; 234 of wire.ts's 351): each runs every listed test that imports
//     its module, with bail, which is most of a run's time. So do not pass --testFiles; narrow
//     the tests with MUTATE_TESTS=glob,glob (vitest.stryker.config.ts) instead.
//   wire.ts (static): `[CLOSED, []]` → `["Stryker was here"]` in NEXT: no transition asks for a
//     string. `key === undefined ||` → false: KEY.test(undefined) tests "undefined", which fails
//     the pattern, so the answer is the same 400 (the last run shows it Killed, by a timing test
//     of memory-store-budgets that failed under load: not a real kill). `if (negotiated !== null)` → true in
//     acceptUpgrade: stores null, which the Wire reads back with `?? null`.
//   wire.ts `tcp.setNoDelay?.(true)` → `false`: Nagle only delays small writes, the bytes are the
//     same. `tcp.setTimeout?.(0)` → `tcp.setTimeout(0)`: every socket given here has setTimeout.
//     `if (head.length > 0) socket.unshift(head)` → `true` / `>= 0`: unshifting an empty buffer
//     adds nothing to read. `#inflatingBinary = false` → `true`: set before every read.
//   wire.ts close() `if (this.#socket.destroyed) return` → false: the socket is destroyed with the
//     phase still open only between a reset's destroy and its 'close' event; a close frame
//     written then is dropped without an error, and 'close' still ends the wire with 1006.
//     inflated() `if (!this.#phase.reading) return` → false: unreachable, leaving a reading
//     phase (#to) closes the inflater, which then never calls back. #closeFrame
//     `if (!this.#to(RECEIVED)) return` → false: a close frame is read only while open or
//     sent, and both may go to received. Its `else if (!this.#socket.writableEnded)` → true:
//     while reading, our side has not ended (only a failure's close and ended() end it, after
//     reading stopped). onError's body `{}`: a net or TLS socket emits 'error' from
//     destroy(err), so it is destroyed already; the listener only keeps the error from throwing.
//   wire.ts, not equivalent, not killed: `encrypted !== true` → `true` / `!== false` in
//     #closeFrame (destroy a TLS socket as soon as the echo is written): on loopback the echo
//     still reaches a TLS client (tried by hand, a TLS pair, 5 rounds); the case it guards, TLS
//     records not yet handed to TCP, is not one a test can produce on demand.
//   session.ts (`npx stryker run --mutate lib/session.ts`, static mutants run, at 257611f: 187
//     mutants, 164 killed, 2 timeouts, 20 survived, 1 no coverage, 88.77%; the relay's
//     `timers: [relay]` → `[]` has been killed since by session-close-paths ('a refresh replaces a
//     pending relay'); each survivor below applied by hand or read against every caller, the
//     session tests still pass):
//     armExpiry `expiresAt - now > MAX_TIMER_MS` → `>=`: at exactly the range the relay gets a
//     delay of 0 and re-arms at once with the expiry in range: one extra hop, the same timers.
//     `timer.unref()` removed (expiry and close timers): unref only lets the process exit while a
//     timer is pending. `protocol.tokenExpiring !== undefined &&` → `true`: the timer then calls
//     `protocol.tokenExpiring?.()`, which does nothing when the hook is absent; and with it
//     `tokenExpiring?.(…)` → `tokenExpiring(…)`: checked defined when armed.
//     `handle`'s `phase === 'closed'` → `false` / `'closed'` → `''` (by hand): the inbox drops its
//     queue when the session closes (Inbox.dispose) and `receive` takes no frame after the close
//     starts, so no frame reaches handle() once closed. The other way round, `#to`'s
//     `next === 'closing'` → `true` (by hand): the socket's close then only stops the outbox and
//     clears the expiry (as the close's start does), without dropping the queues or the close
//     timer: what stays queued is never written (the wire is closed), queued frames are refused
//     by handle()'s guard, and the timer terminates a closed wire (no-op), so only memory is held
//     longer. The two guards back each other up: with both mutants applied,
//     test/session-closing.test.ts ('frames that waited behind a slow one when the client went
//     away') fails.
//     `#to`'s early return, `from === next || from === 'closed' || next === 'upgraded'`: the whole
//     condition → false, either `||` → `&&`, any one clause → false, `'closed'` / `'upgraded'` →
//     `''`, and its `return false` → `true` (10 mutants). The condition is true only for terminate() (the
//     heartbeat) on a session already closing (closing → closing): nothing asks for 'upgraded';
//     the wire reports socketClosed once (its CLOSED phase has no next), so closed → closed never
//     happens; closed → closing never either (close() returns unless upgraded, and terminate() is
//     only called on sessions still in the connection list, which sessionClosed leaves at once).
//     And closing → closing run through changes nothing: outbox.stop() sets a flag already set,
//     #clearExpiry() finds nothing armed, and terminate() ignores the result.
//     terminate()'s `#to('closing')` → `#to('')`: '' is past 'upgraded' for every check, but not
//     'closing', so the session is disposed as if closed (outbox and inbox queues dropped, timers
//     cleared) right before terminate() destroys the socket, whose close disposes the same a
//     few ticks later; only a slow frame settling inside those ticks could tell (its queued
//     successors handled or not), which no test can time. (In close() the same mutant is killed
//     by test/session-closing.test.ts: frames queued before the close are still handled.)
//     #addTimer's body `{}`: setTimeout is still called (it is the argument), the timer is only not
//     unref'd nor cleared, and firing it terminates a wire already closed (no-op).
//     `this.#timers ?? []` / `??= []` → `["Stryker was here"]`: clearTimeout of a string does
//     nothing.
//   session.ts `MAX_TIMER_MS = 2 ** 31 - 1` → `+ 1` (static): applied by hand, the relay for an
//     expiry past the range gets a delay Node (and the fake clock) cuts to 1 ms, so it re-arms
//     itself every millisecond: test/session-close-paths.test.ts ('an expiry several timer ranges
//     ahead') hangs (a timeout, and a real one: a busy loop for 24.8 days).
//   session.ts timeouts (Stryker counts them detected; each a real hang, not load): armExpiry's
//     `expiresAt - now > MAX_TIMER_MS` → `<=` and `expiresAt + now`: every in-range expiry then
//     takes the relay, whose delay is negative (1 ms), so it re-arms itself every millisecond and
//     never closes. (In the helper's run before the relay existed, #to's body `{}`, its
//     early-return condition → `true`, close()'s `{}` and its guard → `true` / `===` timed out,
//     each stopping every close; here they are killed.)
//   wire.ts ended() `if (this.#socket.writableEnded)` → `if (false)` (by hand, wire and deflate
//     tests pass): end() on an ended socket does nothing, and a net socket with both sides ended
//     destroys itself (autoDestroy), at the same moment.
//   protocols/json.ts `if (length < 2 * (maxDepth + 1)) return false` → `if (false)`, `2 / (…)`,
//     `maxDepth - 1`: a shortcut only (a shorter text cannot nest deeper than maxDepth), so
//     scanning more texts gives the same answers; `<=` is killed (test/protocol-json-depth).
//     Loop `i < length` → `i <= length`: charCodeAt(length) is NaN, neither a bracket nor a quote.
//   protocols/envelope.ts ackResult `req.id === undefined || result === undefined` →
//     `req.id === undefined` (applied by hand, all tests pass): JSON.stringify(undefined) is
//     undefined and adds no `result`, so the Ack is the same.
//   protocols/events.ts `conn.state = 'subscribe'` / `'unsubscribe'` → `''`: fail() only asks
//     whether a request is in flight (`!== undefined`), and '' is.
//   protocols/stream.ts `if (state === undefined) return` → `if (false)`: open() sets conn.state
//     before its first await and the session handles no frame before open() (Session.begin).
//   protocols/tagged.ts `Array.isArray(value) ? value.join(',')`: Node joins a repeated header
//     into one string for every name but set-cookie, so no header array reaches it.
// lib/protocols/envelope.ts (runs with the envelope tests, readme-frames and seed-fidelity:
//   `MUTATE_TESTS='test/envelope*.test.ts,test/readme-frames.test.ts,test/seed-fidelity*.test.ts'`;
//   the dynamic mutants were first measured with the same list given as --testFiles, which
//   turns static mutants off, see the top; each equivalent below checked by hand: the mutant
//   applied, the envelope tests still pass):
//   History `data.since === undefined || data.since === null ? undefined : positionFrom(…)` →
//     `false ? …` (and its `&&`/half mutants): positionFrom(undefined) and positionFrom(null) are
//     undefined too, and the refusal below needs a since that is neither.
//   History `...(since !== undefined && { since })` → `true &&`: passes `since: undefined`, which
//     every shipped store (memory, Redis, Postgres: `since === undefined`) reads as absent.
//   Presence `typeof data.user_id === 'string' ? [data.user_id]` → `true ?`: a non-string
//     user_id then fails stringArray with the same 400 and message as no user_id at all.
//   Refresh `...(principal.expiresAt !== undefined && { expires_at })` → `true &&`:
//     JSON.stringify drops `expires_at: undefined`, so the Ack is the same.
//   Broadcast `data.echo === undefined ? … : { echo: data.echo, … }` → `false ? …`: publish reads
//     `options.echo ?? endpoint.echo`, so `echo: undefined` is the same as no echo.
//   Broadcast `if (!isThenable(result)) return published(…)` → `if (false)`: a plain result then
//     goes through `Promise.resolve(result).then(published)`: the same Ack, a microtask later,
//     and the session handles the next frame only after it.
//   fail() `id = raw === undefined ? undefined : peekId(raw)` → `false ?`: peekId(undefined)
//     throws inside its try and returns undefined. `typeof conn.state === 'string'` → `true`:
//     the envelope only ever stores a request id or undefined in conn.state.
//   fail()'s cause lookup `typeof cause === 'object' && cause !== null ? requestOf.get(cause)` →
//     `true ?`, `… || cause !== null`, `cause !== null` → `true`: WeakMap.get of undefined, null or
//     a primitive returns undefined (it does not throw), the same as the `: undefined` branch.
//   badWithId `id !== undefined && { message_id: id }` → `true &&`: JSON.stringify drops
//     `message_id: undefined`. ackResult `result === undefined` → `false` (see above).
//   peekId's `catch { return undefined; }` → `catch {}`: the function then returns undefined anyway.
//   The trailing-id reader in parse() (a frame ending in `,"id":"…"}` has its id read from the
//     bytes, json.ts trailingMember) is a speed-up only: every mutant that just keeps a frame off
//     it leaves the frame to JSON.parse, which reads the same id, and the Ack's message_id is then
//     JSON.stringify(id), the same text as the quoted bytes. So: `whole = false` → `true`,
//     `raw.length - 1` → `+ 1`, `!whole && …` → `false` / `whole && …`, `raw[last] === 0x7d` and
//     `raw[last - 1] === 0x22` → `true` / `!==` / `raw[last + 1]` (trailingMember checks both bytes
//     itself, or is never called), `cut === -1 ? parseObject(raw …) : …` → `true ?` (the id is still
//     read from the bytes, the same as JSON.parse's), `idJson: cut === -1 ? undefined` → `true ?`;
//     and the cut text broken (the template `${…}}` → ``, `raw.toString('utf8', …)` → `''`): its
//     parse fails and the frame is parsed again as a whole (the retry below), with the same answer.
//     The mutants that make the fast path wrong (the id's offsets, the cut text, idJson's quotes,
//     the key, the retry of a refused frame as a whole) fail test/envelope-trailing-id.test.ts.
//   parse()'s too-deep branch `if (!(err instanceof BrokerError) || max_depth === undefined) throw
//     err` → `if (false)`, `&&`, `max_depth === undefined` → `false`: parseObject throws only
//     BrokerErrors, and one without max_depth is for text that is not JSON or not an object, whose
//     peekId is undefined (an array, string, number, true, false or null has no `id`), so
//     `throw id === undefined ? err : …` throws the same err. That `id === undefined` → `false`:
//     the copy then has `message_id: undefined`, which JSON.stringify drops (a 400 is not reported).
//   Timeout, real (by hand: 10 tests of test/envelope-trailing-id fail, no hang): the refused-cut
//     retry `parse(raw, maxJsonDepth, true)` → `false` recurses until the stack overflows.
//   encode publish `delivery.from === null` → `true`: only the server publishes under
//     `$presence/` (a client's publish there is refused), so from is null there anyway.
//     direct `delivery.from ?? ''`: a binary direct message always has a sender (the host's
//     sendTo takes no binary), so the '' is never used.
//   binaryFrame `Buffer.from(name, 'utf8')` → `''`: an empty encoding falls back to UTF-8.
//   Static: REFUSALS' entries (4) and NO_COUNT's `{}` / `clusterCount: true` are killed now that
//     static mutants run (MUTATE_TESTS with the envelope tests and control.test.ts).
//   Killed outside the envelope set (each applied by hand): the Status `by: 'server'` frames (host
//     subscribe/unsubscribe: both bodies and their literals, 15 mutants) by test/control.test.ts. (The pipelined Broadcast paths
//     and the too-deep frame naming its id are now killed inside the set too:
//     test/envelope-pipelined-errors, test/envelope-trailing-id.)
// lib/filter.ts
//   `filter === undefined || filter === null` → `false || filter === null`: undefined never
//     reaches compileFilter; every caller turns a missing filter into null first
//     (Session.subscribe's `filters = null` default, the envelope's `?? null`, the events
//     protocol's rootFilters).
//   `if (entries.length === 0) return null` → `if (false)`: an empty filter then compiles to no
//     fields, and a filter with no fields passes every payload, as null does.
// lib/frame.ts
//   frameBytes `typeof frame === 'string'` → `true`: Buffer.from(buffer, 'latin1') copies a
//     Buffer byte for byte (the encoding is ignored), so only the object's identity changes.
//   `Buffer.byteLength(text, 'utf8')` and `frame.write(text, at, 'utf8')` with '' for 'utf8':
//     an empty encoding falls back to UTF-8, the default.
//   truncateReason `reason.slice(0, 120)` → `reason`: the loop then cuts from the whole reason to
//     the same longest prefix of at most 120 bytes (no prefix that fits is over 120 units long);
//     the slice only bounds the loop for long reasons.
//   `MAX_STRING_FRAME = 4 * 1024` → `4 / 1024` (static) is killed now that static mutants run
//     (see the top): test/core-frame.test.ts ('are used for small ASCII text, up to 4 KiB').
// lib/memory-store.ts
//   LRU dispose `reason === 'evict' || reason === 'delete'` (→ `true`, `'delete'` → false/`!==`/""):
//     the history LRU disposes only by 'evict' (max, pop) and 'delete' (clear() in close, after
//     which nothing reads an epoch); it has no TTL and set() never replaces a topic's history.
//     `#generation++` → `--`: epochs only need to differ from every earlier one.
//   sweep: `history === undefined` → `false`, `queue === undefined` → `false` and
//     peek's `{ allowStale: true }` → `{}`/`false`: rvalues() yields no undefined, and purgeStale()
//     has just dropped every stale queue, so peek always finds the queue rkeys() named.
//     `const empty = []` → `["Stryker was here"]`: deletes the queue of a principal of that name
//     only. `if (dropped === 0) continue` → `if (false)`: with nothing dropped the rest changes
//     nothing (no bytes, no splice; a kept queue is never empty).
//   enqueueDirect `this.#queues.size > 1` → `true`/`>= 1`: the queue just appended to is the most
//     recently used and holds at most the per-principal budget, which the total never is below,
//     so the total is met before it would be popped. (Not so for history, whose newest record is
//     kept whatever its size: that `> 1` is tested.)
//   drainDirect `m.sentAt < oldest` → `<=`: `oldest` is Date.now() at the drain, a millisecond no
//     test can aim at without a fake clock; the sweep's same edge is tested through sweep(now).
//   appendHistory `if (record.binary !== undefined)` → `true`: sets `binary: undefined`, which
//     every reader treats as absent (`binary !== undefined`).
//   keep() `payload === undefined ? undefined : JSON.stringify(…)` → `false`: JSON.stringify of
//     undefined is undefined.
//   trim `if (start === history.start) return 0` → `if (false)`: with nothing dropped the rest frees
//     0 bytes and leaves the window as it is.
//   trim's compaction (`start >= 1024 && start * 2 >= records.length` → true/false/`||`/`>`/`<`,
//     about 9) and the EVICTED overwrite (`{}`, `i >= start`, `false`): when and whether dropped
//     records are spliced out or blanked changes memory only; reads see the same window (a test
//     reads across compactions). Not equivalent for memory, which no test measures.
//   `MiB = 1024 / 1024` (static) is killed now that static mutants run (see the top). EVICTED's
//     fields are never read (see the overwrite above).
// lib/rate-limit.ts
//   `elapsed > 0` → `elapsed >= 0`: no time elapsed refills no tokens.
// lib/topic-index.ts
//   `if (this.#wild === 0) return` → `if (false)`, and `#isWild` → `true`: speed-ups only (an
//     empty trie matches nothing; an exact pattern kept in the trie matches the same topics).
//   `let removed = false` → `true`: both branches assign it before it is read.
//   #prune and Node.isEmpty mutants (about 10): pruning only frees trie nodes nobody subscribes
//     to; an empty node left behind matches nothing, so no public behaviour changes. They are
//     not equivalent for memory, which no test measures.
// lib/topics.ts (each checked against the code; the malformed-pattern tests in
//   test/core-topics-assert.test.ts kill the three fast-path mutants that were not equivalent):
//   checkTopic's loop `i < length` → `i <= length`: the extra pass reads charCodeAt(length), NaN,
//     which is neither the separator nor a wildcard.
//   firstWildcard `multi === -1 ? single : Math.min(…)` → `true ? single`: when both wildcards
//     occur, returning the '+' index never takes the 'prefix/#' fast path (that needs a '#' there),
//     and the minimum never takes it either ('#' first and last leaves no room for a '+').
//   covers(): the '#' fast path off (`if (false)`), the concrete fast path off (`wildAt === -1`),
//     and the 'prefix/#' fast path off or never taken (`if (false)`, `{}`, `wildAt !== …`,
//     `outer.length + 1`, `wildAt + 1`) or taken also when the '#' is not last
//     (`wildAt === outer.length - 1` → `true`): the level-by-level path gives the same answer for
//     every outer, malformed too (it stops at the first '#' level with true, and a concrete outer
//     matches only itself): they are speed-ups only. (Not so for the '#' glued to text ('ab#') or
//     a leading '#' level ('#/a'): those three mutants are tested.)
//   `n[0]?.startsWith` → `n[0].startsWith`: split() always returns at least one level.

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
    'lib/memory-store.ts',
    'lib/filter.ts',
    'lib/rate-limit.ts',
    'lib/topic-index.ts',
    'lib/path.ts',
    'lib/frame.ts',
  ],
  // No `testFiles`: the tests are listed in vitest.stryker.config.ts (`include`). With test files
  // given, StrykerJS never activates static mutants (stryker-js #6144; see there).
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
