// topics-history: the `topics` load (one delivery per publish) with history kept for every topic,
// in memory vs. in RedisStore / PostgresStore (the servers on this machine; the run's keys /
// tables are removed at close), in the same run. Baseline: history on in memory. Each publish
// waits on the store's append, so this shows what a store costs per publish, not per delivery.
import topics from './topics.mjs';
import { HISTORY_OPTION } from './history.mjs';

export default {
  ...topics,
  name: 'topics-history',
  title: (p) => `${topics.title(p)}; history on every topic, memory vs. durable stores`,
  // the main window only (topics' closed-loop columns compare systems, not stores)
  params: (quick) => ({ ...topics.params(quick), loops: [] }),
  columns: [],
  baseline: 'history-memory',
  variants: (systems) =>
    systems.includes('switchyard')
      ? [
          { system: 'switchyard', key: 'history-memory', label: 'history on, memory', serverOptions: { history: HISTORY_OPTION }, requires: 'historySupported' },
          { system: 'switchyard', key: 'history-redis', label: 'history on, RedisStore', serverOptions: { history: HISTORY_OPTION, store: 'redis' }, requires: 'historySupported' },
          { system: 'switchyard', key: 'history-postgres', label: 'history on, PostgresStore', serverOptions: { history: HISTORY_OPTION, store: 'postgres' }, requires: 'historySupported' },
        ]
      : [],
};
