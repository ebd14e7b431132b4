import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { defaultWarmup } from '../src/cli/search-options.js';
import { readPolicy } from '../src/export/policy-file.js';
import type { Problem } from '../src/search/problem.js';
import { rlSearcher } from '../src/search/rl/searcher.js';
import { PolicySpace } from '../src/search/rl/policy-space.js';
import { solveExact } from '../src/search/solvers/exact.js';
import { evaluateChoice } from '../src/search/verify.js';
import { randomInstance } from './random-problems.js';
import { runCli, tempDir, writeTinySearchInputs } from './support.js';

/** A hand-made problem with the layer descriptors formulate() would give it. */
const described = (p: Problem): Problem => ({ ...p, layers: p.layerNames.map((name) => ({ name, params: 1, macs: 1 })) });

test('rl: every policy is within every budget and never beats the exact optimum (60 random problems)', async () => {
  for (let seed = 0; seed < 60; seed++) {
    const { f } = randomInstance(seed);
    // warm-up only: the guarantee comes from the action wall, whatever the actions
    const rl = await rlSearcher({ rollouts: 3, warmup: 3, seed }).solve(f.problem);
    const exact = solveExact(f.problem);
    if (exact.status === 'infeasible') {
      assert.equal(rl.status, 'infeasible', `seed ${seed}`);
      assert.equal(rl.choice, null);
      continue;
    }
    assert.equal(rl.status, 'feasible', `seed ${seed}`);
    const got = evaluateChoice(f.problem, rl.choice!);
    assert.ok(got.feasible, `seed ${seed}: over ${got.violated.join(', ')}`);
    const best = evaluateChoice(f.problem, exact.choice!).objective;
    assert.ok(got.objective >= best - 1e-9 * Math.abs(best), `seed ${seed}: rl ${got.objective} below the optimum ${best}`);
  }
});

test('rl: learning rollouts keep every budget too, and one seed gives one policy', async () => {
  for (const seed of [3, 11, 29]) {
    const { f } = randomInstance(seed);
    const run = () => rlSearcher({ rollouts: 5, warmup: 2, seed }).solve(f.problem);
    const [a, b] = [await run(), await run()];
    assert.deepEqual(a.choice, b.choice, `seed ${seed}`);
    if (a.choice) assert.ok(evaluateChoice(f.problem, a.choice).feasible, `seed ${seed}`);
    else assert.equal(a.status, 'infeasible');
  }
});

test('rl: the action wall reaches the budget from the most generous policy', () => {
  for (let seed = 100; seed < 130; seed++) {
    const { f } = randomInstance(seed);
    const space = new PolicySpace(f.problem);
    if (space.rowAloneInfeasible()) continue;
    const choice = space.order.map((o) => o[o.length - 1]);
    assert.ok(space.project(choice), `seed ${seed}`);
    assert.ok(evaluateChoice(f.problem, choice).feasible, `seed ${seed}`);
    const projected = space.objective(choice);
    space.upgrade(choice);
    assert.ok(evaluateChoice(f.problem, choice).feasible, `seed ${seed}: upgrade broke a budget`);
    assert.ok(space.objective(choice) <= projected, `seed ${seed}: upgrade made it worse`);
  }
});

test('rl: a budget below the least use is infeasible; rows that pull apart give no policy', async () => {
  const choice = (cost: number, use: number[]) => ({ w: 4, a: 4, cost, use });
  const row = (limit: number) => ({ name: 'bitops' as const, limit, fixedUse: 0, sources: ['test'], toUnit: (v: number) => v, unit: 'G' });
  const tight: Problem = { layerNames: ['a', 'b'], choices: [[choice(1, [2]), choice(2, [1])], [choice(1, [2]), choice(2, [1])]], rows: [row(1.5)] };
  const r1 = await rlSearcher({ rollouts: 2, warmup: 2, seed: 0 }).solve(described(tight));
  assert.equal(r1.status, 'infeasible');
  assert.equal(r1.choice, null);
  // each row alone can reach 0, but every choice uses 1 of one of them
  const apart: Problem = { layerNames: ['a'], choices: [[choice(1, [1, 0]), choice(1, [0, 1])]], rows: [row(0.5), { ...row(0.5), name: 'latency' }] };
  const r2 = await rlSearcher({ rollouts: 2, warmup: 2, seed: 0 }).solve(described(apart));
  assert.equal(r2.choice, null);
});

// The CLI on a tiny model of our own, as in search-cli.test.ts.
const dir = tempDir();
const { model, indicators } = writeTinySearchInputs(dir);
const base = ['search', '--model', model, '--indicators', indicators, '--wb', '4', '--ab', '4', '--cr', '6'];

test('mpq search --searcher rl: a policy within budget, reward curve and best policy written', () => {
  const out = join(dir, 'rl');
  const r = runCli([...base, '--searcher', 'rl', '--rollouts', '12', '--warmup', '4', '--seed', '7', '--rl-out', out, '--json']);
  assert.equal(r.status, 0, r.stderr);
  const o = JSON.parse(r.stdout);
  assert.equal(o.status, 'feasible');
  assert.equal(o.solver, 'rl');
  for (const b of o.budgets) assert.ok(b.used <= b.limit + 1e-9, JSON.stringify(b));
  const ilp = JSON.parse(runCli([...base, '--json']).stdout);
  assert.ok(o.objective >= ilp.objective - 1e-12, `rl ${o.objective} vs ILP ${ilp.objective}`);
  const curve = readFileSync(join(out, 'reward-curve.csv'), 'utf8').trim().split('\n');
  assert.equal(curve[0], 'rollout,reward,best_reward,objective,feasible,noise,cached,seconds');
  assert.equal(curve.length, 13);
  // the indicators reward is the objective over the unconstrained one, negated: best reward ↔ least objective
  const rows = curve.slice(1).map((line) => line.split(',').map(Number));
  const bestRow = rows.reduce((a, b) => (b[3] < a[3] ? b : a));
  assert.equal(bestRow[3], o.objective);
  assert.equal(rows[rows.length - 1][2], Math.max(...rows.map((r) => r[1])));
  for (const r of rows) assert.ok(Math.abs(r[1] / r[3] - bestRow[1] / bestRow[3]) < 1e-12, 'reward ∝ −objective');
  const policy = readPolicy(join(out, 'best-policy.json'));
  assert.deepEqual(policy.layers.map((l) => l.weightBits), o.weight_bits);
  assert.deepEqual(o.written, [join(out, 'reward-curve.csv'), join(out, 'rl-run.json'), join(out, 'best-policy.json')]);
  const record = JSON.parse(readFileSync(join(out, 'rl-run.json'), 'utf8'));
  assert.deepEqual([record.seed, record.rollouts, record.warmup, record.reward.kind], [7, 12, 4, 'indicators']);
  assert.deepEqual(record.best.weight_bits, o.weight_bits);
});

test('mpq search --searcher rl --rollouts 10: warm-up defaults to 10% of the rollouts; --json and the report carry the reward', () => {
  const r = runCli([...base, '--searcher', 'rl', '--rollouts', '10', '--seed', '3', '--rl-out', join(dir, 'rl10'), '--json']);
  assert.equal(r.status, 0, r.stderr);
  const o = JSON.parse(r.stdout);
  assert.equal(o.status, 'feasible');
  assert.deepEqual([o.rl.rollouts, o.rl.rollouts_done, o.rl.warmup, o.rl.seed], [10, 10, 1, 3]);
  const curve = readFileSync(join(dir, 'rl10', 'reward-curve.csv'), 'utf8').trim().split('\n').slice(1).map((line) => line.split(',').map(Number));
  // the best reward is the curve's last running best, and the warm-up rollout has no exploration noise (uniform actions)
  assert.deepEqual(o.rl.reward, { kind: 'indicators', best: curve[9]![2] });
  assert.deepEqual(curve.map((row) => row[5] === 0), [true, ...new Array(9).fill(false)]);
  assert.equal(JSON.parse(readFileSync(join(dir, 'rl10', 'rl-run.json'), 'utf8')).warmup, 1);
  const text = runCli([...base, '--searcher', 'rl', '--rollouts', '10', '--seed', '3']);
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, new RegExp(`\\nrl: 10 of 10 rollouts \\(1 warm-up, seed 3\\), reward indicators: best reward ${String(o.rl.reward.best).replace('.', '\\.')}\\n`));
  // the default keeps HAQ's 20 of 200, and the help says how it is chosen
  assert.equal(defaultWarmup(200), 20);
  assert.equal(defaultWarmup(25), 3);
  assert.match(runCli(['search', '--help']).stdout.replace(/\s+/g, ' '), /--warmup <n> rl: first episodes with random actions, before learning \(default: 10% of --rollouts, rounded up; 20 of 200\)/);
});

test('mpq search --searcher rl: the gap to the exact optimum of the same problem in --json and the report; plain progress lines off a terminal', () => {
  const ilp = JSON.parse(runCli([...base, '--json']).stdout);
  // 3 rollouts of seed 3 stop short of the optimum (seed 2 reaches it: below)
  const r = runCli([...base, '--searcher', 'rl', '--rollouts', '3', '--seed', '3', '--json']);
  assert.equal(r.status, 0, r.stderr);
  const o = JSON.parse(r.stdout);
  assert.equal(o.rl.exact_objective, ilp.objective);
  assert.equal(o.rl.exact_status, 'optimal');
  assert.ok(o.objective > ilp.objective);
  assert.ok(Math.abs(o.rl.gap_to_exact - (o.objective - ilp.objective) / ilp.objective) < 1e-12, `gap ${o.rl.gap_to_exact}`);
  // stderr is a pipe here: no bar, but lines a reader of a log can follow, the last at the end
  const lines = r.stderr.trim().split('\n');
  assert.match(lines[0], /^mpq: rl 1\/3 rollouts, best reward \S+, ETA /);
  assert.match(lines[lines.length - 1], /^mpq: rl 3\/3 rollouts, best reward -?[\d.]+, ETA /);
  const text = runCli([...base, '--searcher', 'rl', '--rollouts', '3', '--seed', '3']).stdout;
  assert.ok(text.includes(`\nrl: ${+(100 * o.rl.gap_to_exact).toPrecision(3)}% worse than the exact optimum (objective ${ilp.objective};`), text);
  const reached = runCli([...base, '--searcher', 'rl', '--rollouts', '3', '--seed', '2']).stdout;
  assert.ok(reached.includes(`\nrl: the policy is an exact optimum (objective ${ilp.objective})\n`), reached);
});

test('mpq search: bad searcher flags are one-line errors, exit 2', () => {
  const cases: [string[], RegExp][] = [
    [['--searcher', 'ga'], /--searcher: unknown searcher 'ga'/],
    [['--searcher', 'rl', '--rollouts', '0'], /--rollouts: must be an integer ≥ 1/],
    [['--searcher', 'rl', '--rollouts', 'many'], /--rollouts: 'many' is not a number/],
    [['--searcher', 'rl', '--warmup', '1.5'], /--warmup: must be an integer ≥ 0/],
    [['--searcher', 'rl', '--rollouts', '10', '--warmup', '11'], /--warmup: 11 is more than --rollouts 10/],
    [['--searcher', 'rl', '--seed', '-3'], /--seed: must be ≥ 0/],
    [['--searcher', 'rl', '--reward', 'loss'], /--reward: unknown reward 'loss' \(choose from indicators, accuracy\)/],
    [['--searcher', 'rl', '--reward-steps', '5'], /--reward-steps needs --reward accuracy/],
    [['--rollouts', '50'], /--rollouts needs --searcher rl/],
    [['--searcher', 'rl', '--solver', 'highs'], /--solver picks the ILP backend/],
  ];
  for (const [args, pattern] of cases) {
    const r = runCli([...base, ...args]);
    assert.equal(r.status, 2, `${args.join(' ')}: exit ${r.status}, stderr ${r.stderr}`);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, `one line expected: ${r.stderr}`);
    assert.match(lines[0], pattern);
  }
});
