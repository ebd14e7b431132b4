import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readPolicy } from '../src/export/policy-file.js';
import { readIndicators } from '../src/indicators/indicators.js';
import { zooLayerTable } from '../src/model/zoo.js';
import { formulate } from '../src/search/problem.js';
import { AccuracyReward } from '../src/search/rl/accuracy-reward.js';
import { REPO_ROOT, runCli, tempDir, writeTinySearchInputs } from './support.js';

// One tiny FP checkpoint of our own (200 digits, one epoch): the accuracy reward fine-tunes from it.
const dir = tempDir('mpq-rl-acc-');
const fp = join(dir, 'fp');
const trained = runCli(['train', '--model', 'mnist-cnn', '--epochs', '1', '--limit', '200', '--seed', '1', '--checkpoint', fp, '--no-progress']);
const HOLDOUT = 100;
const search = ['search', '--model', 'mnist-cnn', '--wb', '3', '--ab', '4', '--cr', '12.2', '--searcher', 'rl'];
const accuracy = [...search, '--reward', 'accuracy', '--from', fp, '--reward-steps', '2', '--reward-holdout', String(HOLDOUT)];

/** The curve's rows without the wall-time column, which no two runs share. */
function curveRows(path: string): string[][] {
  return readFileSync(path, 'utf8').trim().split('\n').map((line) => line.split(',').slice(0, -1));
}

test('rl --reward accuracy: every rollout within budget, one held-out top-1 per rollout, settings recorded, same seed → same run', () => {
  assert.equal(trained.status, 0, trained.stderr);
  const run = (out: string) => runCli([...accuracy, '--rollouts', '3', '--warmup', '1', '--seed', '5', '--rl-out', out, '--json']);
  const first = run(join(dir, 'a'));
  assert.equal(first.status, 0, first.stderr);
  const o = JSON.parse(first.stdout);
  assert.equal(o.status, 'feasible');
  assert.equal(o.solver, 'rl');
  for (const b of o.budgets) assert.ok(b.used <= b.limit * (1 + 1e-12), JSON.stringify(b));

  const rows = curveRows(join(dir, 'a', 'reward-curve.csv'));
  assert.deepEqual(rows[0], ['rollout', 'reward', 'best_reward', 'objective', 'feasible', 'noise', 'cached']);
  assert.equal(rows.length, 1 + 3, 'one row per rollout');
  let best = -Infinity;
  rows.slice(1).forEach(([rollout, reward, bestReward, , feasible], i) => {
    assert.equal(Number(rollout), i + 1);
    assert.equal(feasible, '1', 'the action wall brings every rollout within budget');
    const r = Number(reward);
    // top-1 over 100 held-out digits: a whole number of hundredths in [0, 1]
    assert.ok(r >= 0 && r <= 1, reward);
    assert.ok(Math.abs(r * HOLDOUT - Math.round(r * HOLDOUT)) < 1e-9, reward);
    best = Math.max(best, r);
    assert.equal(Number(bestReward), best, 'best_reward is the running maximum');
  });

  const record = JSON.parse(readFileSync(join(dir, 'a', 'rl-run.json'), 'utf8'));
  assert.equal(record.seed, 5);
  assert.equal(record.rollouts_done, 3);
  assert.equal(record.reward.kind, 'accuracy');
  assert.equal(record.reward.from, fp);
  assert.equal(record.reward.steps, 2);
  assert.equal(record.reward.finetune_images, 2 * 64);
  assert.equal(record.reward.holdout, HOLDOUT);
  assert.equal(record.reward.finetune_seed, 5);
  assert.equal(record.reward.fine_tunes + record.reward.cache_hits, 3);
  assert.equal(record.best.reward, best);
  assert.deepEqual(record.best.weight_bits, o.weight_bits);
  // --json carries the reward: its kind, the best reward, which is the best held-out top-1
  assert.deepEqual(o.rl, {
    rollouts: 3, rollouts_done: 3, warmup: 1, seed: 5,
    reward: { kind: 'accuracy', best, held_out_top1: best, holdout: HOLDOUT, fp_held_out_top1: record.reward.fp_top1 },
    // the policy's LIMPQ objective against the exact optimum of the same problem
    exact_objective: o.rl.exact_objective, exact_status: 'optimal', gap_to_exact: (o.objective - o.rl.exact_objective) / o.rl.exact_objective,
  });
  assert.ok(o.rl.exact_objective > 0 && o.rl.exact_objective <= o.objective);
  assert.deepEqual(readPolicy(join(dir, 'a', 'best-policy.json')).layers.map((l) => l.actBits), o.act_bits);

  const second = run(join(dir, 'b'));
  assert.equal(second.status, 0, second.stderr);
  const o2 = JSON.parse(second.stdout);
  assert.deepEqual([o2.weight_bits, o2.act_bits], [o.weight_bits, o.act_bits]);
  assert.deepEqual(curveRows(join(dir, 'b', 'reward-curve.csv')), rows);
});

test('rl --reward accuracy without --json: the best held-out top-1 reaches stdout (4 rollouts, warm-up by default 1)', () => {
  assert.equal(trained.status, 0, trained.stderr);
  const r = runCli([...accuracy, '--rollouts', '4', '--seed', '5', '--rl-out', join(dir, 'text')]);
  assert.equal(r.status, 0, r.stderr);
  const record = JSON.parse(readFileSync(join(dir, 'text', 'rl-run.json'), 'utf8'));
  assert.equal(record.warmup, 1);
  const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
  assert.ok(r.stdout.split('\n').includes(
    `rl: 4 of 4 rollouts (1 warm-up, seed 5), reward accuracy: best held-out top-1 ${pct(record.best.reward)} on ${HOLDOUT} training images held out (FP ${pct(record.reward.fp_top1)})`,
  ), r.stdout);
});

test('accuracy reward: a policy seen before is not fine-tuned again; each fine-tune starts from the checkpoint', async () => {
  assert.equal(trained.status, 0, trained.stderr);
  const table = zooLayerTable('mnist-cnn', { fixFirstLast: true });
  const { problem } = formulate(table, readIndicators(join(REPO_ROOT, 'indicators', 'mnist-cnn.json')), { bits: [6, 5, 4, 3, 2], alpha: 2, bops: true, weightBits: 3, actBits: 4, cr: 0 });
  const reward = await AccuracyReward.create(problem, { model: 'mnist-cnn', from: fp, bits: [6, 5, 4, 3, 2], steps: 2, holdout: HOLDOUT, seed: 2, backend: 'wasm' });
  try {
    const a = problem.choices.map(() => 0);
    const first = await reward.score(a);
    assert.equal(first.cached, false);
    assert.ok(first.reward >= 0 && first.reward <= 1);
    // HAQ's signal on every layer: 0.1 per point of top-1 (in %) against full precision
    for (const r of first.layerRewards) assert.ok(Math.abs(r - 10 * (first.reward - reward.settings.fp_top1)) < 1e-12);
    assert.equal(first.layerRewards.length, problem.layerNames.length);
    const again = await reward.score(a);
    assert.deepEqual([again.cached, again.reward], [true, first.reward]);
    assert.equal(reward.fineTuneCount, 1);
    // fine-tuned again, from the restored checkpoint weights (not from the weights it left): the same top-1
    assert.equal((await reward.finetune(a)).heldOut, first.reward);
    assert.equal(reward.fineTuneCount, 2);
  } finally {
    reward.dispose();
  }
});

test('rl --reward accuracy: bad input is one line, exit 2', () => {
  assert.equal(trained.status, 0, trained.stderr);
  const { model, indicators } = writeTinySearchInputs(dir);
  const otherModel = join(dir, 'fp-other');
  cpSync(fp, otherModel, { recursive: true });
  const manifest = JSON.parse(readFileSync(join(otherModel, 'model.json'), 'utf8'));
  writeFileSync(join(otherModel, 'model.json'), JSON.stringify({ ...manifest, model: 'resnet20' }));
  const cases: [string[], RegExp][] = [
    [[...search, '--reward', 'accuracy'], /^mpq: --from: mnist-cnn has no weights of its own; give --from DIR/],
    [[...search, '--reward', 'top5', '--from', fp], /^mpq: --reward: unknown reward 'top5' \(choose from indicators, accuracy\)/],
    [[...search, '--from', fp], /^mpq: --from needs --reward accuracy/],
    [['search', '--model', 'mnist-cnn', '--reward', 'accuracy', '--from', fp], /^mpq: --reward needs --searcher rl/],
    [[...accuracy, '--reward-steps', '0'], /^mpq: --reward-steps: must be an integer ≥ 1/],
    [[...accuracy, '--backend', 'gpu'], /^mpq: --backend: 'gpu' is not one of/],
    [['search', '--model', model, '--indicators', indicators, '--searcher', 'rl', '--reward', 'accuracy', '--from', fp], /^mpq: --model .*tiny\.json: a layer table can be searched but not trained/],
    [[...search, '--reward', 'accuracy', '--from', join(dir, 'nothing')], /^mpq: --from .*nothing: no model.json \(not an mpq checkpoint directory\)/],
    [[...search, '--reward', 'accuracy', '--from', otherModel], /^mpq: --from .*fp-other: checkpoint is for model 'resnet20', not 'mnist-cnn'/],
  ];
  for (const [args, pattern] of cases) {
    const r = runCli(args);
    assert.equal(r.status, 2, `${args.join(' ')}: exit ${r.status}, stderr ${r.stderr}`);
    // the backend line is information, printed before errors found once the backend is up
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, `one line expected: ${r.stderr}`);
    assert.match(lines[0], pattern);
  }
});
