import type { SearchResult } from '../search/search.js';

/** A plain text table: columns padded, numbers right-aligned. */
export function textTable(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const width = header.map((_, c) => Math.max(...cells.map((r) => r[c].length)));
  const numeric = header.map((_, c) => rows.length > 0 && rows.every((r) => typeof r[c] === 'number'));
  const line = (r: string[]) => r.map((v, c) => (numeric[c] ? v.padStart(width[c]) : v.padEnd(width[c]))).join('  ').trimEnd();
  return [line(cells[0]), width.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

const g = (v: number) => v.toFixed(3);

/** The human report of `mpq search`: per-layer table, then a summary. */
export function formatSearchReport(r: SearchResult, header: string): string {
  const out = [header, ''];
  if (r.status === 'infeasible' || r.objective === null) {
    out.push(`status: ${r.status} — ${r.reason ?? 'no policy found'}`);
    return out.join('\n');
  }
  const row = (bits: string) => (l: SearchResult['layers'][number]) => [l.name, bits, l.weightBits, l.actBits, l.macs, l.params];
  out.push(textTable(['layer', 'bits', 'w bits', 'a bits', 'MACs', 'params'], [...r.fixed.slice(0, 1).map(row('fixed')), ...r.layers.map(row('searched')), ...r.fixed.slice(1).map(row('fixed'))]));
  out.push('');
  const budgets = r.rows.map((b) => `  ${b.name.padEnd(8)} ${g(b.used!)} ${b.unit} of ${g(b.limit)} ${b.unit}, ${b.scope} (${b.sources.join(', ')})`);
  out.push(
    `status: ${r.status}   objective: ${r.objective}   solver: ${r.solver} (${r.solveMs.toFixed(2)} ms)`,
    ...(r.status === 'time_limit' ? [`stopped by the ${r.limit ?? 'time'} limit: ${r.bound !== undefined ? `proven bound ${r.bound}, gap ≤ ${formatGap(r.gap!)}` : 'no bound from this solver'}`] : []),
    `average bits: weights ${r.avgWeightBits!.toFixed(2)}, activations ${r.avgActBits!.toFixed(2)} (searchable layers)`,
    `model size: ${g(r.sizeMb!)} MB of ${g(r.fp32SizeMb)} MB FP32 — compression ratio ${r.compressionRatio!.toFixed(2)}`,
    // LIMPQ reports the whole model's BitOps; its BitOps budget is over the searchable layers (below)
    `BitOps, whole model (fixed layers included): ${g(r.bitops!)} G` + (r.bitopsTarget !== null ? ` vs target ${g(r.bitopsTarget)} G` : '') + ` vs FP32 ${g(r.bitopsFp32)} G (${(r.bitopsFp32 / r.bitops!).toFixed(1)}x fewer)`,
    'budgets, as the search held them:',
    ...budgets,
  );
  if (r.removed.length) {
    out.push(`wired points removed (${r.removed.length}): ` + r.removed.map((w) => `${w.layer} ${w.kind} ${w.bits}b${w.at === undefined ? '' : ` at ${w.kind === 'weight' ? 'A' : 'W'}${w.at}`}`).join(', '));
  }
  return out.join('\n');
}

/** A relative gap as a percentage with enough digits to tell it from 0. */
export function formatGap(gap: number): string {
  return `${+(100 * gap).toPrecision(3)}%`;
}
