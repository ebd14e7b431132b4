import { test } from 'node:test';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { budgetRows, formulate, type Problem } from '../src/search/problem.js';
import type { BudgetPoint, CommonFlags } from '../src/search/spec.js';
import { searchOptions } from '../src/search/spec.js';
import { loosestFirst, pointGroups, solvePoints, type SweepResult } from '../src/search/sweep.js';
import { solveExact } from '../src/search/solvers/exact.js';
import { glpkSolver } from '../src/search/solvers/glpk.js';
import { evaluateChoice } from '../src/search/verify.js';
import { Prng } from '../src/util/prng.js';
import { randomInstance } from './random-problems.js';

/** Problems with three budget rows of unrelated costs (as with a latency table). */
function threeRowProblem(seed: number): Problem {
  const rng = new Prng(seed);
  const n = 4 + rng.int(25);
  const choices = Array.from({ length: n }, () => Array.from({ length: 2 + rng.int(12) }, (_, j) => ({
    w: j, a: j, cost: rng.next(), use: [rng.int(100), rng.int(50) * 3, Math.round(rng.next() * 1000) / 100],
  })));
  const sums = [0, 1, 2].map((k) => choices.reduce((s, cs) => s + cs.reduce((t, c) => t + c.use[k], 0) / cs.length, 0));
  const rows = (['bitops', 'size', 'latency'] as const).map((name, k) => ({
    name, limit: sums[k] * (0.6 + 0.5 * rng.next()), fixedUse: 0, sources: [], toUnit: (v: number) => v, unit: '',
  }));
  return { layerNames: choices.map((_, i) => `l${i}`), choices, rows };
}

test('three budget rows: exact equals glpk.js on 60 random instances', async () => {
  let solved = 0;
  for (let seed = 0; seed < 60; seed++) {
    const p = threeRowProblem(seed);
    const mine = solveExact(p);
    const theirs = await glpkSolver.solve(p);
    assert.equal(mine.status, theirs.status, `seed ${seed}`);
    if (mine.status !== 'optimal') continue;
    solved++;
    const a = evaluateChoice(p, mine.choice!), b = evaluateChoice(p, theirs.choice!);
    assert.ok(a.feasible, `seed ${seed}: breaks ${a.violated}`);
    assert.ok(Math.abs(a.objective - b.objective) < 1e-9 || (!b.feasible && b.objective < a.objective), `seed ${seed}: ${a.objective} vs ${b.objective}`);
  }
  assert.ok(solved > 20, `solved ${solved}`);
});

test('a time limit returns time_limit with the best feasible policy found so far, or none', () => {
  // the slowest of 100 random instances (1000..1099): ~6 ms and three sweeps to prove its optimum,
  // so a limit of 0 ms runs out before the proof
  const { f } = randomInstance(1016);
  const r = solveExact(f.problem, { timeLimitMs: 0 });
  assert.equal(r.status, 'time_limit');
  const full = solveExact(f.problem);
  assert.equal(full.status, 'optimal');
  if (r.choice) {
    const found = evaluateChoice(f.problem, r.choice);
    assert.ok(found.feasible);
    assert.ok(found.objective >= evaluateChoice(f.problem, full.choice!).objective - 1e-9, 'no better than the optimum');
  }
});

test('one layer, one row: the cheapest choice that fits, and infeasible below the least use', () => {
  const p: Problem = {
    layerNames: ['only'],
    choices: [[{ w: 8, a: 8, cost: 1, use: [64] }, { w: 4, a: 4, cost: 2, use: [16] }, { w: 2, a: 2, cost: 5, use: [4] }]],
    rows: [{ name: 'bitops', limit: 20, fixedUse: 0, sources: [], toUnit: (v) => v, unit: 'G' }],
  };
  assert.deepEqual(solveExact(p).choice, [1]);
  p.rows[0].limit = 3;
  assert.equal(solveExact(p).status, 'infeasible');
  p.rows[0].limit = 64;
  assert.deepEqual(solveExact(p).choice, [0]);
});

test('sweeps reuse proven outcomes: loosest first, every point as if solved alone, on 40 random grids', async () => {
  let reused = 0, points = 0;
  for (let seed = 0; seed < 40; seed++) {
    const { table, ind, opts } = randomInstance(500 + seed);
    const common: CommonFlags = { bits: opts.bits, alpha: opts.alpha, bops: true };
    const lo = opts.bits[opts.bits.length - 1], hi = opts.bits[0];
    const grid: BudgetPoint[] = [];
    for (const wb of [lo, (lo + hi) / 2, hi]) for (const ab of [lo, hi]) for (const cr of [0, 32 / hi, 32 / ((lo + hi) / 2), 32 / lo]) grid.push({ weightBits: wb, actBits: ab, cr });
    const groups = loosestFirst(table, common, grid);
    const order = groups.flat();
    assert.deepEqual([...order].sort((a, b) => a - b), grid.map((_, i) => i), 'every point once');
    // a point whose budgets contain another's comes first
    const limits = grid.map((p) => budgetRows(table, searchOptions(common, p)));
    const contains = (a: number, b: number) => limits[a].every((r) => limits[b].some((q) => q.name === r.name && q.limit <= r.limit));
    for (let x = 0; x < order.length; x++) for (let y = x + 1; y < order.length; y++) {
      if (contains(order[y], order[x]) && !contains(order[x], order[y])) assert.fail(`seed ${seed}: point ${order[y]} contains ${order[x]} but comes later`);
    }
    const seen: SweepResult[] = [];
    const work = pointGroups(groups.map((g) => g.map((index) => ({ index, point: grid[index] }))), false);
    await solvePoints(table, ind, common, work, 'exact', (index, r) => (seen[index] = r));
    for (let i = 0; i < grid.length; i++) {
      const alone = solveExact(formulate(table, ind, searchOptions(common, grid[i])).problem);
      const r = seen[i];
      assert.equal(r.status, alone.status, `seed ${seed} point ${i}`);
      if (alone.status === 'optimal') {
        const f = formulate(table, ind, searchOptions(common, grid[i]));
        assert.equal(r.objective, evaluateChoice(f.problem, alone.choice!).objective, `seed ${seed} point ${i}`);
      }
      if (r.reusedFrom !== undefined) {
        reused++;
        assert.ok(contains(r.reusedFrom, i), `seed ${seed}: point ${i} reused a point whose budgets do not contain its own`);
      }
      points++;
    }
  }
  assert.ok(reused > points / 10, `reused ${reused} of ${points}`);
});

test('prepare() compiles the solver ahead: a fresh process then solves as one that did not prepare, also under a user\'s own V8 wasm flags', () => {
  // in child processes: this one has compiled the module already
  const here = dirname(fileURLToPath(import.meta.url));
  const program = `
    import { exactSolver, solveExact } from ${JSON.stringify(join(here, '../src/search/solvers/exact.js'))};
    import { randomInstance } from ${JSON.stringify(join(here, 'random-problems.js'))};
    const prepare = process.argv[1] === 'prepare';
    if (prepare) { exactSolver.prepare(); exactSolver.prepare(); }
    const out = [];
    for (let seed = 0; seed < 8; seed++) {
      const { f } = randomInstance(seed);
      const s = prepare ? await exactSolver.solve(f.problem) : solveExact(f.problem);
      out.push([s.status, s.choice]);
    }
    console.log(JSON.stringify(out));`;
  const run = (flags: string[], mode: string) => {
    const r = spawnSync(process.execPath, [...flags, '--input-type=module', '-e', program, mode], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout) as [string, number[] | null][];
  };
  const plain = run([], 'plain');
  assert.ok(plain.some(([status]) => status === 'optimal'));
  assert.deepEqual(run([], 'prepare'), plain);
  assert.deepEqual(run(['--liftoff-only'], 'prepare'), plain);
});
