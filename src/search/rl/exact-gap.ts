import type { Problem } from '../problem.js';
import { solverByName } from '../solvers/index.js';
import { evaluateChoice } from '../verify.js';

/** How long the exact solve behind the RL searcher's gap may take (it takes milliseconds on the zoo's models). */
export const EXACT_GAP_TIME_LIMIT_MS = 10_000;

export interface ExactGap {
  /** the exact optimum's objective; null when the exact solver proved none within its time */
  exactObjective: number | null;
  /** (objective − optimum) / |optimum|: how much worse the agent's policy is (0: it found an optimum) */
  gap: number | null;
  /** the exact solve's status (`time_limit`: no proven optimum to compare with) */
  status: string;
}

/**
 * The agent's policy against the exact optimum of the same problem (the ILP, solved exactly), so an
 * RL run says how far from optimal its answer is.
 */
export async function gapToExact(problem: Problem, objective: number, timeLimitMs = EXACT_GAP_TIME_LIMIT_MS): Promise<ExactGap> {
  const sol = await solverByName('exact').solve(problem, { timeLimitMs });
  if (sol.status !== 'optimal' || !sol.choice) return { exactObjective: null, gap: null, status: sol.status };
  const exact = evaluateChoice(problem, sol.choice).objective;
  return { exactObjective: exact, gap: Math.max(0, objective - exact) / Math.max(Math.abs(exact), Number.MIN_VALUE), status: sol.status };
}
