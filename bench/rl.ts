/**
 * The RL searcher against the exact optimum: LIMPQ's ResNet-50 indicators (read from ../shared,
 * never copied) and the zoo's mnist-cnn with its cached indicators, when present. One run per
 * model; the agent's schedule does not depend on the rollout count, so the best policy after 50
 * and 200 rollouts of a 600-rollout run is what a 50- or 200-rollout run returns. The action wall
 * on random actions alone (every rollout a warm-up one) is measured beside it, to show what the
 * learning adds.
 *
 *   node dist/bench/rl.js [--seed 0]
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { readIndicators, type LoadedIndicators } from '../src/indicators/indicators.js';
import type { LayerTable } from '../src/model/layer.js';
import { readLayerTable } from '../src/model/table-file.js';
import { zooLayerTable } from '../src/model/zoo.js';
import { formulate } from '../src/search/problem.js';
import { rlSearcher } from '../src/search/rl/searcher.js';
import { solveExact } from '../src/search/solvers/exact.js';
import { evaluateChoice } from '../src/search/verify.js';

const ROOT = resolve(fileURLToPath(import.meta.url), '../../..');
const REF = resolve(ROOT, '../shared/reference/limpq-resnet50');
const CHECKPOINTS = [50, 200, 600];

async function benchModel(label: string, table: LayerTable, ind: LoadedIndicators, seed: number): Promise<void> {
  const budget = { wb: 3, ab: 4, cr: 12.2 };
  const { problem } = formulate(table, ind, { bits: [6, 5, 4, 3, 2], alpha: 2, bops: true, ...budget });
  const point = `W${budget.wb}A${budget.ab}/CR${budget.cr}`;
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
      rollouts, warmup: learning ? 20 : rollouts, seed, table,
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

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const i = process.argv.indexOf('--seed');
  await benchRl(i > 0 ? Number(process.argv[i + 1]) : 0);
}
