/**
 * The built type surface of `Broker` is exactly the documented API (README "Broker methods"):
 * nothing the gate, sessions or protocols use internally shows up in a host's autocomplete.
 * Reads the `.d.ts` tsup emitted, so run `npm run build` first (CI does).
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const DOCUMENTED = [
  '#private',
  'constructor',
  'closed',
  'nodeId',
  'limits',
  'syntax',
  'paths',
  'owns',
  'handleUpgrade',
  'publish',
  'sendTo',
  'notify',
  'presence',
  'revoke',
  'reauthorize',
  'history',
  'connectionIds',
  'connectionsOf',
  'connections',
  'disconnect',
  'subscribe',
  'unsubscribe',
  'stats',
  'close',
].sort();

/** Member names of `declare class <name> … { … }` in a .d.ts, one per top-level member line. */
function classMembers(dts: string, name: string): { heritage: string; members: string[] } {
  const start = dts.search(new RegExp(`declare class ${name}\\b`));
  if (start === -1) throw new Error(`no declare class ${name}`);
  const open = dts.indexOf('{', start);
  const heritage = dts.slice(start, open).trim();
  let depth = 0;
  let end = open;
  for (; end < dts.length; end++) {
    if (dts[end] === '{') depth++;
    else if (dts[end] === '}' && --depth === 0) break;
  }
  const body = dts
    .slice(open + 1, end)
    .replace(/\/\*\*[\s\S]*?\*\//g, '')
    .split('\n');
  const members = new Set<string>();
  let nesting = 0;
  for (const line of body) {
    if (nesting === 0) {
      const m = /^\s*(?:static\s+)?(?:readonly\s+)?(?:get\s+|set\s+)?(#?[A-Za-z_$][\w$]*)\s*[(<:;?]/.exec(line);
      if (m) members.add(m[1]!);
    }
    for (const ch of line) {
      if (ch === '{' || ch === '(') nesting++;
      else if (ch === '}' || ch === ')') nesting--;
    }
  }
  return { heritage, members: [...members].sort() };
}

describe('public type surface', () => {
  for (const file of ['index.d.ts', 'index.d.cts']) {
    it(`dist/${file}: Broker declares only the documented members`, () => {
      const path = fileURLToPath(new URL(`../dist/${file}`, import.meta.url));
      expect(existsSync(path), `${path} is missing: run npm run build first`).toBe(true);
      const { heritage, members } = classMembers(readFileSync(path, 'utf8'), 'Broker');
      // Events come from the typed EventEmitter, and nothing else is implemented on the side.
      expect(heritage).toBe('declare class Broker extends EventEmitter<BrokerEvents>');
      expect(members).toEqual(DOCUMENTED);
    });
  }

  it('the member parser sees internals when they are there', () => {
    const sample = `declare class Broker extends EventEmitter<BrokerEvents> implements SessionHost {
    #private;
    readonly options: ResolvedOptions;
    /** doc */
    subscribe(session: Session, patterns: string[], filters: Filter | null, recover?: Record<string, number>): Promise<{
        a: number;
    }>;
    get limits(): X;
}`;
    expect(classMembers(sample, 'Broker').members).toEqual(['#private', 'limits', 'options', 'subscribe']);
  });
});
