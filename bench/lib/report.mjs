// Turning step records into medians, ratios, target verdicts, a terminal table and an SVG chart.

const median = (xs) => {
  const s = xs.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return null;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** Targets from issue 5: switchyard against raw ws (history: on against off). */
export const TARGETS = [
  { scenario: 'fanout', variant: 'switchyard', baseline: 'raw', op: '>=', factor: 3, text: 'fan-out ≥ 3× raw ws' },
  { scenario: 'topics', variant: 'switchyard', baseline: 'raw', op: '>=', factor: 1.5, text: 'topics ≥ 1.5× raw ws' },
  { scenario: 'latency', variant: 'switchyard', baseline: 'raw', op: '<=', factor: 1, text: 'latency p99 ≤ raw ws', context: 'latency-low' },
  { scenario: 'idle-memory', variant: 'switchyard', baseline: 'raw', op: '<=', factor: 1.5, text: 'idle memory per connection ≤ 1.5× raw ws' },
  // issue 17: connect churn with the client closing first (what clients do) at least raw ws's rate
  { scenario: 'connect', variant: 'switchyard', baseline: 'raw', op: '>=', factor: 1, text: 'connect, client closes first ≥ 1.0× raw ws' },
  { scenario: 'connect', variant: 'switchyard-server-close', baseline: 'raw-server-close', op: '>=', factor: 0.8, text: 'connect, server closes first ≥ 0.8× raw ws' },
  { scenario: 'history', variant: 'history-on', baseline: 'history-off', op: 'cost', factor: 0.15, text: 'history on costs ≤ 15% of fan-out' },
  // Issue 17: the same topics load with an id on every publish (one Ack each) and without.
  { scenario: 'topics', variant: 'switchyard', baseline: 'switchyard-noid', op: '>=', factor: 0.85, text: 'topics with an id ≥ 85% of without' },
];

// Which side ran out of CPU. Process CPU (user+system, from the kernel), not event-loop
// utilisation: on a 2-core box a process can be "busy" in ELU terms while it waits for a core.
function bottleneck(m) {
  if (!m) return '';
  const s = m.serverCpu ?? 0;
  const l = m.loadgenCpu ?? 0;
  if (s >= 85 && l >= 85) return 'both';
  if (s >= 85) return 'server';
  if (l >= 85) return 'load gen';
  return 'neither';
}

/**
 * Notes of several runs, one line per kind: "SATURATED (3/3 runs): <first run's text>". A kind is
 * the text before the first ':' (SATURATED, NOISY) or, lacking one, the text without numbers.
 */
function collapseNotes(perRun) {
  const kinds = new Map();
  perRun.forEach((notes) => {
    const seen = new Set();
    for (const n of notes) {
      const kind = /^[A-Z]+:/.test(n) ? n.slice(0, n.indexOf(':')) : n.replace(/[0-9.,]+/g, '#');
      if (seen.has(kind)) continue;
      seen.add(kind);
      const k = kinds.get(kind) ?? { runs: 0, first: n };
      k.runs++;
      kinds.set(kind, k);
    }
  });
  const total = perRun.length;
  return [...kinds.entries()].map(([kind, k]) => {
    if (total <= 1) return k.first;
    const rest = /^[A-Z]+:/.test(k.first) ? k.first.slice(kind.length + 1).trim() : k.first;
    return /^[A-Z]+:/.test(k.first) ? `${kind} in ${k.runs}/${total} runs, e.g. ${rest}` : `${k.runs}/${total} runs: ${rest}`;
  });
}

/** 2.00×, 0.53×, 0.004×: two significant digits below 0.1. */
export function fmtRatio(r) {
  if (r === null || r === undefined || !Number.isFinite(r)) return '–';
  if (r >= 10) return r.toFixed(1);
  if (r >= 0.1) return r.toFixed(2);
  return r.toPrecision(2);
}

export function aggregate(scenarios, records, args) {
  const out = {};
  for (const sc of scenarios) {
    const recs = records.filter((r) => r.scenario === sc.name);
    const keys = [...new Set(recs.map((r) => r.variant))];
    const baselineKey = sc.baseline ?? 'raw';
    const variants = keys.map((key) => {
      const rs = recs.filter((r) => r.variant === key);
      const ok = rs.filter((r) => r.result);
      const med = {};
      if (ok.length) {
        for (const k of Object.keys(ok[0].result)) {
          if (typeof ok[0].result[k] === 'number') med[k] = median(ok.map((r) => r.result[k]));
        }
      }
      const prim = ok.map((r) => r.result[sc.primary.key]).filter((x) => typeof x === 'number');
      return {
        key,
        system: rs[0].system,
        label: rs[0].label,
        runs: ok.length,
        median: ok.length ? med : null,
        min: prim.length ? Math.min(...prim) : null,
        max: prim.length ? Math.max(...prim) : null,
        bottleneck: ok.length ? bottleneck(med) : '',
        notes: collapseNotes(ok.map((r) => r.result.notes ?? [])),
        errors: rs.filter((r) => r.error).map((r) => r.error),
        na: rs.find((r) => r.na)?.na ?? null,
      };
    });
    for (const v of variants) {
      // A scenario may compare each variant with its own baseline (connect: raw ws closing the same way).
      const baseValue = variants.find((b) => b.key === (sc.baselineOf ? sc.baselineOf(v.key) : baselineKey))?.median?.[sc.primary.key];
      const val = v.median?.[sc.primary.key];
      v.ratio = typeof val === 'number' && typeof baseValue === 'number' && baseValue > 0 ? val / baseValue : null;
    }
    out[sc.name] = {
      title: typeof sc.title === 'function' ? sc.title(sc.params(args.quick)) : sc.title,
      primary: sc.primary,
      columns: sc.columns ?? [],
      baseline: baselineKey,
      note: sc.note ?? null,
      variants,
    };
  }
  return out;
}

export function evaluateTargets(summary, args) {
  return TARGETS.filter((t) => summary[t.scenario]).map((t) => {
    const s = summary[t.scenario];
    const v = s.variants.find((x) => x.key === t.variant);
    const b = s.variants.find((x) => x.key === t.baseline);
    const base = { text: t.text, scenario: t.scenario, basis: args.quick ? '1 run (--quick): indicative only' : `medians of ${args.runs} runs` };
    if (!v || !b) return { ...base, met: null, value: 'n/a', why: `${!v ? t.variant : t.baseline} not measured` };
    if (v.na || b.na) return { ...base, met: null, value: 'n/a', why: v.na ?? b.na };
    // The scenario's ratios are against its baseline; a target against another row divides the medians.
    const key = s.primary.key;
    const ratio = t.baseline === s.baseline ? v.ratio : v.median?.[key] > 0 && b.median?.[key] > 0 ? v.median[key] / b.median[key] : null;
    const against = t.baseline === 'raw' ? 'raw ws' : b.label;
    if (ratio === null) return { ...base, met: null, value: 'n/a', why: [...v.errors, ...b.errors][0] ?? 'no measurement' };
    // With several runs, the worst and best pairing of runs bound the ratio; when the target
    // lies inside those bounds the verdict could flip with the next run, and the line says so.
    const spread = v.runs > 1 && b.runs > 1 && b.min > 0 && b.max > 0 ? [v.min / b.max, v.max / b.min] : null;
    const threshold = t.op === 'cost' ? 1 - t.factor : t.factor;
    const straddles = spread !== null && spread[0] < threshold && spread[1] > threshold;
    const unresolved = straddles ? `runs straddle the target (ratio ${fmtRatio(spread[0])}–${fmtRatio(spread[1])}): not resolved by ${Math.min(v.runs, b.runs)} runs` : undefined;
    if (t.op === 'cost') {
      // primary is a throughput: cost = share of fan-out lost when history is on
      const cost = 1 - ratio;
      return {
        ...base,
        met: cost <= t.factor,
        value: cost >= 0 ? `${(cost * 100).toFixed(1)}% slower` : `${(-cost * 100).toFixed(1)}% faster (noise)`,
        ratio,
        ...(unresolved && { unresolved: true, why: unresolved }),
      };
    }
    const met = t.op === '>=' ? ratio >= t.factor : ratio <= t.factor;
    const out = { ...base, met, value: `${fmtRatio(ratio)}× ${against}`, ratio, ...(unresolved && { unresolved: true, why: unresolved }) };
    // A saturated baseline makes the comparison hollow: say so, with the like-for-like figure.
    if (b.notes.some((n) => n.startsWith('SATURATED'))) {
      const c = t.context && summary[t.context];
      const cv = c?.variants.find((x) => x.key === t.variant);
      const cb = c?.variants.find((x) => x.key === t.baseline);
      const key = s.primary.key;
      out.why =
        (out.why ? `${out.why}; ` : '') +
        `raw ws was SATURATED, its ${key} is queueing delay` +
        (cv?.median && cb?.median
          ? `; unsaturated (${t.context}): ${fmt(cv.median[key], s.primary.unit)} vs ${fmt(cb.median[key], s.primary.unit)} = ${fmtRatio(cv.ratio)}× raw ws`
          : '');
    }
    return out;
  });
}

// ---------------------------------------------------------------------------------------------
// formatting

export function fmt(value, unit) {
  if (value === null || value === undefined || Number.isNaN(value)) return '–';
  if (unit === 'ms') return value < 10 ? `${value.toFixed(2)} ms` : `${value.toFixed(1)} ms`;
  if (unit === 'B/conn' || unit === 'B') {
    if (Math.abs(value) >= 1024 * 1024) return `${(value / 1024 / 1024).toFixed(1)} MiB`;
    if (Math.abs(value) >= 1024) return `${(value / 1024).toFixed(1)} KiB`;
    return `${Math.round(value)} B`;
  }
  if (unit === '%') return `${Math.round(value)}%`;
  return Math.round(value).toLocaleString('en-US');
}

function pad(s, n, right = false) {
  s = String(s);
  if (s.length >= n) return s;
  return right ? s.padStart(n) : s.padEnd(n);
}

export function renderTable(report) {
  const { meta, scenarios, targets } = report;
  const lines = [];
  lines.push('');
  lines.push(
    `switchyard bench · ${meta.mode}${meta.mode === 'quick' ? ' (1 run per cell, short windows: indicative only)' : ` (median of ${meta.runs} runs)`} · ` +
      `node ${meta.node} · ${meta.cpus} · git ${meta.git.commit ?? '?'}${meta.git.dirty ? ' (lib/ or adapters/ modified)' : ''}`,
  );
  lines.push(
    'CPU columns: % of one core over the measurement window (user+system): the server process, the load-generator process, and everything',
  );
  lines.push(
    `else on the machine ("other": a busy neighbour makes a figure unreliable). ${meta.pinning && meta.pinning !== 'none' ? `Server pinned to CPU ${meta.pinning.server}, load generator to CPU ${meta.pinning.loadgen}.` : 'No CPU pinning.'}`,
  );
  for (const [name, s] of Object.entries(scenarios)) {
    lines.push('');
    lines.push(`${name}: ${s.title}  [${s.primary.label}, ${s.primary.better} is better]`);
    if (s.note) lines.push(`  note: ${s.note}`);
    const extra = s.columns;
    const header = [pad('system', 18), pad(s.primary.label, 16, true), pad(`× ${s.baseline === 'raw' ? 'raw ws' : s.baseline}`, 13, true), pad('runs min–max', 24, true)];
    for (const c of extra) header.push(pad(c.label, c.width ?? 11, true));
    header.push(pad('srv cpu', 8, true), pad('gen cpu', 8, true), pad('other', 6, true), '  bottleneck');
    lines.push(`  ${header.join(' ')}`);
    for (const v of s.variants) {
      if (!v.median) {
        const why = v.na ? `n/a: ${v.na}` : `error: ${v.errors[0] ?? 'not measured'}`;
        lines.push(`  ${pad(v.label, 18)} ${why.split('\n')[0].slice(0, 150)}`);
        continue;
      }
      const m = v.median;
      const row = [
        pad(v.label, 18),
        pad(fmt(m[s.primary.key], s.primary.unit), 16, true),
        pad(v.ratio === null ? '–' : `${fmtRatio(v.ratio)}×`, 13, true),
        pad(v.runs > 1 ? `${fmt(v.min, s.primary.unit)}–${fmt(v.max, s.primary.unit)}` : '(1 run)', 24, true),
      ];
      for (const c of extra) row.push(pad(fmt(m[c.key], c.unit), c.width ?? 11, true));
      row.push(pad(fmt(m.serverCpu, '%'), 8, true), pad(fmt(m.loadgenCpu, '%'), 8, true), pad(fmt(m.otherCpu, '%'), 6, true), `  ${v.bottleneck}`);
      lines.push(`  ${row.join(' ')}`);
      for (const n of v.notes) lines.push(`  ${' '.repeat(18)} ! ${n}`);
      if (v.errors.length) lines.push(`  ${' '.repeat(18)} ! ${v.errors.length} run(s) failed: ${v.errors[0].split('\n')[0].slice(0, 150)}`);
    }
  }
  lines.push('');
  lines.push(`Targets (${meta.mode === 'quick' ? '1 run in --quick mode: indicative only; run `npm run bench` for medians of 3' : `medians of ${meta.runs} runs`}):`);
  for (const t of targets) {
    const tag = (t.met === true ? 'met' : t.met === false ? 'NOT MET' : 'n/a') + (t.unresolved ? '?' : '');
    lines.push(`  [${pad(tag, 8)}] ${pad(t.text, 42)} ${t.value}${t.why ? `  (${String(t.why).split('\n')[0].slice(0, 200)})` : ''}`);
  }
  return lines.join('\n') + '\n';
}

// ---------------------------------------------------------------------------------------------
// SVG: one group of bars per scenario, normalised to the scenario's baseline (raw ws = 1.0;
// history: off = 1.0). Hand-written, no dependency.

const COLOURS = { raw: '#9ca3af', socketio: '#f59e0b', switchyard: '#2563eb', nats: '#059669', mosquitto: '#7c3aed', 'history-off': '#93c5fd', 'history-on': '#1d4ed8' };

function esc(s) {
  return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

export function renderSvg(report, systems) {
  const groups = Object.entries(report.scenarios);
  const W = 1000;
  const H = 500;
  const left = 60;
  const right = 20;
  const top = 90;
  const bottom = 120;
  const plotH = H - top - bottom;
  // Log scale (bars from the floor), so 12× and 1/50× both stay readable next to 1.0.
  const ratios = groups.flatMap(([, s]) => s.variants.map((v) => v.ratio).filter((r) => typeof r === 'number' && r > 0));
  const lo = Math.max(1 / 256, Math.min(0.5, ...ratios.map((r) => r / 1.3)));
  const hi = Math.min(64, Math.max(2, ...ratios.map((r) => r * 1.3)));
  const L = Math.log;
  const y = (r) => top + plotH - ((L(Math.min(hi, Math.max(lo, r))) - L(lo)) / (L(hi) - L(lo))) * plotH;
  const groupW = (W - left - right) / Math.max(1, groups.length);
  const parts = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="system-ui, -apple-system, Segoe UI, sans-serif" font-size="12">`);
  parts.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  const m = report.meta;
  parts.push(`<text x="${left}" y="26" font-size="16" font-weight="600">switchyard bench: each bar relative to raw ws = 1.0 (history: off = 1.0), log scale</text>`);
  parts.push(
    `<text x="${left}" y="46" fill="#555">${esc(`${m.mode === 'quick' ? 'quick mode, 1 run per bar (indicative)' : `median of ${m.runs} runs`} · ${m.date.slice(0, 16).replace('T', ' ')} UTC · node ${m.node} · ${m.cpus.split(' × ')[0]} cores · git ${m.git.commit ?? '?'}`)}</text>`,
  );
  const legend = [
    ...Object.entries(systems).map(([k, sys]) => [k, sys.label]),
    ['history-off', 'switchyard, history off'],
    ['history-on', 'switchyard, history on'],
  ];
  let lx = left;
  for (const [k, label] of legend) {
    parts.push(`<rect x="${lx}" y="58" width="12" height="12" fill="${COLOURS[k]}"/>`);
    parts.push(`<text x="${lx + 17}" y="68">${esc(label)}</text>`);
    lx += 30 + label.length * 6.6;
  }
  const ticks = [1 / 256, 1 / 128, 1 / 64, 1 / 32, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 1, 2, 4, 8, 16, 32, 64].filter((t) => t >= lo * 0.999 && t <= hi * 1.001);
  for (const t of ticks) {
    const yy = y(t);
    parts.push(`<line x1="${left}" x2="${W - right}" y1="${yy}" y2="${yy}" stroke="${t === 1 ? '#111' : '#e5e7eb'}"${t === 1 ? ' stroke-dasharray="4 3"' : ''}/>`);
    parts.push(`<text x="${left - 8}" y="${yy + 4}" text-anchor="end" fill="#555">${t >= 1 ? t : `1/${1 / t}`}×</text>`);
  }
  let flagged = false;
  groups.forEach(([name, s], gi) => {
    const gx = left + gi * groupW;
    const n = s.variants.length;
    const barW = Math.min(36, (groupW - 24) / Math.max(1, n));
    const startX = gx + (groupW - barW * n) / 2;
    s.variants.forEach((v, vi) => {
      const x = startX + vi * barW;
      const colour = COLOURS[v.key] ?? COLOURS[v.system] ?? '#666';
      if (v.ratio === null) {
        parts.push(`<text x="${x + barW / 2}" y="${y(1) - 6}" text-anchor="middle" fill="#b91c1c" font-size="10">${v.na ? 'n/a' : 'err'}</text>`);
        return;
      }
      const y0 = top + plotH;
      const yr = y(v.ratio);
      parts.push(
        `<rect x="${x + 2}" y="${yr}" width="${barW - 4}" height="${Math.max(1.5, y0 - yr)}" fill="${colour}"><title>${esc(`${name} · ${v.label}: ${fmt(v.median[s.primary.key], s.primary.unit)} (${v.ratio.toFixed(2)}×)`)}</title></rect>`,
      );
      const flag = v.notes.some((t) => /SATURATED|NOISY/.test(t));
      flagged ||= flag;
      const label = `${fmtRatio(v.ratio)}${flag ? '*' : ''}`;
      parts.push(`<text x="${x + barW / 2}" y="${yr - 4}" text-anchor="middle" font-size="10">${label}</text>`);
    });
    const base = top + plotH;
    parts.push(`<text x="${gx + groupW / 2}" y="${base + 18}" text-anchor="middle" font-weight="600">${esc(name)}</text>`);
    parts.push(`<text x="${gx + groupW / 2}" y="${base + 33}" text-anchor="middle" fill="#555" font-size="10">${esc(s.primary.label)}</text>`);
    parts.push(`<text x="${gx + groupW / 2}" y="${base + 46}" text-anchor="middle" fill="#555" font-size="10">${s.primary.better} is better</text>`);
  });
  parts.push(`<line x1="${left}" x2="${W - right}" y1="${top + plotH}" y2="${top + plotH}" stroke="#111"/>`);
  const verdicts = report.targets.map((t) => `${t.met === true ? '✓' : t.met === false ? '✗' : '–'}${t.unresolved ? '?' : ''} ${t.text}`);
  const half = Math.ceil(verdicts.length / 2);
  parts.push(`<text x="${left}" y="${H - 44}" fill="#333" font-size="11">${esc(`targets: ${verdicts.slice(0, half).join('   ')}`)}</text>`);
  parts.push(`<text x="${left}" y="${H - 28}" fill="#333" font-size="11">${esc(`${' '.repeat(9)}${verdicts.slice(half).join('   ')}`)}</text>`);
  if (flagged) {
    parts.push(`<text x="${left}" y="${H - 10}" fill="#b45309" font-size="11">* SATURATED (latency is queueing delay) or NOISY (other processes took CPU during the window): see latest.json notes</text>`);
  }
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}
