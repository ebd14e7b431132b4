import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { LayerTable } from '../model/layer.js';
import { budgetRows, formulate, type BudgetRow, type FormulatedSearch, type ObjectiveSource, type Problem } from './problem.js';
import { runSearch } from './search.js';
import { solverByName } from './solvers/index.js';
import { rowTolerance, type Solver, type SolveStatus } from './solvers/solver.js';
import { evaluateChoice } from './verify.js';
import { FieldError } from '../util/errors.js';
import { bitopsTargetBits, loadSearchInputs, searchOptions, withCostTables, type BudgetPoint, type CommonFlags, type InputSpec } from './spec.js';

/** One solved point of a sweep. */
export interface SweepResult {
  /** the point's index in the sweep's grid */
  index: number;
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
  /** the grid index of the point whose proven outcome this is (see SolvedOptima) */
  reusedFrom?: number;
  reason?: string;
  /** no other point has both a lower-or-equal objective and BitOps (one of them lower) */
  paretoBitops: boolean;
  /** likewise for objective and model size */
  paretoSize: boolean;
}

/** A point of a sweep with its index in the sweep's grid. */
export interface IndexedPoint {
  index: number;
  point: BudgetPoint;
}

/**
 * A sweep's points in groups (see `loosestFirst`), handed out one group at a time to every thread
 * that solves them: `next` is a counter shared by all (on a SharedArrayBuffer when threads share it),
 * so a thread that finishes early takes more groups, and a worker that starts late takes fewer.
 */
export interface PointGroups {
  groups: IndexedPoint[][];
  next: Int32Array;
}

export function pointGroups(groups: IndexedPoint[][], shared: boolean): PointGroups {
  return { groups, next: new Int32Array(shared ? new SharedArrayBuffer(4) : new ArrayBuffer(4)) };
}

/**
 * Solve groups of points until none is left, each point on a problem formulated from the inputs
 * loaded once, answering from earlier optima where they apply.
 */
export async function solvePoints(
  table: LayerTable, ind: ObjectiveSource, common: CommonFlags, work: PointGroups, solver: string,
  take: (index: number, r: SweepResult) => void,
): Promise<void> {
  const optima = new SolvedOptima();
  // Points differ only in their rows' limits: formulate once per set of rows, then swap limits in.
  const formulated = new Map<string, FormulatedSearch>();
  let solved = 0;
  for (let g = Atomics.add(work.next, 0, 1); g < work.groups.length; g = Atomics.add(work.next, 0, 1)) {
    for (const { index, point } of work.groups[g]) {
      const options = searchOptions(common, point);
      const rows = budgetRows(table, options);
      const rowNames = rows.map((r) => r.name).join();
      let f = formulated.get(rowNames);
      if (f) f = { ...f, problem: { ...f.problem, rows } };
      else formulated.set(rowNames, (f = formulate(table, ind, options)));
      const reuse = { from: undefined as number | undefined };
      const r = await runSearch(table, f, optima.solver(solverByName(solver), index, reuse), bitopsTargetBits(common, point));
      take(index, {
        index,
        point,
        status: r.status,
        objective: r.objective,
        bitops: r.bitops,
        compressionRatio: r.compressionRatio,
        sizeMb: r.sizeMb,
        weightBits: r.objective === null ? null : r.layers.map((l) => l.weightBits),
        actBits: r.objective === null ? null : r.layers.map((l) => l.actBits),
        solveMs: r.solveMs,
        ...(reuse.from !== undefined ? { reusedFrom: reuse.from } : {}),
        ...(r.reason ? { reason: r.reason } : {}),
        paretoBitops: false,
        paretoSize: false,
      });
      if (++solved % 16 === 0) await new Promise((resolve) => setImmediate(resolve)); // let signals (Ctrl-C) and messages through
    }
  }
}

/** A solved point's budget limits and its optimum (null: proven infeasible). */
interface KnownOutcome {
  index: number;
  limits: Map<BudgetRow['name'], number>;
  choice: number[] | null;
  /** the optimum's use of each row by name (a row's use does not depend on the budgets) */
  use: Map<BudgetRow['name'], number>;
}

/**
 * The proven outcomes of the points solved so far. A policy optimal under some budgets is optimal
 * under any tighter budgets it still fits, since the tighter problem's policies are a subset of
 * the looser one's; and budgets tighter than infeasible ones are infeasible. On the 1,000-point
 * ResNet-50 bench sweep 461 points are answered this way (a third of the solving time). All
 * problems must come from one formulation (the same choices and costs; see `solvePoints`).
 */
export class SolvedOptima {
  private readonly known: KnownOutcome[] = [];

  /** `known`'s budgets contain this problem's, and its optimum (if any) fits them. */
  private static applies(known: KnownOutcome, problem: Problem): boolean {
    for (const [name, limit] of known.limits) {
      const row = problem.rows.find((r) => r.name === name);
      if (!row || row.limit > limit) return false;
    }
    if (known.choice === null) return true;
    // a row the solved point did not have (an unlimited budget there): its use under this problem
    if (problem.rows.some((r) => !known.use.has(r.name))) SolvedOptima.noteUse(known.use, problem, known.choice);
    return problem.rows.every((r) => known.use.get(r.name)! <= r.limit + rowTolerance(r.limit));
  }

  find(problem: Problem): KnownOutcome | null {
    return this.known.find((known) => SolvedOptima.applies(known, problem)) ?? null;
  }

  add(index: number, problem: Problem, choice: number[] | null): void {
    const use = new Map<BudgetRow['name'], number>();
    if (choice) SolvedOptima.noteUse(use, problem, choice);
    this.known.push({ index, limits: new Map(problem.rows.map((r) => [r.name, r.limit])), choice, use });
  }

  /** The choice's use of each of the problem's rows, by row name. */
  private static noteUse(use: Map<BudgetRow['name'], number>, problem: Problem, choice: number[]): void {
    evaluateChoice(problem, choice).use.forEach((u, k) => use.set(problem.rows[k].name, u));
  }

  /** `inner`, answering from known outcomes first and remembering what it proves. */
  solver(inner: Solver, index: number, reuse: { from?: number }): Solver {
    return {
      name: inner.name,
      solve: async (problem, opts) => {
        const t0 = performance.now();
        const known = this.find(problem);
        if (known) {
          reuse.from = known.index;
          return { status: known.choice ? 'optimal' : 'infeasible', choice: known.choice, solver: inner.name, solveMs: performance.now() - t0 };
        }
        const sol = await inner.solve(problem, opts);
        if (sol.status === 'optimal' || sol.status === 'infeasible') this.add(index, problem, sol.status === 'optimal' ? sol.choice : null);
        return sol;
      },
    };
  }
}

/**
 * Point indices with the loosest budgets first: descending limits, row by row (bitops, size,
 * latency; a point without a row is unlimited there). A point whose budgets contain another's sorts
 * before it, so its outcome is known when the other is solved. Grouped by the first row's limit:
 * most reuse is between points that share it (441 of 461 on the bench sweep: the same BitOps,
 * different compression ratios), so a thread takes whole groups.
 */
export function loosestFirst(table: LayerTable, common: CommonFlags, points: BudgetPoint[]): number[][] {
  const names: BudgetRow['name'][] = ['bitops', 'size', 'latency', 'cost'];
  const keys = points.map((p) => {
    const rows = budgetRows(table, searchOptions(common, p));
    return names.map((name) => rows.find((r) => r.name === name)?.limit ?? Infinity);
  });
  const order = points.map((_, i) => i).sort((a, b) => {
    for (let k = 0; k < names.length; k++) if (keys[a][k] !== keys[b][k]) return keys[b][k] - keys[a][k];
    return a - b;
  });
  const groups: number[][] = [];
  for (const i of order) {
    const last = groups[groups.length - 1];
    if (last && keys[last[0]][0] === keys[i][0]) last.push(i);
    else groups.push([i]);
  }
  return groups;
}

/**
 * Mark the Pareto fronts of objective against BitOps and of objective against size. (Against both
 * at once every optimal point of a budget sweep is on the front by construction: a point beaten on
 * all three would have been feasible, and better, for the other's budgets.) Points with equal
 * figures are all kept.
 */
export function markPareto(results: SweepResult[]): void {
  const solved = results.filter((r) => r.objective !== null);
  const bitops = paretoFront(solved, (x) => x.bitops!), size = paretoFront(solved, (x) => x.sizeMb!);
  for (const r of solved) {
    r.paretoBitops = bitops.has(r);
    r.paretoSize = size.has(r);
  }
}

/**
 * The points no other point beats, on objective against `cost` (as low or lower on both, lower on
 * one), in one pass by cost: a point is beaten by a cheaper point of objective as low, or by one of
 * equal cost and lower objective.
 */
function paretoFront(solved: SweepResult[], cost: (x: SweepResult) => number): Set<SweepResult> {
  const byCost = [...solved].sort((a, b) => cost(a) - cost(b));
  const front = new Set<SweepResult>();
  let leastCheaper = Infinity; // the least objective among points of lower cost
  for (let i = 0; i < byCost.length;) {
    let end = i, least = Infinity;
    for (; end < byCost.length && cost(byCost[end]) === cost(byCost[i]); end++) least = Math.min(least, byCost[end].objective!);
    for (const r of byCost.slice(i, end)) if (leastCheaper > r.objective! && least >= r.objective!) front.add(r);
    leastCheaper = Math.min(leastCheaper, least);
    i = end;
  }
  return front;
}

export interface SweepOptions {
  solver: string;
  /** threads that solve: this one and jobs - 1 workers */
  jobs: number;
  onResult?: (r: SweepResult, done: number) => void;
  /** the inputs, when the caller has loaded them already (workers load their own) */
  loaded?: { table: LayerTable; indicators: ObjectiveSource };
  /**
   * Work for this thread while the workers start solving, before it joins them (the CLI loads the
   * plot's modules then: after the sweep, the other core would sit idle while it did)
   */
  meanwhile?: () => Promise<unknown>;
}

/** Below this many points a sweep stays in one thread: starting workers costs more than it saves. */
const POINTS_PER_WORKER = 32;

/** At most one solving thread per core: more only queue for the cores, each with its own copy of the inputs. */
export function maxJobs(): number {
  return availableParallelism();
}

export function defaultJobs(points: number): number {
  return Math.max(1, Math.min(maxJobs(), Math.floor(points / POINTS_PER_WORKER)));
}

/**
 * Solve every point on inputs loaded once per thread, loosest budgets first, on `jobs` threads.
 * Results come back in grid order; the callback sees each as it is solved, so an interrupted sweep
 * keeps what it has.
 */
export async function runSweep(spec: InputSpec, common: CommonFlags, points: BudgetPoint[], opts: SweepOptions): Promise<SweepResult[]> {
  const results = new Array<SweepResult>(points.length);
  let done = 0;
  const take = (i: number, r: SweepResult) => {
    results[i] = r;
    opts.onResult?.(r, ++done);
  };
  const { table, indicators } = opts.loaded ?? await loadSearchInputs(spec);
  const full = await withCostTables(common);
  const groups = loosestFirst(table, full, points).map((g) => g.map((index) => ({ index, point: points[index] })));
  const work = pointGroups(groups, opts.jobs > 1);
  const { latencyTable: _latency, costTable: _cost, ...portable } = common; // functions do not cross threads
  // this thread solves too, with jobs - 1 workers, once it has done `meanwhile` (the workers load their inputs then)
  const workers = Array.from({ length: opts.jobs - 1 }, () => new Promise<void>((resolve, reject) => {
    const worker = new Worker(new URL('./sweep-worker.js', import.meta.url), {
      workerData: { spec, common: portable, work, solver: opts.solver },
    });
    worker.on('message', (m: { index: number; result: SweepResult }) => take(m.index, m.result));
    worker.on('error', (err) => reject(FieldError.revive(err))); // a worker's FieldError names its fields as the caller's own would
    worker.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`sweep worker exited with ${code}`))));
  }));
  for (const w of workers) w.catch(() => {}); // a failure is reported by Promise.all below, not as unhandled meanwhile
  if (workers.length > 0) await opts.meanwhile?.();
  await Promise.all([solvePoints(table, indicators, full, work, opts.solver, take), ...workers]);
  markPareto(results);
  return results;
}
