import type { LayerTable } from '../../model/layer.js';
import { deriveSeed, Prng } from '../../util/prng.js';
import type { Problem } from '../problem.js';
import type { Solution, SolveOptions, Solver } from '../solvers/solver.js';
import { evaluateChoice } from '../verify.js';
import { DDPG_DEFAULTS, DdpgAgent } from './ddpg.js';
import { layerFeatures, STATIC_FEATURES } from './features.js';
import { PolicySpace } from './policy-space.js';

export interface RlOptions {
  /** episodes; each one sets every layer once */
  rollouts: number;
  /** first episodes with uniform random actions and no learning, to fill the replay buffer */
  warmup: number;
  seed: number;
  /** the layer table the problem was formulated from: the source of the state features */
  table: LayerTable;
  onRollout?: (r: RolloutRecord) => void;
}

export interface RolloutRecord {
  /** 1-based */
  rollout: number;
  /** −objective / unconstrained objective of the projected policy (penalised if it stayed infeasible) */
  reward: number;
  bestReward: number;
  /** objective of the projected policy */
  objective: number;
  feasible: boolean;
  /** σ of the exploration noise this rollout (0 during warm-up, whose actions are uniform) */
  noise: number;
}

/** HAQ's exploration: Gaussian noise of σ = 0.5 around μ(s) after warm-up, σ × 0.99 per rollout. */
const INITIAL_NOISE = 0.5;
const NOISE_DECAY = 0.99;
/** Reward taken off a rollout the action wall could not bring within budget, plus 10× its overshoot. */
const INFEASIBLE_PENALTY = 1;
/**
 * Most gradient steps per learning rollout. HAQ takes one per layer; a step costs tens of ms on
 * the tfjs cpu backend (op overhead, not arithmetic), so deep models get this many.
 */
const MAX_UPDATES_PER_ROLLOUT = 8;

/**
 * A DDPG searcher (HAQ / PocketFlow style) behind the Solver interface, so `runSearch` and all
 * output paths treat it like the ILP. One episode walks the layers in order; the state is HAQ's
 * layer features plus the previous action, the action in [0, 1] picks a (w, a) choice (see
 * PolicySpace). After the episode the policy goes through the action wall (projection onto the
 * budgets) and a greedy pass that spends the budget left; layer i's reward is −cost_i of that
 * policy over the unconstrained objective, so the rewards sum to the scaled −objective (the
 * LIMPQ indicator objective: instant and deterministic). The best projected policy is returned
 * with status 'feasible': within every budget, not proven optimal.
 */
export function rlSearcher(opts: RlOptions): Solver {
  return {
    name: 'rl',
    solve: (problem, solveOpts) => solveRl(problem, opts, solveOpts ?? {}),
  };
}

async function solveRl(problem: Problem, opts: RlOptions, solveOpts: SolveOptions): Promise<Solution> {
  const t0 = performance.now();
  const deadline = solveOpts.timeLimitMs === undefined ? Infinity : t0 + solveOpts.timeLimitMs;
  const done = (status: Solution['status'], choice: number[] | null, stats: Record<string, number>): Solution => ({
    status, choice, solver: 'rl', solveMs: performance.now() - t0, stats,
  });
  const space = new PolicySpace(problem);
  const n = space.layers;
  if (space.rowAloneInfeasible()) return done('infeasible', null, { rollouts: 0 });
  if (n === 0) return done('optimal', [], { rollouts: 0 });

  const features = layerFeatures(opts.table, problem);
  const unconstrained = space.unconstrainedObjective();
  const unit = unconstrained > 0 ? unconstrained : 1;
  const agent = await DdpgAgent.create({ ...DDPG_DEFAULTS, stateSize: STATIC_FEATURES.length + 1, seed: deriveSeed(opts.seed, 1) });
  const rng = new Prng(deriveSeed(opts.seed, 2));
  let noise = INITIAL_NOISE;
  let best: number[] | null = null;
  let bestObjective = Infinity;
  let rollouts = 0;
  try {
    for (let r = 0; r < opts.rollouts && performance.now() < deadline; r++) {
      const warm = r < opts.warmup;
      const sigma = warm ? 0 : noise;
      const states: number[][] = [];
      const actions: number[] = [];
      let previous = 0;
      for (let i = 0; i < n; i++) {
        const state = [...features[i], previous];
        const action = warm ? rng.next() : clamp01(agent.act(state) + sigma * rng.normal());
        states.push(state);
        actions.push(action);
        previous = action;
      }
      const choice = actions.map((a, i) => space.choiceForAction(i, a));
      const feasible = space.project(choice);
      if (feasible) space.upgrade(choice);
      const objective = space.objective(choice);
      const penalty = feasible ? 0 : INFEASIBLE_PENALTY + 10 * space.overshoot(space.use(choice));

      for (let i = 0; i < n; i++) {
        // Learn from what the wall made of the action: keep it if it still picks the final
        // choice, else the middle of the final choice's quantile (AMC stores walled actions too).
        const q = space.order[i].indexOf(choice[i]);
        const m = space.order[i].length;
        const stored = space.choiceForAction(i, actions[i]) === choice[i] ? actions[i] : (q + 0.5) / m;
        const last = i === n - 1;
        const reward = -problem.choices[i][choice[i]].cost / unit - (last ? penalty : 0);
        agent.observe(states[i], stored, reward, last ? states[i] : states[i + 1], last);
      }
      if (!warm) {
        for (let u = 0; u < Math.min(n, MAX_UPDATES_PER_ROLLOUT); u++) agent.update();
        noise *= NOISE_DECAY;
      }
      if (feasible && evaluateChoice(problem, choice).feasible && objective < bestObjective) {
        best = choice;
        bestObjective = objective;
      }
      rollouts = r + 1;
      opts.onRollout?.({
        rollout: rollouts,
        reward: -objective / unit - penalty,
        bestReward: best ? -bestObjective / unit : -Infinity,
        objective,
        feasible,
        noise: sigma,
      });
    }
  } finally {
    agent.dispose();
  }
  const stats = { rollouts, bestObjective: best ? bestObjective : NaN };
  // Out of time or rollouts with nothing within budget (possible only when rows pull apart):
  // 'time_limit' with no policy, as the ILP solvers report it.
  if (rollouts < opts.rollouts || !best) return done('time_limit', best, stats);
  return done('feasible', best, stats);
}

function clamp01(x: number): number {
  return Math.min(1, Math.max(0, x));
}

/** The reward curve as CSV, one row per rollout. */
export function rewardCurveCsv(records: RolloutRecord[]): string {
  const lines = ['rollout,reward,best_reward,objective,feasible,noise'];
  for (const r of records) lines.push([r.rollout, r.reward, Number.isFinite(r.bestReward) ? r.bestReward : '', r.objective, r.feasible ? 1 : 0, r.noise].join(','));
  return lines.join('\n') + '\n';
}
