/**
 * The vitest config `npm run mutate` uses: the project's, with test files sharing one module
 * graph (no re-import per file), which makes a mutant's run several times cheaper. Stryker
 * switches mutants at run time, so nothing needs reloading between runs.
 */
import { defineConfig, mergeConfig } from 'vitest/config';
import base from './vitest.config.js';

export default mergeConfig(base, defineConfig({ test: { isolate: false } }));
