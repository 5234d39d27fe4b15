/**
 * What `npm pack` ships, and the built package as a user loads it: every entry point of
 * package.json `exports` (derived, so new entries are checked without editing this test) with
 * its `.d.ts`, no tests or bench results; and one error brand across the CommonJS and ESM copies.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const run = promisify(execFile);
const pkg = JSON.parse(readFileSync(`${ROOT}package.json`, 'utf8')) as {
  license: string;
  files: string[];
  scripts: Record<string, string>;
  exports: Record<string, unknown>;
};

/** Every file path an `exports` entry points at, by entry ('.', './http', …). */
function exportTargets(): Map<string, string[]> {
  const byEntry = new Map<string, string[]>();
  const walk = (value: unknown, into: string[]): void => {
    if (typeof value === 'string') into.push(value.replace(/^\.\//, ''));
    else if (value !== null && typeof value === 'object') for (const v of Object.values(value)) walk(v, into);
  };
  for (const [entry, target] of Object.entries(pkg.exports)) {
    const files: string[] = [];
    walk(target, files);
    byEntry.set(entry, files);
  }
  return byEntry;
}

beforeAll(async () => {
  // The full suite builds first (npm run build); a lone run of this file builds once itself.
  if (!existsSync(`${ROOT}dist/index.js`)) await run('npx', ['tsup'], { cwd: ROOT });
}, 120_000);

describe('npm pack', () => {
  let files: string[];

  beforeAll(async () => {
    // --ignore-scripts: prepack would rebuild dist (tsup cleans it) under other tests' feet.
    const { stdout } = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, maxBuffer: 16 * 1024 * 1024 });
    const [report] = JSON.parse(stdout) as Array<{ files: Array<{ path: string }> }>;
    files = report!.files.map((f) => f.path);
  }, 60_000);

  it('ships LICENSE (MIT, as package.json says) and builds before packing', () => {
    expect(pkg.license).toBe('MIT');
    expect(files).toContain('LICENSE');
    expect(readFileSync(`${ROOT}LICENSE`, 'utf8')).toMatch(/^MIT License/);
    expect(pkg.scripts.prepack).toMatch(/\bnpm run build\b|\btsup\b/);
    expect(files).toContain('package.json');
    expect(files).toContain('README.md');
  });

  it('ships every file package.json exports points at, and each entry has its types for import and require', () => {
    const targets = exportTargets();
    expect(targets.size).toBeGreaterThan(1);
    for (const [entry, paths] of targets) {
      for (const path of paths) expect(files, `${entry} → ${path}`).toContain(path);
      if (entry === './package.json') continue;
      expect(paths.some((p) => p.endsWith('.d.ts')), `${entry} has .d.ts`).toBe(true);
      expect(paths.some((p) => p.endsWith('.d.cts')), `${entry} has .d.cts`).toBe(true);
    }
  });

  it('ships no tests, fixtures, bench results, examples or sources', () => {
    for (const path of files) {
      expect(path, path).not.toMatch(/(^|\/)(test|tests|bench|examples|fixtures|coverage|\.ci)\//);
      expect(path, path).not.toMatch(/\.test\.|\.spec\.|\.cpuprofile$|\.log$/);
      expect(path, path).toMatch(/^(dist\/|package\.json$|README\.md$|LICENSE$)/);
    }
  });
});

describe('the built package loaded twice (require and import)', () => {
  it('isBrokerError and instanceof hold across the CommonJS and ESM copies', async () => {
    const cjs = createRequire(import.meta.url)(`${ROOT}dist/index.cjs`) as typeof import('switchyard');
    const esm = (await import(pathToFileURL(`${ROOT}dist/index.js`).href)) as typeof import('switchyard');
    expect(cjs.BrokerError).not.toBe(esm.BrokerError); // two copies, as a mixed app gets them
    const fromCjs = new cjs.BrokerError('SY_ERR_FORBIDDEN');
    const fromEsm = new esm.BrokerError('SY_ERR_FORBIDDEN');
    expect(esm.isBrokerError(fromCjs)).toBe(true);
    expect(cjs.isBrokerError(fromEsm)).toBe(true);
    expect(fromCjs instanceof esm.BrokerError).toBe(true);
    expect(fromEsm instanceof cjs.BrokerError).toBe(true);
    expect(esm.isBrokerError(new Error('plain'))).toBe(false);
    expect(esm.isBrokerError({ code: 'SY_ERR_FORBIDDEN' })).toBe(false);
  });

  it('an unknown code from plain JS is a clear RangeError naming the known codes', () => {
    const cjs = createRequire(import.meta.url)(`${ROOT}dist/index.cjs`) as { BrokerError: new (code: string) => Error };
    expect(() => new cjs.BrokerError('SY_ERR_NOPE')).toThrow(RangeError);
    expect(() => new cjs.BrokerError('SY_ERR_NOPE')).toThrow(/unknown error code "SY_ERR_NOPE"; known codes: SY_ERR_BAD_FRAME/);
  });
});
