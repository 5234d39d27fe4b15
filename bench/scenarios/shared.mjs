// Re-exports for the scenario files, so each one reads as a short script.
export { connectMany, closeAll, pacedPublisher, measureThroughput, openWindow, percentile, rng, round1 } from '../lib/harness.mjs';
export { createSink as createSinkFor } from '../lib/drivers.mjs';
