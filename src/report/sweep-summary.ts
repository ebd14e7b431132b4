import type { SweepResult } from '../search/sweep.js';
import { thousands } from '../util/format.js';

/**
 * The sweep's words, defined once. The summary line, `--json`, sweep.json, the plot's note and
 * the explorer all count with `countSweep` and explain with these.
 */
export const SWEEP_TERMS = {
  points: 'combinations of the budget lists',
  solved: 'searched afresh by the solver',
  reused: "answered from a looser point's proven optimum or infeasibility, without a search (reused_from names that point)",
  feasible: 'a policy within every budget was found',
  infeasible: 'proven to have no policy within every budget',
  unresolved: 'the solver stopped (time limit) before it found a policy or proved there is none',
  policies: 'distinct policies among the feasible points (several budgets often give the same one)',
  pareto_bitops: 'feasible, and no other point has an objective and BitOps both at most its own, one of them lower',
  pareto_size: 'feasible, and no other point has an objective and model size both at most its own, one of them lower',
  pareto_both: 'on the BitOps front and on the size front',
} as const;

/** How many points of a sweep each word applies to (names as in SWEEP_TERMS). */
export type SweepCounts = Record<keyof typeof SWEEP_TERMS, number>;

function isFeasible(r: SweepResult): boolean {
  return r.objective !== null;
}

/** The same policy: equal bits in every layer (budgets differ, the answer does not). */
function policyKey(r: SweepResult): string {
  return `${r.weightBits?.join()}/${r.actBits?.join()}`;
}

export function countSweep(results: SweepResult[]): SweepCounts {
  const count = (f: (r: SweepResult) => boolean) => results.filter(f).length;
  const feasible = results.filter(isFeasible);
  return {
    points: results.length,
    solved: count((r) => r.reusedFrom === undefined),
    reused: count((r) => r.reusedFrom !== undefined),
    feasible: feasible.length,
    infeasible: count((r) => r.status === 'infeasible'),
    unresolved: count((r) => !isFeasible(r) && r.status !== 'infeasible'),
    policies: new Set(feasible.map(policyKey)).size,
    pareto_bitops: count((r) => r.paretoBitops),
    pareto_size: count((r) => r.paretoSize),
    pareto_both: count((r) => r.paretoBitops && r.paretoSize),
  };
}

/** Which front a point is on, in the words of SWEEP_TERMS: 'both', 'BitOps', 'size' or ''. */
export function frontWord(r: { paretoBitops: boolean; paretoSize: boolean }): string {
  return r.paretoBitops && r.paretoSize ? 'both' : r.paretoBitops ? 'BitOps' : r.paretoSize ? 'size' : '';
}

/**
 * One line of counts, e.g. `1,000 points: 539 solved, 461 reused; 1,000 feasible (212 policies),
 * 0 infeasible; Pareto: 51 BitOps, 43 size, 40 both`. Every point is solved or reused, and
 * feasible, infeasible or unresolved; `unresolved` is named only when there are any. An
 * interrupted sweep says how many of the grid's points it has (`412 of 1,000 points`).
 */
export function summaryLine(c: SweepCounts, gridPoints = c.points): string {
  const n = thousands;
  const of = gridPoints > c.points ? ` of ${n(gridPoints)}` : '';
  return `${n(c.points)}${of} points: ${n(c.solved)} solved, ${n(c.reused)} reused; `
    + `${n(c.feasible)} feasible (${n(c.policies)} ${c.policies === 1 ? 'policy' : 'policies'}), ${n(c.infeasible)} infeasible`
    + (c.unresolved ? `, ${n(c.unresolved)} unresolved` : '')
    + `; Pareto: ${n(c.pareto_bitops)} BitOps, ${n(c.pareto_size)} size, ${n(c.pareto_both)} both`;
}
