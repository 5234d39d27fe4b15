// latency-low: the latency load at 500 publishes/s (50,000 deliveries/s), a rate the raw ws
// baseline can carry on this box. At the 2,000/s the baseline saturates and its "latency"
// is queueing delay, so this row is the like-for-like comparison. Context only (no target);
// full runs only, to keep --quick under a minute.
import { makeLatency } from './latency.mjs';

export default makeLatency({
  name: 'latency-low',
  rate: 500,
  fullOnly: true,
  note: 'context for the latency target: a rate every system carries unsaturated (full runs only)',
});
