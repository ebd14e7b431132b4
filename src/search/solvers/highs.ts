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
    const out = (status: Solution['status'], choice: number[] | null): Solution => ({ status, choice, solver: 'highs', solveMs });
    if (res.Status === 'Infeasible') return out('infeasible', null);
    const cols = res.Columns as Record<string, { Primal?: number }>;
    const hasPrimal = Object.values(cols).some((c) => typeof c.Primal === 'number');
    const choice = hasPrimal ? choiceFromBinaries(problem, (name) => cols[name]?.Primal ?? 0) : null;
    if (res.Status === 'Optimal') return out('optimal', choice);
    if (res.Status === 'Time limit reached') return out('time_limit', choice);
    throw new Error(`HiGHS ended with status '${res.Status}'`);
  },
};
