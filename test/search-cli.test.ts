import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readPolicy } from '../src/export/policy-file.js';
import { HAS_REFERENCE, REFERENCE_DIR, runCli, tempDir, writeTinySearchInputs, type CliRun } from './support.js';

// A small model of our own: 4 searchable layers, a fixed stem and classifier.
const dir = tempDir();
const { model, indicators } = writeTinySearchInputs(dir);
const base = ['search', '--model', model, '--indicators', indicators];

function json(r: CliRun) {
  assert.equal(r.stderr.includes('    at '), false, `stack trace: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** A usage error: exit 2, one line naming the thing, no stack trace. */
function usageError(args: string[], pattern: RegExp) {
  const r = runCli(args);
  assert.equal(r.status, 2, `${args.join(' ')}: exit ${r.status}, stderr ${r.stderr}`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line expected: ${r.stderr}`);
  assert.match(lines[0], pattern);
}

test('search --json: an optimal policy within its budgets', () => {
  const r = runCli([...base, '--wb', '4', '--ab', '4', '--cr', '6', '--json']);
  assert.equal(r.status, 0, r.stderr);
  const o = json(r);
  assert.equal(o.status, 'optimal');
  assert.equal(o.layers.length, 4);
  assert.deepEqual(o.weight_bits, o.layers.map((l: { weight_bits: number }) => l.weight_bits));
  assert.deepEqual(o.fixed.map((l: { name: string }) => l.name), ['stem', 'fc']);
  assert.ok(o.compression_ratio >= 6, `cr ${o.compression_ratio}`);
  for (const b of o.budgets) assert.ok(b.used <= b.limit + 1e-9, JSON.stringify(b));
  for (const key of ['objective', 'bitops', 'size_mb', 'solve_ms', 'solver', 'removed']) assert.ok(key in o, key);
  // the objective is the LIMPQ one, recomputed from the indicators
  const ind = JSON.parse(readFileSync(indicators, 'utf8'));
  const expected = o.layers.reduce((s: number, l: { name: string; weight_bits: number; act_bits: number }) =>
    s + ind.act[l.name][String(l.act_bits)] + 2 * ind.weight[l.name][String(l.weight_bits)], 0);
  assert.ok(Math.abs(o.objective - expected) < 1e-12);
});

test('every solver gives the same optimum', () => {
  const objectives = ['exact', 'glpk', 'highs'].map((s) => json(runCli([...base, '--wb', '3', '--ab', '3', '--cr', '8', '--solver', s, '--json'])).objective);
  assert.ok(Math.abs(objectives[0] - objectives[1]) < 1e-9 && Math.abs(objectives[0] - objectives[2]) < 1e-9, objectives.join(' '));
});

test('infeasible budgets exit 3 and say the smallest reachable figure', () => {
  const r = runCli([...base, '--wb', '1', '--ab', '1', '--cr', '0', '--json']);
  assert.equal(r.status, 3);
  const o = json(r);
  assert.equal(o.status, 'infeasible');
  assert.match(o.reason, /BitOps budget .* is below the smallest reachable/);
  const human = runCli([...base, '--no-bops', '--cr', '20']);
  assert.equal(human.status, 3);
  assert.match(human.stdout, /model size budget .* \(compression ratio 20\) is below the smallest reachable/);
});

test('absolute budgets and a latency table constrain the policy', () => {
  const loose = json(runCli([...base, '--no-bops', '--cr', '0', '--max-size-mb', '1', '--json']));
  assert.deepEqual(loose.weight_bits, [6, 6, 6, 6]);
  const tight = json(runCli([...base, '--no-bops', '--cr', '0', '--max-size-mb', '0.005', '--json']));
  assert.ok(tight.size_mb <= 0.005, String(tight.size_mb));
  assert.ok(tight.weight_bits.some((b: number) => b < 6));
  const bops = json(runCli([...base, '--no-bops', '--cr', '0', '--max-bitops', '0.01', '--json']));
  assert.ok(bops.bitops <= 0.01, String(bops.bitops));
  // latency: only c4 is slow at high bits; a budget that forces it down
  const table = join(dir, 'lat.json');
  const row = (slow: boolean) => Object.fromEntries([6, 5, 4, 3, 2].flatMap((w) => [6, 5, 4, 3, 2].map((a) => [`w${w}a${a}`, slow ? w * a : 0.1])));
  writeFileSync(table, JSON.stringify({ unit: 'ms', layers: { c1: row(false), c2: row(false), c3: row(false), c4: row(true) } }));
  const lat = json(runCli([...base, '--no-bops', '--cr', '0', '--latency-table', table, '--max-latency', '5', '--json']));
  const c4 = lat.layers.find((l: { name: string }) => l.name === 'c4');
  assert.ok(c4.weight_bits * c4.act_bits + 0.3 <= 5, JSON.stringify(c4));
  usageError([...base, '--latency-table', table], /--latency-table needs --max-latency/);
  writeFileSync(join(dir, 'lat-missing.json'), JSON.stringify({ layers: { c1: { w6a6: 1 } } }));
  usageError([...base, '--latency-table', join(dir, 'lat-missing.json'), '--max-latency', '3'], /lat-missing\.json: layers\['c1'\]: no entry 'w6a5'/);
});

test('--out writes a traceable policy; --export writes a fine-tune config', () => {
  const out = join(dir, 'policies', 'p.json');
  const yamlOut = join(dir, 'p.yaml');
  const r = runCli([...base, '--out', out, '--export', 'limpq-yaml', '--export-out', yamlOut]);
  assert.equal(r.status, 0, r.stderr);
  const p = readPolicy(out);
  assert.equal(p.layers.length, 4);
  assert.equal(p.indicators?.path, indicators);
  assert.match(p.indicators!.sha256, /^[0-9a-f]{64}$/);
  assert.equal(p.constraints?.cr, 12.2);
  assert.equal(p.seed, 3);
  assert.match(readFileSync(yamlOut, 'utf8'), /weight_bits:/);
  // no stray temp files
  assert.deepEqual(readdirSync(join(dir, 'policies')), ['p.json']);
});

test('without --indicators the cached file for the model is used', () => {
  const cwd = tempDir();
  mkdirSync(join(cwd, 'indicators'));
  writeFileSync(join(cwd, 'indicators', 'tiny.json'), readFileSync(indicators));
  const r = runCli(['search', '--model', model, '--json'], cwd);
  assert.equal(r.status, 0, r.stderr);
  assert.match(json(r).indicators, /indicators\/tiny\.json$/);
  usageError(['search', '--model', 'resnet18', '--bits', '4', '3'].concat([]), /no cached indicators/);
});

test('bad input: one line naming the flag or file, exit 2, no output file', () => {
  const out = join(dir, 'never.json');
  usageError([...base, '--bits'], /--bits/);
  usageError([...base, '--bits', '4', '4'], /--bits: 4 is given twice/);
  usageError([...base, '--bits', '0', '4'], /--bits: '0' is not a bit-width/);
  usageError([...base, '--bits', '40'], /--bits: '40' is not a bit-width/);
  usageError([...base, '--bits', 'x'], /--bits: 'x'/);
  usageError([...base, '--cr', '-1', '--out', out], /--cr: must be ≥ 0/);
  usageError([...base, '--wb', '0'], /--wb: must be > 0/);
  usageError([...base, '--max-size-mb', '0'], /--max-size-mb: must be > 0/);
  usageError([...base, '--alpha', 'two'], /--alpha: 'two' is not a number/);
  usageError([...base, '--solver', 'lp_solve'], /--solver: unknown solver 'lp_solve'/);
  usageError([...base, '--export', 'onnx'], /--export: unknown format 'onnx'/);
  usageError([...base, '--frobnicate'], /unknown option '--frobnicate'/);
  usageError(['search', '--model', 'resnet51', '--indicators', indicators], /--model: unknown model 'resnet51': neither a zoo model/);
  usageError(['search', '--model', model, '--indicators', join(dir, 'nope.pkl')], /nope\.pkl: no such indicators file/);
  usageError(['search', '--model', 'resnet18', '--indicators', indicators], /does not match model 'resnet18'/);
  usageError(['search', '--model', model, '--indicators', indicators, '--bits', '8', '4'], /has no indicator for 8 bits/);
  const badTable = join(dir, 'bad-table.json');
  writeFileSync(badTable, JSON.stringify({ layers: [{ name: 'c1', params: -3, macs: 1 }] }));
  usageError(['search', '--model', badTable, '--indicators', indicators], /bad-table\.json: layers\[0\]\.params: expected a count ≥ 0$/);
  writeFileSync(badTable, JSON.stringify({ layers: [{ name: 'c1', params: '3', macs: 1 }], fixed: 'none' }));
  usageError(['search', '--model', badTable, '--indicators', indicators], /bad-table\.json: layers\[0\]\.params: expected number, got "3" \(and 1 more problem\)$/);
  writeFileSync(badTable, JSON.stringify({ model: 'x' }));
  usageError(['search', '--model', badTable, '--indicators', indicators], /bad-table\.json: layers: missing$/);
  writeFileSync(badTable, JSON.stringify([{ name: 'c1', params: 3, macs: 1 }]));
  usageError(['search', '--model', badTable, '--indicators', indicators], /bad-table\.json: expected a JSON object \(a layer table\)$/);
  assert.equal(existsSync(out), false);
});

test('the LIMPQ reference through the CLI: published policy, exit 0', { skip: HAS_REFERENCE ? false : 'no reference data' }, () => {
  const r = runCli(['search', '--model', join(REFERENCE_DIR, 'layers-reference-arithmetic.json'), '--indicators', join(REFERENCE_DIR, 'importance_indicators_resnet50.pkl'),
    '--bits', '6', '5', '4', '3', '2', '--wb', '3', '--ab', '4', '--cr', '12.2', '--json']);
  assert.equal(r.status, 0, r.stderr);
  const o = json(r);
  const expected = JSON.parse(readFileSync(join(REFERENCE_DIR, 'expected-w3a4-cr12.2.json'), 'utf8'));
  assert.deepEqual(o.weight_bits, expected.weight_bits);
  assert.deepEqual(o.act_bits, expected.act_bits);
  assert.equal(o.removed.length, 2);
});

test('sweep: every combination, CSV + JSON + SVG, Pareto points marked', () => {
  const out = join(dir, 'sweep');
  const r = runCli(['sweep', '--model', model, '--indicators', indicators, '--wb', '2', '3', '4', '--ab', '3', '4', '--cr', '0', '8', '--out', out]);
  assert.equal(r.status, 0, r.stderr);
  const s = JSON.parse(readFileSync(join(out, 'sweep.json'), 'utf8'));
  assert.equal(s.points.length, 12);
  for (const p of s.points) for (const k of ['wb', 'ab', 'cr', 'status', 'objective', 'bitops', 'compression_ratio', 'pareto_bitops', 'pareto_size', 'pareto_both']) assert.ok(k in p, k);
  const solved = s.points.filter((p: { status: string }) => p.status === 'optimal');
  // the front of objective against BitOps: nobody beats a front point on both, every other point is beaten
  type Point = { objective: number; bitops: number; pareto_both: boolean; pareto_bitops: boolean; pareto_size: boolean };
  const beaten = (p: Point) => solved.some((q: Point) => q.objective <= p.objective && q.bitops <= p.bitops && (q.objective < p.objective || q.bitops < p.bitops));
  for (const p of solved as Point[]) {
    assert.equal(p.pareto_bitops, !beaten(p), JSON.stringify(p));
    assert.equal(p.pareto_both, p.pareto_bitops && p.pareto_size);
  }
  assert.ok(solved.some((p: Point) => p.pareto_bitops) && solved.some((p: Point) => !p.pareto_bitops));
  assert.equal(readFileSync(join(out, 'sweep.csv'), 'utf8').trim().split('\n').length, 13);
  assert.match(readFileSync(join(out, 'pareto.svg'), 'utf8'), /^<svg/);
  // the same sweep on two worker threads gives the same points
  const r2 = runCli(['sweep', '--model', model, '--indicators', indicators, '--wb', '2', '3', '4', '--ab', '3', '4', '--cr', '0', '8', '--out', out + '2', '--jobs', '2']);
  assert.equal(r2.status, 0, r2.stderr);
  const s2 = JSON.parse(readFileSync(join(out + '2', 'sweep.json'), 'utf8'));
  assert.deepEqual(s2.points.map((p: { objective: number }) => p.objective), s.points.map((p: { objective: number }) => p.objective));
});

test('search --w-bit-min/--w-bit-max/--equivalent-bits (PocketFlow): weight bits in range, average weight bits within budget, for both searchers', () => {
  const table = JSON.parse(readFileSync(model, 'utf8'));
  const params = new Map<string, number>(table.layers.map((l: { name: string; params: number }) => [l.name, l.params]));
  for (const searcher of [[], ['--searcher', 'rl', '--rollouts', '20', '--warmup', '5']]) {
    const r = runCli([...base, '--no-bops', '--cr', '0', '--equivalent-bits', '3.5', '--w-bit-min', '3', '--w-bit-max', '5', ...searcher, '--json']);
    assert.equal(r.status, 0, r.stderr);
    const o = json(r);
    const layers = o.layers as { name: string; weight_bits: number }[];
    for (const l of layers) assert.ok(l.weight_bits >= 3 && l.weight_bits <= 5, `${l.name}: W${l.weight_bits}`);
    const total = layers.reduce((s, l) => s + params.get(l.name)!, 0);
    const average = layers.reduce((s, l) => s + l.weight_bits * params.get(l.name)!, 0) / total;
    assert.ok(average <= 3.5 + 1e-12, `average weight bits ${average}`);
    assert.match(JSON.stringify(o.budgets), /equivalent bits 3\.5/);
  }
  // the ILP uses the budget: without it, the same search takes more bits
  const free = json(runCli([...base, '--no-bops', '--cr', '0', '--max-bitops', '1e6', '--w-bit-min', '3', '--w-bit-max', '5', '--json']));
  assert.ok(free.weight_bits.some((b: number) => b > 3), 'unconstrained search keeps some layers above 3 bits');
  usageError([...base, '--w-bit-min', '7', '--w-bit-max', '8'], /^mpq: --w-bit-min\/--w-bit-max: no candidate of --bits/);
  usageError([...base, '--w-bit-min', '5', '--w-bit-max', '3'], /^mpq: --w-bit-min 5 is above --w-bit-max 3/);
  usageError([...base, '--w-bit-max', 'x'], /^mpq: --w-bit-max: 'x' is not a bit-width in 2\.\.16/);
  usageError([...base, '--w-bit-min', '1'], /^mpq: --w-bit-min: '1' is not a bit-width in 2\.\.16/);
  usageError([...base, '--equivalent-bits', '0'], /^mpq: --equivalent-bits: must be > 0/);
});
