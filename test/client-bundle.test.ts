/** switchyard/client's browser bundle: self-contained (no node:* or other imports) and under 8 KB minified + gzipped. */
import { describe, expect, it } from 'vitest';
import { clientBundle } from './client-bundle.js';

describe('switchyard/client bundle', () => {
  it('is one self-contained ES module under 8 KB minified and gzipped', async () => {
    const { code, minifiedBytes, gzipBytes } = await clientBundle();
    console.log(`switchyard/client browser bundle: ${minifiedBytes} bytes minified, ${gzipBytes} bytes gzipped`);
    expect(code).not.toMatch(/\bimport\s*[\s{"'*]|\brequire\(|node:/);
    expect(gzipBytes).toBeLessThan(8 * 1024);
  });
});
