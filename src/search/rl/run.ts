import type { LayerSelection } from '../../model/graph-table.js';
import type { LayerTable } from '../../model/layer.js';
import type { BackendName } from '../../train/backend/index.js';
import type { Problem } from '../problem.js';
import type { SearchResult } from '../search.js';
import type { Solver } from '../solvers/solver.js';
import type { AccuracyReward } from './accuracy-reward.js';
import { DDPG_DEFAULTS } from './ddpg.js';
import { INDICATORS_REWARD_FORMULA, rewardCurveCsv, rlSearcher, type RolloutRecord } from './searcher.js';

/** How the agent's rollouts are scored: the indicator objective, or held-out top-1 after a short LSQ fine-tune. */
export type RlReward =
  | { kind: 'indicators' }
  | { kind: 'accuracy'; from?: string; steps: number; holdout: number; backend?: BackendName; dataDir?: string };

export interface RlRunOptions {
  /** the layer table `problem` was formulated from (the agent's state features) */
  table: LayerTable;
  problem: Problem;
  /** the candidate bit-widths of the search (the accuracy reward's model holds these) */
  bits: number[];
  rollouts: number;
  warmup: number;
  seed: number;
  reward: RlReward;
  /** the model as named (a file path for an imported model); default: the table's */
  model?: string;
  /** the search's fixed layers (the accuracy reward's model is built with the same) */
  layers?: LayerSelection;
  log?: (line: string) => void;
  onRollout?: (r: RolloutRecord) => void;
}

/** A DDPG search run: its solver, its reward curve and what it found so far, and its run record. */
export interface RlRun {
  /** hand it to runSearch like any solver */
  solver: Solver;
  /** one record per rollout done */
  curve: readonly RolloutRecord[];
  /** the accuracy reward's settings (held-out count, FP top-1), when it scores the rollouts */
  accuracy?: AccuracyReward;
  /** the best reward of a policy within budget (null before the first) */
  bestReward(): number | null;
  /** reward-curve.csv */
  curveCsv(): string;
  /** the run's size and its reward, snake_case (`mpq search --json`'s `rl`) */
  summary(): RlSummary;
  /** the same, one line */
  summaryLine(): string;
  /** rl-run.json: what reproduces the run (seed, reward and its settings, agent) and what it found */
  record(result: SearchResult, command: string): RlRunRecord;
  /** frees the accuracy reward's model and data */
  dispose(): void;
}

export interface RlSummary {
  rollouts: number;
  rollouts_done: number;
  warmup: number;
  seed: number;
  reward: { kind: RlReward['kind']; best: number | null; held_out_top1?: number | null; holdout?: number; fp_held_out_top1?: number };
}

export interface RlRunRecord {
  format: 'mpq-rl-run';
  version: 1;
  model: string;
  seed: number;
  rollouts: number;
  rollouts_done: number;
  warmup: number;
  reward: Record<string, unknown>;
  ddpg: typeof DDPG_DEFAULTS;
  best: { reward: number | null; objective: number; weight_bits: number[]; act_bits: number[] } | null;
  seconds: number;
  command: string;
  created_at: string;
}

/** Sets up the DDPG searcher with its reward (the training engine loads only for the accuracy reward). */
export async function startRlRun(o: RlRunOptions): Promise<RlRun> {
  const started = performance.now();
  let accuracy: AccuracyReward | undefined;
  if (o.reward.kind === 'accuracy') {
    const { AccuracyReward } = await import('./accuracy-reward.js');
    const r = o.reward;
    accuracy = await AccuracyReward.create(o.problem, {
      model: o.model ?? o.table.model, ...(o.layers !== undefined && { layers: o.layers }), ...(r.from !== undefined ? { from: r.from } : {}),
      bits: o.bits, steps: r.steps, holdout: r.holdout, seed: o.seed, backend: r.backend ?? 'auto', ...(r.dataDir !== undefined ? { dataDir: r.dataDir } : {}),
      ...(o.log && { log: o.log }),
    });
  }
  const curve: RolloutRecord[] = [];
  const solver = rlSearcher({
    rollouts: o.rollouts, warmup: o.warmup, seed: o.seed, ...(accuracy ? { reward: accuracy } : {}),
    onRollout: (r) => {
      curve.push(r);
      o.onRollout?.(r);
    },
  });
  const bestReward = (): number | null => {
    const last = curve[curve.length - 1];
    return last && Number.isFinite(last.bestReward) ? last.bestReward : null;
  };
  return {
    solver, curve, ...(accuracy && { accuracy }), bestReward,
    curveCsv: () => rewardCurveCsv(curve),
    summary: () => ({
      rollouts: o.rollouts, rollouts_done: curve.length, warmup: o.warmup, seed: o.seed,
      reward: {
        kind: o.reward.kind, best: bestReward(),
        ...(accuracy ? { held_out_top1: bestReward(), holdout: accuracy.settings.holdout, fp_held_out_top1: accuracy.settings.fp_top1 } : {}),
      },
    }),
    summaryLine: () => {
      const best = bestReward();
      const run = `rl: ${curve.length} of ${o.rollouts} rollouts (${o.warmup} warm-up, seed ${o.seed}), reward ${o.reward.kind}`;
      if (best === null) return `${run}: no policy within budget`;
      if (!accuracy) return `${run}: best reward ${best}`;
      const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
      return `${run}: best held-out top-1 ${pct(best)} on ${accuracy.settings.holdout} training images held out (FP ${pct(accuracy.settings.fp_top1)})`;
    },
    record: (result, command) => ({
      format: 'mpq-rl-run', version: 1, model: o.table.model, seed: o.seed, rollouts: o.rollouts, rollouts_done: curve.length, warmup: o.warmup,
      reward: accuracy
        ? { ...accuracy.settings, fine_tunes: accuracy.fineTuneCount, cache_hits: curve.filter((r) => r.cached).length }
        : { kind: 'indicators', formula: INDICATORS_REWARD_FORMULA },
      ddpg: DDPG_DEFAULTS,
      best: result.objective === null ? null : {
        reward: bestReward(), objective: result.objective,
        weight_bits: result.layers.map((l) => l.weightBits), act_bits: result.layers.map((l) => l.actBits),
      },
      seconds: +((performance.now() - started) / 1000).toFixed(1),
      command, created_at: new Date().toISOString(),
    }),
    dispose: () => accuracy?.dispose(),
  };
}
