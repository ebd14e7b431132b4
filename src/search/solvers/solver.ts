import type { Problem } from '../problem.js';

/** 'feasible': a policy within every budget from a heuristic searcher (rl), not proven optimal */
export type SolveStatus = 'optimal' | 'feasible' | 'infeasible' | 'time_limit';

/** What every solver returns: a choice index per layer (into Problem.choices[i]) and a status. */
export interface Solution {
  status: SolveStatus;
  /** null when no feasible choice was found */
  choice: number[] | null;
  solver: string;
  solveMs: number;
  /** solver-specific counters (nodes explored, root bound, …) */
  stats?: Record<string, number>;
  /** For a `time_limit` answer, when the solver gives one: a proven lower bound on the optimum's objective (the gap is measured against it). */
  bound?: number;
  /** what stopped a `time_limit` answer: the time or the memory limit */
  limit?: 'time' | 'memory';
}

/** Where a long solve is: reported about every quarter second after its first second. */
export interface SolveProgress {
  elapsedMs: number;
  /** the solver's own account, one line (e.g. round, depth, partial policies) */
  detail: string;
  /** the proven lower bound and the best objective found (null: none yet) */
  bound: number;
  best: number | null;
}

export interface SolveOptions {
  /** stop and report `time_limit` with the best policy found so far */
  timeLimitMs?: number;
  /** the exact solver's memory (default 2 GiB): past it, as a time limit */
  memoryLimitMb?: number;
  onProgress?: (p: SolveProgress) => void;
}

export interface Solver {
  name: string;
  solve(problem: Problem, opts?: SolveOptions): Promise<Solution>;
  /** Start, in the background, what the first solve would wait for (compiling), in a process about to load its inputs. */
  prepare?(): void;
}

/**
 * Budget rows hold exact integers for BitOps and size; latency costs are floats whose sums may
 * round. Allow only rounding-level slack, far below what a real violation looks like.
 */
export function rowTolerance(limit: number): number {
  return 1e-12 * Math.max(1, Math.abs(limit));
}

/**
 * A power of two that brings the most expensive policy's cost to (1/2, 1]: multiplying by it is
 * exact, so a solver working on scaled costs keeps every digit, and its arithmetic (hull cross
 * products, tolerances, HiGHS's 1e20 infinity) sees the same numbers whatever the magnitude of the
 * indicators or --alpha. Kept per choices array (a sweep's points share one).
 */
export function costScale(problem: Problem): number {
  let scale = scales.get(problem.choices);
  if (scale === undefined) {
    let total = 0;
    for (const cs of problem.choices) total += cs.reduce((m, c) => Math.max(m, Math.abs(c.cost)), 0);
    scale = total > 0 && Number.isFinite(total) ? 2 ** -Math.ceil(Math.log2(total)) : 1;
    scales.set(problem.choices, scale);
  }
  return scale;
}
const scales = new WeakMap<Problem['choices'], number>();
