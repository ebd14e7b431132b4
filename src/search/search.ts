import { compressionRatio, costs } from '../model/costs.js';
import type { LayerTable } from '../model/layer.js';
import { fixedPolicyLayer, policyLayer, type PolicyLayer } from '../export/policy.js';
import type { WiredPoint } from '../indicators/indicators.js';
import { FieldError } from '../util/errors.js';
import { BITS_PER_MB, GIGA, type BudgetRow, type FormulatedSearch, type Problem } from './problem.js';
import type { SolveOptions, Solver, SolveStatus } from './solvers/solver.js';
import { evaluateChoice } from './verify.js';

/** A budget row's outcome, in user units (fixed layers included). */
export interface RowReport {
  name: BudgetRow['name'];
  sources: string[];
  unit: string;
  /** what `used` and `limit` count: LIMPQ's BitOps target the searchable layers, the size budgets the whole model */
  scope: 'searchable layers' | 'whole model';
  used: number | null;
  limit: number;
  /** the least any policy can use of this row on its own */
  smallestReachable: number;
}

export interface SearchResult {
  status: SolveStatus;
  objective: number | null;
  layers: PolicyLayer[];
  fixed: PolicyLayer[];
  /** BitOps of the whole model (fixed layers at their bits), as LIMPQ reports it */
  bitops: number | null;
  bitopsTarget: number | null;
  bitopsFp32: number;
  compressionRatio: number | null;
  sizeMb: number | null;
  fp32SizeMb: number;
  avgWeightBits: number | null;
  avgActBits: number | null;
  rows: RowReport[];
  removed: WiredPoint[];
  solver: string;
  solveMs: number;
  /**
   * For a search stopped by a limit: what stopped it, the proven lower bound on the optimum's
   * objective (when the solver gives one) and the policy's relative gap to it.
   */
  limit?: 'time' | 'memory';
  bound?: number;
  gap?: number;
  /** why no policy exists, when infeasible */
  reason?: string;
}

/** Per row, the least use of any policy: each layer at its least. Kept per choices array (a sweep's points share one). */
const leastUseOf = new WeakMap<Problem['choices'], number[]>();
function leastUse(choices: Problem['choices']): number[] {
  let least = leastUseOf.get(choices);
  if (!least) {
    const rows = choices[0]?.[0]?.use.length ?? 0;
    least = Array.from({ length: rows }, (_, k) => choices.reduce((s, cs) => s + Math.min(...cs.map((c) => c.use[k])), 0));
    leastUseOf.set(choices, least);
  }
  return least;
}

/**
 * Solve a formulated search and describe the policy in the units users read. `targetBits`: the
 * uniform bits whose BitOps are LIMPQ's target (the result's `bitopsTarget`); null when BitOps are not a budget.
 */
export async function runSearch(
  table: LayerTable, f: FormulatedSearch, solver: Solver, targetBits: { weightBits: number; actBits: number } | null, opts: SolveOptions = {},
): Promise<SearchResult> {
  const { problem } = f;
  const sol = await solver.solve(problem, opts);
  const evaluation = sol.choice ? evaluateChoice(problem, sol.choice) : null;
  if (evaluation && !evaluation.feasible) {
    throw new FieldError((n) => `solver '${sol.solver}' returned a policy over the ${evaluation.violated.join(', ')} budget; try ${n('solver')} exact`, 1);
  }
  const fixed = table.fixed.map(fixedPolicyLayer);
  const fixedCosts = costs(table.fixed);
  // the whole model in full precision
  const fp32 = costs([...table.layers, ...table.fixed].map(({ macs, params }) => ({ macs, params })));
  const rows: RowReport[] = problem.rows.map((r, k) => ({
    name: r.name,
    sources: r.sources,
    unit: r.unit,
    // a row counts the fixed layers when it was given over the whole model (its first source)
    scope: r.fixedUse === 0 && table.fixed.length > 0 ? 'searchable layers' : 'whole model',
    used: evaluation ? r.toUnit(evaluation.use[k] + r.fixedUse) : null,
    limit: r.toUnit(r.limit + r.fixedUse),
    smallestReachable: r.toUnit(leastUse(problem.choices)[k] + r.fixedUse),
  }));
  const base = {
    status: sol.status,
    fixed,
    bitopsTarget: targetBits ? (costs(table.layers, targetBits).bitops + fixedCosts.bitops) / GIGA : null,
    bitopsFp32: fp32.bitops / GIGA,
    fp32SizeMb: fp32.sizeBits / BITS_PER_MB,
    rows,
    removed: f.removed,
    solver: sol.solver,
    solveMs: sol.solveMs,
    ...(sol.status === 'time_limit' ? { limit: sol.limit ?? 'time' } : {}),
    ...(sol.status === 'time_limit' && sol.bound !== undefined ? { bound: sol.bound } : {}),
  };
  if (!sol.choice || !evaluation) {
    return {
      ...base, objective: null, layers: [], bitops: null, compressionRatio: null, sizeMb: null, avgWeightBits: null, avgActBits: null,
      ...(sol.status === 'infeasible' ? { reason: infeasibleReason(rows) } : { reason: `the search stopped (${sol.limit === 'memory' ? 'memory limit' : 'time limit or rollouts spent'}) before it found a policy within every budget` }),
    };
  }
  const layers = table.layers.map((l, i) => {
    const c = problem.choices[i][sol.choice![i]];
    return policyLayer(l, c.w, c.a);
  });
  const model = costs([...table.fixed, ...layers]);
  return {
    ...base,
    ...(base.bound !== undefined ? { gap: Math.max(0, evaluation.objective - base.bound) / Math.max(Math.abs(evaluation.objective), Number.MIN_VALUE) } : {}),
    objective: evaluation.objective,
    layers,
    bitops: model.bitops / GIGA,
    compressionRatio: compressionRatio(model),
    sizeMb: model.sizeBits / BITS_PER_MB,
    avgWeightBits: mean(layers.map((l) => l.weightBits)),
    avgActBits: mean(layers.map((l) => l.actBits)),
  };
}

function mean(xs: number[]): number {
  return xs.reduce((s, x) => s + x, 0) / xs.length;
}

const ROW_LABEL: Record<BudgetRow['name'], string> = { bitops: 'BitOps', size: 'model size', latency: 'latency', cost: 'cost' };

/** Say why: a budget below what any policy reaches alone, or budgets that cannot hold together. */
export function infeasibleReason(rows: RowReport[]): string {
  const fmt = (v: number, unit: string) => `${+v.toPrecision(6)} ${unit}`;
  const alone = rows.filter((r) => r.smallestReachable > r.limit);
  if (alone.length) {
    return alone
      .map((r) => `${ROW_LABEL[r.name]} budget ${fmt(r.limit, r.unit)} (${r.sources.join(', ')}) is below the smallest reachable ${fmt(r.smallestReachable, r.unit)}`)
      .join('; ');
  }
  return `every budget is reachable alone but not together (${rows
    .map((r) => `smallest ${ROW_LABEL[r.name]} ${fmt(r.smallestReachable, r.unit)} vs budget ${fmt(r.limit, r.unit)}`)
    .join(', ')})`;
}
