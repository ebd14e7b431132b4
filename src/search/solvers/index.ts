import { FieldError } from '../../util/errors.js';
import { exactSolver } from './exact.js';
import { glpkSolver } from './glpk.js';
import { highsSolver } from './highs.js';
import type { Solver } from './solver.js';

export const SOLVERS: Record<string, Solver> = { exact: exactSolver, glpk: glpkSolver, highs: highsSolver };
export const SOLVER_NAMES = Object.keys(SOLVERS);

export function solverByName(name: string): Solver {
  const s = SOLVERS[name];
  if (!s) throw new FieldError((n) => `${n('solver')}: unknown solver '${name}' (choose from ${SOLVER_NAMES.join(', ')})`);
  return s;
}
