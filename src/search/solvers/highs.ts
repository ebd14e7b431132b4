import { EXIT_SOLVER_FAILED, FieldError } from '../../util/errors.js';
import { type Solution, type Solver } from './solver.js';
import { choiceFromBinaries, toLpFormat } from './mip.js';

type LoadHighs = typeof import('highs').default;
type Highs = Awaited<ReturnType<LoadHighs>>;
let instance: Highs | undefined;

/**
 * HiGHS (WebAssembly) on the 0-1 MIP form; a cross-check. Gaps are set to 0 and feasibility
 * tolerances tightened: with defaults it was seen returning choices over budget by 3e-7 of it.
 */
export const highsSolver: Solver = {
  name: 'highs',
  async solve(problem, opts = {}) {
    // loaded on first use: `mpq search` with the default solver should not pay for it
    // (a CommonJS module: at run time `default` is the loader itself)
    const highs = (instance ??= await ((await import('highs')).default as unknown as LoadHighs)());
    const t0 = performance.now();
    const res = highs.solve(toLpFormat(problem), {
      output_flag: false,
      mip_rel_gap: 0,
      mip_abs_gap: 0,
      primal_feasibility_tolerance: 1e-9,
      mip_feasibility_tolerance: 1e-9,
      ...(opts.timeLimitMs !== undefined ? { time_limit: opts.timeLimitMs / 1000 } : {}),
    });
    const solveMs = performance.now() - t0;
    const status = highsOutcome(res.Status);
    const cols = res.Columns as Record<string, { Primal?: number }>;
    const hasPrimal = status !== 'infeasible' && Object.values(cols).some((c) => typeof c.Primal === 'number');
    const choice = hasPrimal ? choiceFromBinaries(problem, (name) => cols[name]?.Primal ?? 0) : null;
    return { status, choice, solver: 'highs', solveMs };
  },
};

/**
 * Our status for HiGHS's: optimal, infeasible or a time limit; any other (seen: 'Unknown' when
 * costs reached HiGHS's 1e20 infinity, before costs were scaled) is one line, exit 5.
 */
export function highsOutcome(status: string): Solution['status'] {
  if (status === 'Optimal') return 'optimal';
  if (status === 'Infeasible') return 'infeasible';
  if (status === 'Time limit reached') return 'time_limit';
  throw new FieldError((n) => `HiGHS ended with status '${status}', which says neither optimal nor infeasible; try ${n('solver')} exact`, EXIT_SOLVER_FAILED);
}
