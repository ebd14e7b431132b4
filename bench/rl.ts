/**
 * The RL searcher against the exact optimum: LIMPQ's ResNet-50 indicators (read from ../shared,
 * never copied) and the zoo's mnist-cnn with its cached indicators, when present. One run per
 * model; the agent's schedule does not depend on the rollout count, so the best policy after 50
 * and 200 rollouts of a 600-rollout run is what a 50- or 200-rollout run returns. The action wall
 * on random actions alone (every rollout a warm-up one) is measured beside it, to show what the
 * learning adds.
 *
 *   node dist/bench/rl.js [--seed 0]
 *
 * With --accuracy, instead: the accuracy reward on mnist-cnn at W3A4/CR12.2 (a few minutes, so not
 * part of `npm run bench`). The agent's best policy by held-out top-1 after a short LSQ fine-tune,
 * against the exact ILP's policy put through the very same fine-tune (same images, seed, steps);
 * both also scored on the test split, which the search never sees. Without --from, one FP epoch
 * is trained first (a fresh clone has no checkpoint).
 *
 *   node dist/bench/rl.js --accuracy [--from DIR] [--rollouts 30] [--reward-steps 20] [--reward-holdout 1000] [--seed 0]
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { readIndicators, type LoadedIndicators } from '../src/indicators/indicators.js';
import type { LayerTable } from '../src/model/layer.js';
import { readLayerTable } from '../src/model/table-file.js';
import { zooLayerTable } from '../src/model/zoo.js';
import { formulate } from '../src/search/problem.js';
import { AccuracyReward } from '../src/search/rl/accuracy-reward.js';
import { rlSearcher, type RolloutRecord } from '../src/search/rl/searcher.js';
import { trainFullPrecision } from '../src/train/run.js';
import { solveExact } from '../src/search/solvers/exact.js';
import { evaluateChoice } from '../src/search/verify.js';

const ROOT = resolve(fileURLToPath(import.meta.url), '../../..');
const REF = resolve(ROOT, '../shared/reference/limpq-resnet50');
const CHECKPOINTS = [50, 200, 600];

async function benchModel(label: string, table: LayerTable, ind: LoadedIndicators, seed: number): Promise<void> {
  const budget = { weightBits: 3, actBits: 4, cr: 12.2 };
  const { problem } = formulate(table, ind, { bits: [6, 5, 4, 3, 2], alpha: 2, bops: true, ...budget });
  const point = `W${budget.weightBits}A${budget.actBits}/CR${budget.cr}`;
  const exact = solveExact(problem);
  if (!exact.choice) {
    console.log(`rl ${label} ${point}: exact solver says ${exact.status}; nothing to compare`);
    return;
  }
  const optimum = evaluateChoice(problem, exact.choice).objective;
  for (const learning of [true, false]) {
    const rollouts = CHECKPOINTS[CHECKPOINTS.length - 1];
    const seen: { rollout: number; best: number; seconds: number }[] = [];
    const t0 = performance.now();
    let bestObjective = Infinity;
    const solver = rlSearcher({
      rollouts, warmup: learning ? 20 : rollouts, seed,
      onRollout: (r) => {
        if (r.feasible) bestObjective = Math.min(bestObjective, r.objective);
        if (CHECKPOINTS.includes(r.rollout)) seen.push({ rollout: r.rollout, best: bestObjective, seconds: (performance.now() - t0) / 1000 });
      },
    });
    const sol = await solver.solve(problem);
    if (!sol.choice || !evaluateChoice(problem, sol.choice).feasible) throw new Error(`rl ${label}: no feasible policy (${sol.status})`);
    const what = learning ? 'DDPG' : 'wall on random actions only';
    for (const s of seen) {
      const gap = (100 * (s.best - optimum)) / optimum;
      console.log(`rl ${label} ${point} ${what}: ${s.rollout} rollouts gap ${gap.toFixed(2)}% (objective ${+s.best.toFixed(4)} vs ${+optimum.toFixed(4)}), ${s.seconds.toFixed(1)} s`);
    }
  }
}

export async function benchRl(seed = 0): Promise<void> {
  const pkl = join(REF, 'importance_indicators_resnet50.pkl');
  if (existsSync(pkl)) await benchModel('resnet50', readLayerTable(join(REF, 'layers-reference-arithmetic.json')), readIndicators(pkl), seed);
  else console.log(`rl resnet50: skipped (no LIMPQ reference data at ${REF})`);
  const mnistIndicators = join(ROOT, 'indicators', 'mnist-cnn.json');
  if (existsSync(mnistIndicators)) await benchModel('mnist-cnn', zooLayerTable('mnist-cnn', { fixFirstLast: true }), readIndicators(mnistIndicators), seed);
  else console.log(`rl mnist-cnn: skipped (no ${mnistIndicators})`);
}

export interface AccuracyBenchOptions {
  seed: number;
  from?: string;
  rollouts: number;
  steps: number;
  holdout: number;
}

export async function benchRlAccuracy(o: AccuracyBenchOptions): Promise<void> {
  const mnistIndicators = join(ROOT, 'indicators', 'mnist-cnn.json');
  if (!existsSync(mnistIndicators)) {
    console.log(`rl accuracy mnist-cnn: skipped (no ${mnistIndicators})`);
    return;
  }
  const scratch = o.from === undefined ? mkdtempSync(join(tmpdir(), 'mpq-bench-rl-')) : undefined;
  try {
    let from = o.from;
    if (scratch) {
      from = join(scratch, 'fp');
      const t = await trainFullPrecision({ model: 'mnist-cnn', epochs: 1, seed: o.seed, checkpoint: from, progress: false });
      console.log(`rl accuracy mnist-cnn: trained an FP checkpoint first (1 epoch): test top-1 ${pct(t.test.top1)}, ${t.seconds.toFixed(0)} s`);
    }
    const table = zooLayerTable('mnist-cnn', { fixFirstLast: true });
    const bits = [6, 5, 4, 3, 2];
    const { problem } = formulate(table, readIndicators(mnistIndicators), { bits, alpha: 2, bops: true, weightBits: 3, actBits: 4, cr: 12.2 });
    const exact = solveExact(problem);
    if (!exact.choice) throw new Error(`rl accuracy: the exact solver says ${exact.status}`);
    const reward = await AccuracyReward.create(problem, { model: 'mnist-cnn', from: from!, bits, steps: o.steps, holdout: o.holdout, seed: o.seed });
    try {
      const s = reward.settings;
      console.log(`rl accuracy mnist-cnn W3A4/CR12.2: ${s.steps} fine-tune steps of ${s.batch_size} per policy, ${s.holdout} held-out training images, backend ${s.backend}; FP held-out top-1 ${pct(s.fp_top1)}`);
      const curve: RolloutRecord[] = [];
      const t0 = performance.now();
      const rl = await rlSearcher({ rollouts: o.rollouts, warmup: Math.min(10, o.rollouts), seed: o.seed, reward, onRollout: (r) => curve.push(r) }).solve(problem);
      const seconds = (performance.now() - t0) / 1000;
      if (!rl.choice || !evaluateChoice(problem, rl.choice).feasible) throw new Error(`rl accuracy: no feasible policy (${rl.status})`);
      const tuned = curve.filter((r) => !r.cached);
      console.log(`  ${curve.length} rollouts in ${seconds.toFixed(0)} s: ${tuned.length} fine-tuned (${mean(tuned.map((r) => r.seconds)).toFixed(1)} s each), ${curve.length - tuned.length} from the cache`);
      const policies: [string, number[]][] = [['DDPG best', rl.choice], ['exact ILP', exact.choice]];
      for (const [label, choice] of policies) {
        // one fine-tune scores both splits; it repeats the search's (same images and seed) exactly
        const { heldOut, others: [test] } = await reward.finetune(choice, [reward.testSet]);
        const { objective } = evaluateChoice(problem, choice);
        const bitsText = choice.map((j, i) => `W${problem.choices[i][j].w}A${problem.choices[i][j].a}`).join(' ');
        console.log(`  ${label}: held-out top-1 ${pct(heldOut)}, test top-1 ${pct(test)} (same fine-tune), indicator objective ${objective.toFixed(4)} [${bitsText}]`);
      }
    } finally {
      reward.dispose();
    }
  } finally {
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  }
}

const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const flag = (name: string): string | undefined => {
    const i = process.argv.indexOf(name);
    return i > 0 ? process.argv[i + 1] : undefined;
  };
  const seed = Number(flag('--seed') ?? 0);
  if (process.argv.includes('--accuracy')) {
    await benchRlAccuracy({
      seed, from: flag('--from'), rollouts: Number(flag('--rollouts') ?? 30),
      steps: Number(flag('--reward-steps') ?? 20), holdout: Number(flag('--reward-holdout') ?? 1000),
    });
  } else {
    await benchRl(seed);
  }
}
