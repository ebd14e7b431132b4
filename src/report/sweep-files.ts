import type { SweepResult } from '../search/sweep.js';

const COLUMNS = ['index', 'wb', 'ab', 'cr', 'max_bitops_g', 'max_size_mb', 'max_latency', 'max_cost', 'status', 'objective', 'bitops_g', 'compression_ratio', 'size_mb', 'pareto_bitops', 'pareto_size', 'pareto_both', 'solve_ms', 'reused_from'] as const;

/** One JSON entry per point: the budgets, the outcome, the policy. */
export function sweepEntry(r: SweepResult) {
  return {
    index: r.index,
    wb: r.point.weightBits,
    ab: r.point.actBits,
    cr: r.point.cr,
    max_bitops_g: r.point.maxBitopsG ?? null,
    max_size_mb: r.point.maxSizeMb ?? null,
    max_latency: r.point.maxLatency ?? null,
    max_cost: r.point.maxCost ?? null,
    status: r.status,
    objective: r.objective,
    bitops: r.bitops,
    bitops_unit: 'G',
    compression_ratio: r.compressionRatio,
    size_mb: r.sizeMb,
    pareto_bitops: r.paretoBitops,
    pareto_size: r.paretoSize,
    pareto_both: r.paretoBitops && r.paretoSize,
    solve_ms: r.solveMs,
    /** `index` of the point whose optimum (or infeasibility) this point's is too, without a solve */
    reused_from: r.reusedFrom ?? null,
    weight_bits: r.weightBits,
    act_bits: r.actBits,
    ...(r.reason ? { reason: r.reason } : {}),
  };
}

export function sweepCsv(results: SweepResult[]): string {
  const cell = (v: unknown) => (v === null || v === undefined ? '' : String(v));
  const lines = results.map((r) => {
    const e = sweepEntry(r);
    const row: Record<(typeof COLUMNS)[number], unknown> = { ...e, bitops_g: e.bitops };
    return COLUMNS.map((c) => cell(row[c])).join(',');
  });
  return [COLUMNS.join(','), ...lines].join('\n') + '\n';
}

export function sweepLabel(r: SweepResult): string {
  const p = r.point;
  return [`W${p.weightBits}A${p.actBits}`, p.cr > 0 ? `CR${p.cr}` : '', p.maxBitopsG ? `${p.maxBitopsG}G` : '', p.maxSizeMb ? `${p.maxSizeMb}MB` : '', p.maxLatency ? `L${p.maxLatency}` : '', p.maxCost ? `C${p.maxCost}` : '']
    .filter(Boolean).join(' ');
}
