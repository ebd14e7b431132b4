import assert from 'node:assert/strict';
import { solveExact } from '../src/search/solvers/exact.js';
import type { Solver } from '../src/search/solvers/solver.js';
import { evaluateChoice } from '../src/search/verify.js';
import type { FormulatedSearch } from '../src/search/problem.js';
import { randomInstance } from './random-problems.js';

/**
 * The exact solver against a general MIP solver on random instances: same status, and objectives
 * equal to 1e-9. Both answers are re-evaluated; the exact one must be within every budget.
 */
export async function crossCheck(
  other: Solver, seeds: number[], instance: (seed: number) => { f: FormulatedSearch } = randomInstance,
): Promise<{ optimal: number; infeasible: number; removed: number }> {
  const tally = { optimal: 0, infeasible: 0, removed: 0 };
  for (const seed of seeds) {
    const { f } = instance(seed);
    const mine = solveExact(f.problem);
    const theirs = await other.solve(f.problem);
    const where = `seed ${seed} (${f.problem.choices.length} layers, ${f.problem.rows.length} rows)`;
    assert.equal(mine.status, theirs.status, `${where}: exact ${mine.status}, ${other.name} ${theirs.status}`);
    if (f.removed.length) tally.removed++;
    if (mine.status === 'infeasible') {
      tally.infeasible++;
      continue;
    }
    const a = evaluateChoice(f.problem, mine.choice!);
    const b = evaluateChoice(f.problem, theirs.choice!);
    assert.ok(a.feasible, `${where}: exact policy breaks ${a.violated.join(', ')}`);
    const tol = 1e-9 * Math.max(1, Math.abs(a.objective));
    assert.ok(Math.abs(a.objective - b.objective) <= tol || (!b.feasible && b.objective < a.objective),
      `${where}: exact ${a.objective}, ${other.name} ${b.objective} (feasible: ${b.feasible})`);
    tally.optimal++;
  }
  return tally;
}
