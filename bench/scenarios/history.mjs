// history: switchyard's fan-out (the `fanout` load, 1,000 subscribers) with history kept for the
// topic vs. without, to show what keeping history costs. The server gets
// `history: { topics: ['bench/#'], maxMessages: 1000 }`; after the window the load generator asks
// the server (broker.history()) for the topic's latest offset, so "on" is confirmed on (offset =
// messages appended) and "off" confirmed off. If the broker refuses the option or keeps
// nothing, the row reads n/a.
import { fanoutParams, runFanout, FANOUT_TOPIC } from './fanout.mjs';

export const HISTORY_OPTION = { topics: ['bench/#'], maxMessages: 1000 };

export default {
  name: 'history',
  title: 'switchyard fan-out (1 → 1,000) with history on the topic vs. off',
  primary: { key: 'rate', label: 'delivered msg/s', better: 'higher', unit: 'msg/s' },
  columns: [
    { key: 'publishRate', label: 'publishes/s', unit: 'msg/s' },
    { key: 'historyRecords', label: 'history offset', unit: 'n', width: 14 },
  ],
  baseline: 'history-off',
  params: fanoutParams,
  fds: (p) => p.subscribers + 50,
  variants: (systems) =>
    systems.includes('switchyard')
      ? [
          { system: 'switchyard', key: 'history-off', label: 'history off' },
          { system: 'switchyard', key: 'history-on', label: 'history on', serverOptions: { history: HISTORY_OPTION }, requires: 'historySupported' },
          // The same with the durable stores (the servers on this machine; the run's keys / tables are removed at close).
          { system: 'switchyard', key: 'history-redis', label: 'history on, RedisStore', serverOptions: { history: HISTORY_OPTION, store: 'redis' }, requires: 'historySupported' },
          { system: 'switchyard', key: 'history-postgres', label: 'history on, PostgresStore', serverOptions: { history: HISTORY_OPTION, store: 'postgres' }, requires: 'historySupported' },
        ]
      : [],
  async load(ctx) {
    let unsupported = null;
    const r = await runFanout(ctx, async (res) => {
      const probe = await ctx.rpc('history', { topic: FANOUT_TOPIC });
      res.historyRecords = probe.records ?? 0;
      if (ctx.variant !== 'history-off') {
        if (!probe.supported) unsupported = probe.reason;
        else if (!probe.records) unsupported = `history option accepted, but the broker kept nothing for the topic${probe.error ? ` (${probe.error})` : ''}`;
      } else if (probe.records) {
        res.notes.push(`history is off but the broker kept ${probe.records} records`);
      }
    });
    if (unsupported) return { unsupported };
    return r;
  },
};
