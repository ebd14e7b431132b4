import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, tempDir, writeTinySearchInputs, type CliRun } from './support.js';

// Issue 15: any sensitivity as the objective (--objective-table), wired points optional (--keep-wired),
// and a fourth budget row (--cost-table).

const dir = tempDir();
const { model, indicators } = writeTinySearchInputs(dir);
const ind = JSON.parse(readFileSync(indicators, 'utf8')) as { weight: Record<string, Record<string, number>>; act: Record<string, Record<string, number>>; layer_name: string[] };
const BITS = [6, 5, 4, 3, 2];
const layerParams: Record<string, number> = Object.fromEntries(JSON.parse(readFileSync(model, 'utf8')).layers.map((l: { name: string; params: number }) => [l.name, l.params]));

function write(name: string, data: unknown): string {
  const p = join(dir, name);
  writeFileSync(p, JSON.stringify(data));
  return p;
}

function json(r: CliRun) {
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr.includes('    at '), false, r.stderr);
  return JSON.parse(r.stdout);
}

function oneLine(r: CliRun, pattern: RegExp) {
  assert.equal(r.status, 2, `exit ${r.status}: ${r.stderr}`);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, pattern);
}

// LIMPQ's objective written out as a table: cost(w, a) = act[a] + 2·weight[w]
const limpqTable = write('limpq-objective.json', {
  meta: { method: 'LIMPQ indicators, alpha 2' },
  layers: Object.fromEntries(ind.layer_name.map((l) => [l, Object.fromEntries(BITS.flatMap((w) => BITS.map((a) => [`w${w}a${a}`, ind.act[l][String(a)] + 2 * ind.weight[l][String(w)]])))])),
});

test('an objective table of LIMPQ\'s costs gives the indicators\' policy in search, sweep and the RL searcher', () => {
  for (const extra of [[], ['--searcher', 'rl', '--rollouts', '12', '--warmup', '4', '--seed', '3']]) {
    const byIndicators = json(runCli(['search', '--model', model, '--indicators', indicators, '--wb', '3', '--ab', '4', '--cr', '10', ...extra, '--json']));
    const byTable = json(runCli(['search', '--model', model, '--objective-table', limpqTable, '--wb', '3', '--ab', '4', '--cr', '10', ...extra, '--json']));
    assert.deepEqual([byTable.weight_bits, byTable.act_bits], [byIndicators.weight_bits, byIndicators.act_bits]);
    assert.ok(Math.abs(byTable.objective - byIndicators.objective) < 1e-12);
    assert.equal(byTable.scored_by, 'objective-table');
    assert.equal(byTable.alpha, null);
  }
  const out = join(dir, 'sweep');
  const r = runCli(['sweep', '--model', model, '--objective-table', limpqTable, '--wb', '2', '3', '4', '--ab', '4', '--cr', '0', '10', '--out', out]);
  assert.equal(r.status, 0, r.stderr);
  const points = JSON.parse(readFileSync(join(out, 'sweep.json'), 'utf8')).points as { wb: number; cr: number; objective: number | null }[];
  for (const p of points) {
    const alone = runCli(['search', '--model', model, '--indicators', indicators, '--wb', String(p.wb), '--ab', '4', '--cr', String(p.cr), '--json']);
    const o = JSON.parse(alone.stdout);
    assert.equal(p.objective === null ? null : +p.objective.toPrecision(12), o.objective === null ? null : +o.objective.toPrecision(12), JSON.stringify(p));
  }
});

test('a weight-only objective table (HAWQ-V3: trace x perturbation): activations at act_bits, the optimum of the table under the budget', () => {
  const trace: Record<string, number> = { c1: 3, c2: 0.5, c3: 1.2, c4: 8 };
  // perturbation ‖Q(w) − w‖² of a uniform quantizer falls by 4x per bit
  const table = write('hawq.json', { act_bits: 8, layers: Object.fromEntries(Object.entries(trace).map(([l, t]) => [l, Object.fromEntries(BITS.map((w) => [`w${w}`, t * 4 ** -w * layerParams[l]]))])) });
  const o = json(runCli(['search', '--model', model, '--objective-table', table, '--no-bops', '--cr', '10', '--json']));
  assert.deepEqual(o.act_bits, [8, 8, 8, 8]);
  // brute force over the 5^4 weight policies within the size budget
  const names = Object.keys(trace);
  const fixedBits = 8 * (100 + 200);
  const limit = (32 * (Object.values(layerParams).reduce((s, p) => s + p, 0) + 300)) / 10 - fixedBits;
  let best = Infinity;
  const visit = (i: number, size: number, cost: number) => {
    if (size > limit) return;
    if (i === names.length) { best = Math.min(best, cost); return; }
    for (const w of BITS) visit(i + 1, size + w * layerParams[names[i]], cost + trace[names[i]] * 4 ** -w * layerParams[names[i]]);
  };
  visit(0, 0, 0);
  assert.ok(Math.abs(o.objective - best) <= 1e-12 * best, `${o.objective} vs brute force ${best}`);
  const a4 = json(runCli(['search', '--model', model, '--objective-table', write('hawq-a4.json', { ...JSON.parse(readFileSync(table, 'utf8')), act_bits: 4 }), '--no-bops', '--cr', '10', '--json']));
  assert.deepEqual(a4.act_bits, [4, 4, 4, 4]);
});

test('wired points in an objective table are left out and reported; --keep-wired keeps them', () => {
  const costs = JSON.parse(readFileSync(limpqTable, 'utf8'));
  // c3 at W2A6 made cheaper than W3A6: a wired point
  costs.layers.c3.w2a6 = costs.layers.c3.w3a6 * 0.5;
  const table = write('wired.json', costs);
  const base = ['search', '--model', model, '--objective-table', table, '--no-bops', '--cr', '12', '--json'];
  const dropped = json(runCli(base));
  assert.ok(dropped.removed.some((w: { layer: string; kind: string; bits: number; at_bits: number }) => w.layer === 'c3' && w.kind === 'weight' && w.bits === 2 && w.at_bits === 6), JSON.stringify(dropped.removed));
  const kept = json(runCli([...base, '--keep-wired']));
  assert.equal(kept.removed.length, 0);
  const c3 = kept.layers.find((l: { name: string }) => l.name === 'c3');
  assert.deepEqual([c3.weight_bits, c3.act_bits], [2, 6], 'the kept wired point is the cheapest choice of c3 that fits');
  assert.ok(kept.objective < dropped.objective);
  // the same flag for LIMPQ's indicators
  const wiredInd = { ...ind, weight: { ...ind.weight, c3: { ...ind.weight.c3, '2': ind.weight.c3['3'] * 0.5 } } };
  const indPath = write('wired-ind.json', wiredInd);
  assert.equal(json(runCli(['search', '--model', model, '--indicators', indPath, '--cr', '10', '--json'])).removed.length, 1);
  assert.equal(json(runCli(['search', '--model', model, '--indicators', indPath, '--cr', '10', '--keep-wired', '--json'])).removed.length, 0);
});

test('bad objective tables and flags: one line naming the file, field or flag', () => {
  const base = ['search', '--model', model];
  oneLine(runCli([...base, '--objective-table', write('mixed.json', { layers: { c1: { w4a4: 1, w4: 2 } } })]), /mixed\.json: layers: keys mix w<W>a<A> and w<W>/);
  oneLine(runCli([...base, '--objective-table', write('badkey.json', { layers: { c1: { w4x4: 1 } } })]), /badkey\.json: layers\.c1\.w4x4|badkey\.json: .*keys look like w4a8/);
  oneLine(runCli([...base, '--objective-table', write('actbits.json', { act_bits: 8, layers: { c1: { w4a4: 1 } } })]), /actbits\.json: act_bits: only a weight-only table/);
  const partial = JSON.parse(readFileSync(limpqTable, 'utf8'));
  delete partial.layers.c2.w5a3;
  oneLine(runCli([...base, '--objective-table', write('partial.json', partial)]), /partial\.json: layers\['c2'\]: no entry 'w5a3'/);
  const extra = JSON.parse(readFileSync(limpqTable, 'utf8'));
  extra.layers.c9 = extra.layers.c1;
  oneLine(runCli([...base, '--objective-table', write('extra.json', extra)]), /extra\.json: does not match model 'tiny'.*c9/);
  oneLine(runCli([...base, '--objective-table', write('nan.json', { layers: { c1: { w4a4: 'x' } } })]), /nan\.json: layers\.c1\.w4a4: /);
  oneLine(runCli([...base, '--objective-table', join(dir, 'missing.json')]), /missing\.json: no such objective table file/);
  oneLine(runCli([...base, '--objective-table', limpqTable, '--indicators', indicators]), /--objective-table .* --indicators: give one of them/);
  oneLine(runCli([...base, '--indicators', indicators, '--cost-table', limpqTable]), /--cost-table needs --max-cost/);
});

test('a fourth budget row: --cost-table with --max-cost (e.g. energy) holds with BitOps, size and latency', () => {
  const energy = write('energy.json', { unit: 'mJ', layers: Object.fromEntries(ind.layer_name.map((l, i) => [l, Object.fromEntries(BITS.flatMap((w) => BITS.map((a) => [`w${w}a${a}`, (i + 1) * w * a * 0.001])))])) });
  const latency = write('latency.json', { unit: 'ms', layers: Object.fromEntries(ind.layer_name.map((l, i) => [l, Object.fromEntries(BITS.flatMap((w) => BITS.map((a) => [`w${w}a${a}`, (4 - i) * (w + a) * 0.01])))])) });
  const table = JSON.parse(readFileSync(energy, 'utf8')).layers;
  const free = json(runCli(['search', '--model', model, '--indicators', indicators, '--latency-table', latency, '--max-latency', '100', '--json']));
  const spent = (o: { layers: { name: string; weight_bits: number; act_bits: number }[] }) => o.layers.reduce((s, l) => s + table[l.name][`w${l.weight_bits}a${l.act_bits}`], 0);
  const budget = spent(free) * 0.8;
  const o = json(runCli(['search', '--model', model, '--indicators', indicators, '--latency-table', latency, '--max-latency', '100', '--cost-table', energy, '--max-cost', String(budget), '--json']));
  assert.deepEqual(o.budgets.map((b: { name: string }) => b.name), ['bitops', 'size', 'latency', 'cost']);
  assert.ok(spent(o) <= budget + 1e-12, `${spent(o)} > ${budget}`);
  assert.ok(o.objective >= free.objective);
  const glpk = json(runCli(['search', '--model', model, '--indicators', indicators, '--latency-table', latency, '--max-latency', '100', '--cost-table', energy, '--max-cost', String(budget), '--solver', 'glpk', '--json']));
  assert.ok(Math.abs(glpk.objective - o.objective) < 1e-9);
});
