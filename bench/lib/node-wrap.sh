#!/bin/sh
# fork()'s execPath for bench children (see procs.mjs). The IPC channel fd survives both execs.
#  BENCH_NOFILE  raise the limit on open files first (beyond the hard limit only as root)
#  BENCH_CPU     pin the process to this CPU with taskset, so the server and the load generator
#                each own one core instead of the scheduler stacking them on the same one
[ -n "$BENCH_NOFILE" ] && { ulimit -n "$BENCH_NOFILE" 2>/dev/null || ulimit -Sn "$BENCH_NOFILE" 2>/dev/null || true; }
if [ -n "$BENCH_CPU" ] && command -v taskset >/dev/null 2>&1; then
  exec taskset -c "$BENCH_CPU" "$BENCH_NODE" "$@"
fi
exec "$BENCH_NODE" "$@"
