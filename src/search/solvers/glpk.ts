import type { LP } from 'glpk.js/node';
import type { Problem } from '../problem.js';
import { EXIT_SOLVER_FAILED, FieldError } from '../../util/errors.js';
import { costScale, type Solution, type Solver } from './solver.js';
import { choiceFromBinaries, varName } from './mip.js';

type Glpk = Awaited<ReturnType<typeof import('glpk.js/node').default>>;
let instance: Glpk | undefined;

/** GLPK (glpk.js, the design's named solver) on the 0-1 MIP form of the problem; a cross-check. */
export const glpkSolver: Solver = {
  name: 'glpk',
  async solve(problem, opts = {}) {
    // loaded on first use: `mpq search` with the default solver should not pay for it
    const glpk = (instance ??= await (await import('glpk.js/node')).default());
    const t0 = performance.now();
    const lp = toGlpkModel(problem, glpk);
    const res = glpk.solve(lp, {
      msglev: glpk.GLP_MSG_OFF,
      presol: true,
      mipgap: 0,
      ...(opts.timeLimitMs !== undefined ? { tmlim: Math.max(1, Math.ceil(opts.timeLimitMs / 1000)) } : {}),
    });
    const solveMs = performance.now() - t0;
    const st = res.result.status;
    const out = (status: Solution['status'], choice: number[] | null): Solution => ({ status, choice, solver: 'glpk', solveMs });
    if (st === glpk.GLP_NOFEAS || st === glpk.GLP_INFEAS) return out('infeasible', null);
    const choice = choiceFromBinaries(problem, (name) => res.result.vars[name] ?? 0);
    if (st === glpk.GLP_OPT) return out('optimal', choice);
    if (st === glpk.GLP_FEAS) return out('time_limit', choice);
    // GLP_UNDEF after a time limit: nothing found yet; anything else says neither optimal nor infeasible
    if (st === glpk.GLP_UNDEF && opts.timeLimitMs !== undefined) return out('time_limit', null);
    const says = st === glpk.GLP_UNDEF ? 'undefined' : st === glpk.GLP_UNBND ? 'unbounded' : 'unknown';
    throw new FieldError((n) => `glpk.js ended with status ${st} (${says}), which says neither optimal nor infeasible; try ${n('solver')} exact`, EXIT_SOLVER_FAILED);
  },
};

function toGlpkModel(problem: Problem, glpk: { GLP_MIN: number; GLP_FX: number; GLP_UP: number }): LP {
  const binaries: string[] = [];
  const objective: { name: string; coef: number }[] = [];
  const subjectTo: LP['subjectTo'] = [];
  const scale = costScale(problem);
  problem.choices.forEach((cs, i) => {
    const names = cs.map((_, j) => varName(i, j));
    binaries.push(...names);
    cs.forEach((c, j) => objective.push({ name: names[j], coef: c.cost * scale }));
    subjectTo.push({ name: `one_${i}`, vars: names.map((name) => ({ name, coef: 1 })), bnds: { type: glpk.GLP_FX, lb: 1, ub: 1 } });
  });
  problem.rows.forEach((row, k) => {
    // rows scaled to a limit of 1: raw BitOps coefficients (~1e10) cost GLPK optimality
    const scale = row.limit > 0 ? 1 / row.limit : 1;
    const vars = problem.choices.flatMap((cs, i) => cs.map((c, j) => ({ name: varName(i, j), coef: c.use[k] * scale })));
    subjectTo.push({ name: `${row.name}_${k}`, vars, bnds: { type: glpk.GLP_UP, lb: 0, ub: row.limit * scale } });
  });
  return { name: 'mpq', objective: { direction: glpk.GLP_MIN, name: 'obj', vars: objective }, subjectTo, binaries };
}
