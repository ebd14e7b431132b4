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
  /** how a projected policy is scored; default: the indicator objective (indicatorsReward) */
  reward?: RewardFunction;
  onRollout?: (r: RolloutRecord) => void;
}

/** What a reward function makes of one projected policy. */
export interface RewardScore {
  /** recorded in the curve and maximised by the search: higher is better */
  reward: number;
  /** the agent's per-layer rewards for this episode (what it learns from; one per layer) */
  layerRewards: number[];
  /** the score came from a cache of policies seen before */
  cached: boolean;
}

/** How rollouts are scored: the indicator objective (instant) or held-out accuracy (accuracy-reward.ts). */
export interface RewardFunction {
  readonly kind: 'indicators' | 'accuracy';
  /** tfjs backend the agent must share (the reward trains on it); absent: the agent's own */
  readonly backend?: string;
  /** Scores a policy within every budget (`choice` indexes problem.choices per layer). */
  score(choice: number[]): Promise<RewardScore>;
}

export const INDICATORS_REWARD_FORMULA =
  'reward = -objective / objective with every layer at its cheapest choice (LIMPQ indicators); layer i\'s transition gets -cost_i / that unit';

/**
 * The negative LIMPQ objective over the unconstrained one: layer i's reward is −cost_i / that
 * unit, so an episode's rewards sum to the scaled −objective. Also scores policies over budget.
 */
export function indicatorsReward(problem: Problem): RewardFunction {
  const space = new PolicySpace(problem);
  const unconstrained = space.unconstrainedObjective();
  const unit = unconstrained > 0 ? unconstrained : 1;
  return {
    kind: 'indicators',
    // −objective/unit, not the sum of the layers' rewards: exactly monotone in the objective
    score: async (choice) => ({
      reward: -space.objective(choice) / unit,
      layerRewards: choice.map((j, i) => -problem.choices[i][j].cost / unit),
      cached: false,
    }),
  };
}

export interface RolloutRecord {
  /** 1-based */
  rollout: number;
  /** the reward function's score of the projected policy (minus the penalty if it stayed infeasible) */
  reward: number;
  /** best reward of a policy within budget so far (−Infinity before the first) */
  bestReward: number;
  /** indicator objective of the projected policy */
  objective: number;
  feasible: boolean;
  /** σ of the exploration noise this rollout (0 during warm-up, whose actions are uniform) */
  noise: number;
  /** the reward came from the cache (accuracy: no fine-tune was run) */
  cached: boolean;
  /** wall time of this rollout */
  seconds: number;
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
 * budgets) and a greedy pass that spends the budget left, then the reward function scores it
 * (default: the LIMPQ indicator objective, instant and deterministic; or held-out accuracy after
 * a short fine-tune). The best-scoring projected policy (ties: the lower objective) is returned
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

  const features = layerFeatures(problem);
  const rewardFn = opts.reward ?? indicatorsReward(problem);
  const agent = await DdpgAgent.create({
    ...DDPG_DEFAULTS, stateSize: STATIC_FEATURES.length + 1, seed: deriveSeed(opts.seed, 1),
    ...(rewardFn.backend ? { backend: rewardFn.backend } : {}),
  });
  const rng = new Prng(deriveSeed(opts.seed, 2));
  let noise = INITIAL_NOISE;
  let best: number[] | null = null;
  let bestReward = -Infinity;
  let bestObjective = Infinity;
  let rollouts = 0;
  try {
    for (let r = 0; r < opts.rollouts && performance.now() < deadline; r++) {
      const started = performance.now();
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
      // an accuracy reward never fine-tunes a policy over budget: the penalty alone scores it
      const scored = feasible || rewardFn.kind === 'indicators'
        ? await rewardFn.score(choice)
        : { reward: 0, layerRewards: choice.map(() => 0), cached: false };

      for (let i = 0; i < n; i++) {
        // Learn from what the wall made of the action: keep it if it still picks the final
        // choice, else the middle of the final choice's quantile (AMC stores walled actions too).
        const q = space.order[i].indexOf(choice[i]);
        const m = space.order[i].length;
        const stored = space.choiceForAction(i, actions[i]) === choice[i] ? actions[i] : (q + 0.5) / m;
        const last = i === n - 1;
        const reward = scored.layerRewards[i] - (last ? penalty : 0);
        agent.observe(states[i], stored, reward, last ? states[i] : states[i + 1], last);
      }
      if (!warm) {
        for (let u = 0; u < Math.min(n, MAX_UPDATES_PER_ROLLOUT); u++) agent.update();
        noise *= NOISE_DECAY;
      }
      const better = scored.reward > bestReward || (scored.reward === bestReward && objective < bestObjective);
      if (feasible && better && evaluateChoice(problem, choice).feasible) {
        best = choice;
        bestReward = scored.reward;
        bestObjective = objective;
      }
      rollouts = r + 1;
      opts.onRollout?.({
        rollout: rollouts,
        reward: scored.reward - penalty,
        bestReward,
        objective,
        feasible,
        noise: sigma,
        cached: scored.cached,
        seconds: (performance.now() - started) / 1000,
      });
    }
  } finally {
    agent.dispose();
  }
  const stats = { rollouts, bestObjective: best ? bestObjective : NaN, bestReward: best ? bestReward : NaN };
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
  const lines = ['rollout,reward,best_reward,objective,feasible,noise,cached,seconds'];
  for (const r of records) {
    lines.push([
      r.rollout, r.reward, Number.isFinite(r.bestReward) ? r.bestReward : '', r.objective, r.feasible ? 1 : 0, r.noise,
      r.cached ? 1 : 0, +r.seconds.toFixed(3),
    ].join(','));
  }
  return lines.join('\n') + '\n';
}
