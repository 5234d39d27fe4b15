// Re-exports for the scenario files, so each one reads as a short script.
export { connectMany, closeAll, pacedPublisher, measureThroughput, openWindow, payload, percentile, rng } from '../lib/harness.mjs';
export { createSink as createSinkFor } from '../lib/drivers.mjs';
