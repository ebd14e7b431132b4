import { cpus } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { LayerTable } from '../model/layer.js';
import type { LoadedIndicators } from '../indicators/indicators.js';
import { formulate } from './problem.js';
import { runSearch } from './search.js';
import { solverByName } from './solvers/index.js';
import type { SolveStatus } from './solvers/solver.js';
import { loadSearchInputs, searchOptions, withLatencyTable, type BudgetPoint, type CommonFlags, type InputSpec } from './spec.js';

/** One solved point of a sweep. */
export interface SweepResult {
  point: BudgetPoint;
  status: SolveStatus;
  objective: number | null;
  /** G, whole model */
  bitops: number | null;
  compressionRatio: number | null;
  sizeMb: number | null;
  weightBits: number[] | null;
  actBits: number[] | null;
  solveMs: number;
  reason?: string;
  /** no other point has both a lower-or-equal objective and BitOps (one of them lower) */
  paretoBitops: boolean;
  /** likewise for objective and model size */
  paretoSize: boolean;
  /** on either front */
  pareto: boolean;
}

export async function solvePoint(
  table: LayerTable, ind: LoadedIndicators, common: CommonFlags, point: BudgetPoint, solver: string,
): Promise<SweepResult> {
  const r = await runSearch(table, formulate(table, ind, searchOptions(common, point)), solverByName(solver), common.bops ? point : null);
  return {
    point,
    status: r.status,
    objective: r.objective,
    bitops: r.bitops,
    compressionRatio: r.compressionRatio,
    sizeMb: r.sizeMb,
    weightBits: r.objective === null ? null : r.layers.map((l) => l.weightBits),
    actBits: r.objective === null ? null : r.layers.map((l) => l.actBits),
    solveMs: r.solveMs,
    ...(r.reason ? { reason: r.reason } : {}),
    paretoBitops: false,
    paretoSize: false,
    pareto: false,
  };
}

/**
 * Mark the Pareto fronts of objective against BitOps and of objective against size. (Against both
 * at once every optimal point of a budget sweep is on the front by construction: a point beaten on
 * all three would have been feasible, and better, for the other's budgets.) Points with equal
 * figures are all kept.
 */
export function markPareto(results: SweepResult[]): void {
  const solved = results.filter((r) => r.objective !== null);
  const onFront = (r: SweepResult, cost: (x: SweepResult) => number) => !solved.some((q) =>
    q !== r && q.objective! <= r.objective! && cost(q) <= cost(r) && (q.objective! < r.objective! || cost(q) < cost(r)));
  for (const r of solved) {
    r.paretoBitops = onFront(r, (x) => x.bitops!);
    r.paretoSize = onFront(r, (x) => x.sizeMb!);
    r.pareto = r.paretoBitops || r.paretoSize;
  }
}

export interface SweepOptions {
  solver: string;
  /** worker threads; 1 solves in this thread */
  jobs: number;
  onResult?: (r: SweepResult, done: number) => void;
  /** the inputs, when the caller has loaded them already (used in this thread only) */
  loaded?: { table: LayerTable; indicators: LoadedIndicators };
}

/** Below this many points a sweep stays in one thread: starting workers costs more than it saves. */
const POINTS_PER_WORKER = 32;

export function defaultJobs(points: number): number {
  return Math.max(1, Math.min(cpus().length, Math.floor(points / POINTS_PER_WORKER)));
}

/**
 * Solve every point on inputs loaded once per thread. Results come back in grid order; the
 * callback sees each as it is solved, so an interrupted sweep keeps what it has.
 */
export async function runSweep(spec: InputSpec, common: CommonFlags, points: BudgetPoint[], opts: SweepOptions): Promise<SweepResult[]> {
  const results = new Array<SweepResult>(points.length);
  let done = 0;
  const take = (i: number, r: SweepResult) => {
    results[i] = r;
    opts.onResult?.(r, ++done);
  };
  if (opts.jobs <= 1) {
    const { table, indicators } = opts.loaded ?? await loadSearchInputs(spec);
    const full = await withLatencyTable(common);
    for (let i = 0; i < points.length; i++) {
      take(i, await solvePoint(table, indicators, full, points[i], opts.solver));
      if (i % 16 === 15) await new Promise((r) => setImmediate(r)); // let signals (Ctrl-C) through
    }
  } else {
    const { latencyTable: _dropped, ...portable } = common; // functions do not cross threads
    await Promise.all(Array.from({ length: opts.jobs }, (_, w) => {
      const mine = points.map((_, i) => i).filter((i) => i % opts.jobs === w);
      return new Promise<void>((resolve, reject) => {
        const worker = new Worker(new URL('./sweep-worker.js', import.meta.url), {
          workerData: { spec, common: portable, points: mine.map((i) => points[i]), solver: opts.solver },
        });
        worker.on('message', (m: { index: number; result: SweepResult }) => take(mine[m.index], m.result));
        worker.on('error', reject);
        worker.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`sweep worker exited with ${code}`))));
      });
    }));
  }
  markPareto(results);
  return results;
}
