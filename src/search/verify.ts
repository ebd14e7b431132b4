import type { Problem } from './problem.js';
import { rowTolerance } from './solvers/solver.js';

export interface Evaluation {
  objective: number;
  /** per budget row: use of the searchable layers */
  use: number[];
  feasible: boolean;
  /** rows over their limit, for messages */
  violated: string[];
}

/**
 * Recompute objective and budgets from a choice: no solver's own report is trusted (seen: glpsol
 * "optimal" at a worse objective, HiGHS breaking a budget by 3e-7 of it under default tolerances).
 */
export function evaluateChoice(problem: Problem, choice: number[]): Evaluation {
  if (choice.length !== problem.choices.length) throw new Error(`choice has ${choice.length} entries for ${problem.choices.length} layers`);
  let objective = 0;
  const use = problem.rows.map(() => 0);
  choice.forEach((j, i) => {
    const c = problem.choices[i][j];
    if (!c) throw new Error(`layer ${i}: choice ${j} does not exist`);
    objective += c.cost;
    c.use.forEach((u, k) => (use[k] += u));
  });
  const violated = problem.rows.filter((r, k) => use[k] > r.limit + rowTolerance(r.limit)).map((r) => r.name);
  return { objective, use, feasible: violated.length === 0, violated };
}
