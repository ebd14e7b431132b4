import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cnnTable, limpqLikeIndicators, llmTable, LLM_BITS } from '../bench/instances.js';
import type { LayerTable } from '../src/model/layer.js';
import type { LoadedIndicators } from '../src/indicators/indicators.js';
import type { ObjectiveTable } from '../src/search/objective-table.js';
import { formulate } from '../src/search/problem.js';
import { solveExact } from '../src/search/solvers/exact.js';
import { highsSolver } from '../src/search/solvers/highs.js';
import type { SolveProgress } from '../src/search/solvers/solver.js';
import { evaluateChoice } from '../src/search/verify.js';
import { runCli, tempDir } from './support.js';

// Issue 15 (exact search at scale) at sizes that run in CI time; full sizes are in `npm run bench`.
// Issue 22 item 1 (the exact solver crashed on 1,000+ layer tables).

const dir = tempDir();

/** A layer table and its indicators as files, as a user would give them. */
function writeInputs(name: string, table: LayerTable, ind: LoadedIndicators) {
  const model = join(dir, `${name}.json`), indicators = join(dir, `${name}-ind.json`);
  const row = (l: LayerTable['fixed'][number] | LayerTable['layers'][number]) => ({ name: l.name, params: l.params, macs: l.macs });
  writeFileSync(model, JSON.stringify({ model: name, layers: table.layers.map(row), fixed: table.fixed.map((l) => ({ ...row(l), weight_bits: l.weightBits, act_bits: l.actBits })) }));
  writeFileSync(indicators, JSON.stringify({ weight: ind.weight, act: ind.act, layer_name: ind.layerNames }));
  return { model, indicators };
}

test('LLM-like tables (q, k, v, o, up, gate, down): exact equals HiGHS at zero gap', async () => {
  for (const [layers, seed, wb, ab, cr] of [[56, 1, 4, 6, 6], [56, 2, 3, 4, 8], [112, 3, 5, 6, 5]]) {
    const table = llmTable(layers);
    const f = formulate(table, limpqLikeIndicators(table, seed), { bits: LLM_BITS, alpha: 2, bops: true, weightBits: wb, actBits: ab, cr });
    const mine = solveExact(f.problem), theirs = await highsSolver.solve(f.problem);
    const where = `${layers} layers, seed ${seed}, W${wb}A${ab}/CR${cr}`;
    assert.equal(mine.status, 'optimal', where);
    assert.equal(theirs.status, 'optimal', where);
    const a = evaluateChoice(f.problem, mine.choice!), b = evaluateChoice(f.problem, theirs.choice!);
    assert.ok(a.feasible, where);
    assert.ok(Math.abs(a.objective - b.objective) <= 1e-9 * a.objective || (!b.feasible && b.objective < a.objective), `${where}: exact ${a.objective}, HiGHS ${b.objective}`);
    // the multipliers give the LP bound: the optimum lies just above it
    assert.ok(mine.stats!.rootBound <= a.objective && a.objective - mine.stats!.rootBound < 1e-3 * a.objective, `${where}: bound ${mine.stats!.rootBound}`);
  }
});

test('weight-only tables (activations fixed, one size budget): exact equals HiGHS', async () => {
  for (const seed of [1, 2]) {
    const table = llmTable(140);
    const ind = limpqLikeIndicators(table, seed);
    const objective: ObjectiveTable = {
      kind: 'objective-table', path: 'weight-only.json', sha256: '0'.repeat(64), layerNames: ind.layerNames, weightOnly: true, actBits: 16,
      costs: Object.fromEntries(ind.layerNames.map((l) => [l, Object.fromEntries(LLM_BITS.map((w) => [`w${w}`, ind.weight[l][String(w)]]))])),
    };
    const f = formulate(table, objective, { bits: LLM_BITS, alpha: 0, bops: false, weightBits: 0, actBits: 0, maxSizeMb: 3000 + 500 * seed });
    assert.equal(f.problem.rows.length, 1);
    const mine = solveExact(f.problem), theirs = await highsSolver.solve(f.problem);
    assert.equal(mine.status, 'optimal');
    const a = evaluateChoice(f.problem, mine.choice!), b = evaluateChoice(f.problem, theirs.choice!);
    assert.ok(a.feasible && Math.abs(a.objective - b.objective) <= 1e-9 * a.objective, `seed ${seed}: exact ${a.objective}, HiGHS ${b.objective}`);
  }
});

test('a time limit returns the best policy found with a proven bound below the optimum', () => {
  const table = llmTable(448);
  const f = formulate(table, limpqLikeIndicators(table, 3), { bits: LLM_BITS, alpha: 2, bops: true, weightBits: 4, actBits: 6, cr: 6 });
  const full = solveExact(f.problem);
  assert.equal(full.status, 'optimal');
  const optimum = evaluateChoice(f.problem, full.choice!).objective;
  let limited = 0;
  for (const ms of [0, 2, 5]) {
    const r = solveExact(f.problem, { timeLimitMs: ms });
    if (r.status === 'optimal') continue; // a fast machine
    limited++;
    assert.equal(r.status, 'time_limit');
    assert.equal(r.limit, 'time');
    assert.ok(r.bound !== undefined && r.bound >= r.stats!.rootBound - 1e-12 && r.bound <= optimum + 1e-12, `bound ${r.bound}, optimum ${optimum}`);
    if (r.choice) {
      const e = evaluateChoice(f.problem, r.choice);
      assert.ok(e.feasible && e.objective >= optimum - 1e-12);
    }
  }
  assert.ok(limited > 0, 'no solve was stopped by the limit');
});

test('1,000 CNN-like layers: a policy and exit 0 or 4, never a crash; a memory limit gives the best policy with its gap or one line', () => {
  const table = cnnTable(1000, 1);
  const { model, indicators } = writeInputs('cnn-1000', table, limpqLikeIndicators(table, 1, [6, 5, 4, 3, 2]));
  const r = runCli(['search', '--model', model, '--indicators', indicators, '--time-limit', '20', '--json']);
  assert.ok(r.status === 0 || r.status === 4, `exit ${r.status}: ${r.stderr}`);
  assert.equal(r.stderr.includes('    at '), false, r.stderr);
  const o = JSON.parse(r.stdout);
  assert.equal(o.layers.length, 1000);
  for (const b of o.budgets) assert.ok(b.used <= b.limit * (1 + 1e-12), JSON.stringify(b));
  if (o.status === 'time_limit') assert.ok(o.bound <= o.objective && o.gap >= 0);

  const m = runCli(['search', '--model', model, '--indicators', indicators, '--memory-limit', '8', '--json']);
  assert.equal(m.status, 4, m.stderr);
  if (m.stdout) {
    const limited = JSON.parse(m.stdout);
    assert.equal(limited.status, 'time_limit');
    assert.equal(limited.limit, 'memory');
    assert.ok(limited.bound <= limited.objective && limited.objective <= o.objective * (1 + 0.01));
  } else {
    assert.match(m.stderr.trim(), /^mpq: exact solver: memory limit of 8 MB reached .*--solver highs$/);
  }
});

test('10,000 layers (a crash before): progress on stderr, stopped at --time-limit with the best policy and its gap, exit 4', () => {
  const table = cnnTable(10000, 1);
  const { model, indicators } = writeInputs('cnn-10000', table, limpqLikeIndicators(table, 1, [6, 5, 4, 3, 2]));
  const t0 = performance.now();
  const r = runCli(['search', '--model', model, '--indicators', indicators, '--time-limit', '2.5', '--json']);
  assert.equal(r.status, 4, r.stderr);
  assert.ok(performance.now() - t0 < 30_000);
  const lines = r.stderr.trim().split('\n');
  assert.ok(lines.length >= 1 && lines.every((l) => /^mpq: solving \d+\.\d s: round \d+, layer \d+ of the \d+ searched, [\d,]+ partial policies; bound [\d.]+, (best [\d.]+, gap ≤ [\d.e-]+%|no policy yet)$/.test(l)), r.stderr);
  const o = JSON.parse(r.stdout);
  assert.equal(o.status, 'time_limit');
  assert.ok(o.bound <= o.objective && o.gap < 1e-3, JSON.stringify({ bound: o.bound, objective: o.objective, gap: o.gap }));
});

test('progress is reported to the caller after the first second, with a bound that never decreases', () => {
  const table = cnnTable(3000, 2);
  const f = formulate(table, limpqLikeIndicators(table, 2, [6, 5, 4, 3, 2]), { bits: [6, 5, 4, 3, 2], alpha: 2, bops: true, weightBits: 3, actBits: 4, cr: 12.2 });
  const seen: SolveProgress[] = [];
  const r = solveExact(f.problem, { timeLimitMs: 1800, onProgress: (p) => seen.push(p) });
  if (r.status === 'optimal' && r.solveMs < 1000) return; // solved before any report was due
  assert.ok(seen.length > 0);
  for (const [i, p] of seen.entries()) {
    assert.ok(p.elapsedMs >= 1000);
    if (i > 0) assert.ok(p.bound >= seen[i - 1].bound && p.elapsedMs >= seen[i - 1].elapsedMs);
    if (p.best !== null) assert.ok(p.best >= p.bound);
  }
});
