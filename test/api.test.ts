/**
 * The public API as a program uses it: every library name comes from the package entry
 * (src/index.ts) and nothing else; each group is called for real and checked against the CLI or
 * against another group (search ↔ sweep ↔ RL, write ↔ read, pack ↔ eval). The README's program
 * runs as written, importing the package by name.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as mpq from '../src/index.js';
import { REPO_ROOT, runCli, tempDir } from './support.js';

const BITS = [6, 5, 4, 3, 2];
const FLAGS = { bits: BITS, alpha: 2, bops: true };
const W3A4 = { weightBits: 3, actBits: 4, cr: 12.2 };
const SHIPPED_INDICATORS = join(REPO_ROOT, 'indicators/mnist-cnn.json');

/** `mpq search` on the shipped model and indicators at W3A4 / CR 12.2, --json. */
function cliSearch(extra: string[] = []) {
  const r = runCli(['search', '--bits', ...BITS.map(String), '--wb', '3', '--ab', '4', '--cr', '12.2', '--json', ...extra]);
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

test('errors: a FieldError names the option field to a program and whatever a namer says to the CLI', () => {
  const err = new mpq.FieldError((n) => `${n('numSample')}: must be a positive integer, got 0; see ${n('calib')}`);
  assert.ok(err instanceof mpq.UserError);
  assert.equal(err.message, 'numSample: must be a positive integer, got 0; see calib');
  assert.equal(err.named((f) => `--${f.toUpperCase()}`), '--NUMSAMPLE: must be a positive integer, got 0; see --CALIB');
  assert.equal(err.exitCode, 2);
  assert.deepEqual([mpq.EXIT_INFEASIBLE, mpq.EXIT_LIMIT, mpq.EXIT_SOLVER_FAILED], [3, 4, 5]);
});

test('layer tables and costs: zoo, ONNX and layer-table files; BitOps, size and compression ratio by one helper', async (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const zoo = mpq.zooLayerTable('mnist-cnn');
  const viaSearch = await mpq.searchLayerTable('mnist-cnn', {});
  assert.deepEqual(viaSearch.layers.map((l) => [l.name, l.macs, l.params]), zoo.layers.map((l) => [l.name, l.macs, l.params]));
  assert.deepEqual(zoo.fixed.map((l) => l.name), ['conv1', 'fc']);
  // a layer selection: everything searchable
  const all = await mpq.searchLayerTable('mnist-cnn', { fixFirstLast: false });
  assert.equal(all.layers.length, zoo.layers.length + zoo.fixed.length);
  // an ONNX file (a PyTorch export) gives a table of its convs and dense layers
  const onnx = await mpq.searchLayerTable(join(REPO_ROOT, 'test/fixtures/onnx/residual.onnx'), {});
  assert.ok(onnx.layers.length > 0 && onnx.layers.every((l) => l.macs > 0 && l.params > 0), JSON.stringify(onnx.layers));
  // a layer-table file, as the CLI's --model takes it
  const tableFile = join(dir, 'table.json');
  writeFileSync(tableFile, JSON.stringify({ model: 'two', layers: [{ name: 'a', macs: 1000, params: 10 }, { name: 'b', macs: 4000, params: 30 }] }));
  const two = mpq.readLayerTable(tableFile);
  assert.deepEqual(two.layers.map((l) => l.name), ['a', 'b']);
  assert.deepEqual((await mpq.searchLayerTable(tableFile, {})).layers, two.layers);

  // costs by hand: 1000·4·8 + 4000·2·8 BitOps, 10·4 + 30·2 bits, CR 32·40 / 100
  const c = mpq.costs([{ macs: 1000, params: 10, weightBits: 4, actBits: 8 }, { macs: 4000, params: 30, weightBits: 2, actBits: 8 }]);
  assert.deepEqual(c, { bitops: 96000, sizeBits: 100, macs: 5000, params: 40 });
  assert.equal(mpq.compressionRatio(c), 12.8);
  assert.equal(mpq.sizeBitsAtCompressionRatio(c.params, mpq.compressionRatio(c)), c.sizeBits);
  assert.equal(mpq.layerBitops(1000, 4, 8) + mpq.layerBitops(4000, 2, 8), c.bitops);
});

test('indicators: written and read back; formulate + runSearch find the policy `mpq search` finds, under every solver', async (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const shipped = mpq.readIndicators(SHIPPED_INDICATORS);
  const copy = join(dir, 'copy.json');
  mpq.writeIndicators(copy, { weight: shipped.weight, act: shipped.act, layer_name: shipped.layerNames, meta: { model: 'mnist-cnn' } });
  const indicators = mpq.readIndicators(copy);
  assert.deepEqual([indicators.weight, indicators.act, indicators.layerNames], [shipped.weight, shipped.act, shipped.layerNames]);

  const table = mpq.zooLayerTable('mnist-cnn');
  const f = mpq.formulate(table, indicators, mpq.searchOptions(FLAGS, W3A4));
  const expected = cliSearch();
  for (const solver of mpq.SOLVER_NAMES) {
    const r = await mpq.runSearch(table, f, mpq.solverByName(solver), mpq.bitopsTargetBits(FLAGS, W3A4));
    assert.equal(r.status, 'optimal', solver);
    assert.ok(Math.abs(r.objective! - expected.objective) <= 1e-9 * expected.objective, `${solver}: ${r.objective} vs ${expected.objective}`);
    assert.deepEqual([r.layers.map((l) => l.weightBits), r.layers.map((l) => l.actBits)], [expected.weight_bits, expected.act_bits], solver);
  }
  const r = await mpq.runSearch(table, f, mpq.solverByName('exact'), { weightBits: 3, actBits: 4 });
  // the report's figures are the costs helper's over the whole model at the policy
  const model = mpq.costs([...r.fixed, ...r.layers]);
  assert.equal(r.compressionRatio, mpq.compressionRatio(model));
  assert.equal(r.compressionRatio, expected.compression_ratio);
  assert.equal(r.bitops, model.bitops / 1e9);

  // a budget below what any policy reaches is infeasible, and says why
  const tight = await mpq.runSearch(table, mpq.formulate(table, indicators, mpq.searchOptions(FLAGS, { weightBits: 3, actBits: 4, cr: 40 })), mpq.solverByName('exact'), mpq.bitopsTargetBits(FLAGS, W3A4));
  assert.equal(tight.status, 'infeasible');
  assert.match(tight.reason!, /model size budget .* is below the smallest reachable/);
});

test('sweep and RL: a sweep point equals its single search; the DDPG agent stays within budget, no better than the optimum, and records its run', async () => {
  const table = mpq.zooLayerTable('mnist-cnn');
  const indicators = mpq.readIndicators(SHIPPED_INDICATORS);
  const points = [W3A4, { weightBits: 4, actBits: 4, cr: 8 }];
  const swept = await mpq.runSweep({ model: 'mnist-cnn', indicators: SHIPPED_INDICATORS, layers: {} }, FLAGS, points, { solver: 'exact', jobs: 1 });
  assert.equal(swept.length, 2);
  for (const [i, p] of points.entries()) {
    const single = await mpq.runSearch(table, mpq.formulate(table, indicators, mpq.searchOptions(FLAGS, p)), mpq.solverByName('exact'), mpq.bitopsTargetBits(FLAGS, p));
    assert.equal(swept[i].objective, single.objective);
    assert.deepEqual(swept[i].weightBits, single.layers.map((l) => l.weightBits));
  }

  const f = mpq.formulate(table, indicators, mpq.searchOptions(FLAGS, W3A4));
  const rollouts: number[] = [];
  const run = await mpq.startRlRun({ table, problem: f.problem, bits: BITS, rollouts: 12, warmup: 4, seed: 3, reward: { kind: 'indicators' }, onRollout: (r) => rollouts.push(r.rollout) });
  try {
    const r = await mpq.runSearch(table, f, run.solver, mpq.bitopsTargetBits(FLAGS, W3A4));
    assert.equal(r.status, 'feasible');
    assert.deepEqual(rollouts, Array.from({ length: 12 }, (_, i) => i + 1));
    assert.ok(r.objective! >= swept[0].objective! - 1e-12, `rl ${r.objective} below the optimum ${swept[0].objective}`);
    assert.ok(r.rows.every((row) => row.used! <= row.limit * (1 + 1e-12)), JSON.stringify(r.rows));
    const record = run.record(r, 'api test');
    assert.equal(record.format, 'mpq-rl-run');
    assert.deepEqual([record.seed, record.rollouts, record.rollouts_done, record.warmup], [3, 12, 12, 4]);
    assert.deepEqual(record.best?.weight_bits, r.layers.map((l) => l.weightBits));
    assert.equal(run.summary().reward.best, run.bestReward());
    assert.equal(run.curveCsv().trim().split('\n').length, 13); // header + a row per rollout
  } finally {
    run.dispose();
  }
});

test('policies: written, read back, exported as another tool\'s config', async (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const table = mpq.zooLayerTable('mnist-cnn');
  const indicators = mpq.readIndicators(SHIPPED_INDICATORS);
  const r = await mpq.runSearch(table, mpq.formulate(table, indicators, mpq.searchOptions(FLAGS, W3A4)), mpq.solverByName('exact'), mpq.bitopsTargetBits(FLAGS, W3A4));
  const path = join(dir, 'policy.json');
  mpq.writePolicy(path, mpq.policyFromSearch(table, indicators, FLAGS, W3A4, r, 'api test'));
  const policy = mpq.readPolicy(path);
  assert.deepEqual(policy.layers.map((l) => [l.name, l.weightBits, l.actBits]), r.layers.map((l) => [l.name, l.weightBits, l.actBits]));
  assert.equal(policy.compressionRatio, r.compressionRatio);
  // the CLI writes the same policy (but for where it was made and when)
  const cliPolicy = join(dir, 'cli.json');
  cliSearch(['--out', cliPolicy]);
  assert.deepEqual(mpq.readPolicy(cliPolicy).layers, policy.layers);
  const nni = JSON.parse(mpq.exportPolicy(policy, 'nni')) as Array<{ op_names: string[]; quant_bits: Record<string, number> }>;
  for (const l of policy.layers) {
    const entry = nni.find((e) => e.op_names.includes(l.name));
    assert.equal(entry?.quant_bits.weight, l.weightBits, l.name);
  }
  assert.ok(mpq.EXPORT_FORMATS.includes('limpq-yaml'));
});

test('train, pretrain, finetune, eval, pack, export and simulate through the entry: each stage reads the one before; a packed file scores what its checkpoint or simulation scores', async (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const small = { model: 'mnist-cnn', epochs: 1, seed: 0, limit: 64, progress: false };
  const fp = join(dir, 'fp');
  const epochs: number[] = [];
  const trained = await mpq.trainFullPrecision({ ...small, checkpoint: fp, onEpoch: (e) => epochs.push(e.epoch) });
  assert.deepEqual(epochs, [1]);
  assert.equal(trained.test.count, 64);
  assert.ok(existsSync(join(fp, 'model.json')), 'the checkpoint manifest');

  const out = join(dir, 'indicators.json');
  const pre = await mpq.pretrainIndicators({ ...small, from: fp, bits: [4, 2], out });
  const indicators = mpq.readIndicators(out);
  assert.deepEqual(indicators.layerNames, pre.indicators.layer_name);
  assert.deepEqual(Object.keys(indicators.weight.conv2).sort(), ['2', '4']);

  // search on the fresh indicators, then finetune at that policy
  const table = mpq.zooLayerTable('mnist-cnn');
  const r = await mpq.runSearch(table, mpq.formulate(table, indicators, mpq.searchOptions({ ...FLAGS, bits: [4, 2] }, { weightBits: 3, actBits: 4, cr: 0 })), mpq.solverByName('exact'), { weightBits: 3, actBits: 4 });
  assert.equal(r.status, 'optimal');
  const policyPath = join(dir, 'policy.json');
  mpq.writePolicy(policyPath, mpq.policyFromSearch(table, indicators, { ...FLAGS, bits: [4, 2] }, { weightBits: 3, actBits: 4, cr: 0 }, r, 'api test'));
  const ft = join(dir, 'ft');
  await assert.rejects(mpq.finetuneAtPolicy({ ...small, epochs: 0, from: fp, policyPath }),
    (e: Error) => e instanceof mpq.FieldError && e.message === 'epochs: must be a positive integer, got 0');
  const tuned = await mpq.finetuneAtPolicy({ ...small, from: fp, policyPath, checkpoint: ft });
  assert.deepEqual(r.layers.map((l) => tuned.policy[l.name]), r.layers.map((l) => ({ weightBits: l.weightBits, actBits: l.actBits })));

  // eval of the fine-tuned checkpoint: at its own policy, the score its fine-tune ended with
  const evaluated = await mpq.evaluateCheckpoint({ from: ft, limit: 64 });
  assert.equal(evaluated.test.top1, tuned.test.top1);
  assert.match(evaluated.mode, /at its policy/);

  // pack: option errors name the option fields, then the file scores what the checkpoint scores
  const packed = join(dir, 'model.mpqp');
  await assert.rejects(mpq.packCheckpoint({ from: ft, out: packed, numSample: 0 }), (e: Error) => e instanceof mpq.FieldError && e.message === 'numSample: must be a positive integer, got 0');
  const pack = await mpq.packCheckpoint({ from: ft, out: packed });
  assert.deepEqual(pack.written, [packed]);
  assert.equal(pack.size.fileBytes, readFileSync(packed).length);
  await assert.rejects(mpq.packCheckpoint({ from: ft, out: packed }), (e: Error) => e instanceof mpq.FieldError && /^out .*: already exists .*; give overwrite to replace it$/.test(e.message));
  const fromPacked = await mpq.evaluatePackedModel({ bytes: readFileSync(packed), path: packed, limit: 64 });
  assert.equal(fromPacked.test.top1, evaluated.test.top1);
  // every quantized layer's codes at its bits: the searched ones at the policy's, the fixed first and last at 8
  const byName = (rows: Array<[string, number]>) => rows.sort(([a], [b]) => a.localeCompare(b));
  assert.deepEqual(byName(mpq.readPacked(readFileSync(packed)).layers.map((l) => [l.name, l.bits])), byName([...r.fixed, ...r.layers].map((l) => [l.name, l.weightBits])));

  // export-model: ONNX at the checkpoint's own policy (QDQ), its compression ratio the search's over the exported layers
  const onnx = join(dir, 'model.onnx');
  const exported = await mpq.exportModelFile({ from: ft, out: onnx });
  assert.equal(exported.format, 'onnx');
  assert.ok(exported.policy?.startsWith(ft), `the policy kept in the checkpoint, not ${exported.policy}`);
  assert.equal(exported.files[0].bytes, readFileSync(onnx).length);
  assert.equal(exported.size.compressionRatio, mpq.compressionRatio(mpq.costs([...r.fixed, ...r.layers])));
  await assert.rejects(mpq.exportModelFile({ from: ft, out: join(dir, 'x.onnx'), fullPrecision: true, policyPath }),
    (e: Error) => e instanceof mpq.FieldError && e.message === 'fullPrecision: not with policyPath (one or the other)');

  // simulate one setting of the FP checkpoint, and pack it
  const setting = { quantType: 'channel' as const, weightBits: 8, inputBits: 8, inputSigned: false, calib: 'naive' as const, mergeBn: false, excludeFirstConv: false };
  const common = { from: fp, groupSize: 8, numSample: 2, calibEpoch: 1, batchSize: 64, seed: 7, limit: 64 };
  const sim = await mpq.runSimulation({ ...common, settings: [setting] });
  assert.equal(sim.rows.length, 1);
  assert.equal(sim.testCount, 64);
  const simOut = join(dir, 'sim.mpqp');
  const simPacked = await mpq.packSimulation({ ...common, setting, out: simOut });
  assert.equal(simPacked.size.fileBytes, readFileSync(simOut).length);
  assert.ok(simPacked.clipping && Object.keys(simPacked.clipping.clipped).length > 0);
  // a calibrated setting packs its thresholds: the file scores what the simulation scored
  const scored = await mpq.evaluatePackedModel({ bytes: readFileSync(simOut), path: simOut, limit: 64 });
  assert.equal(scored.test.top1, sim.rows[0].top1);
  await assert.rejects(mpq.packSimulation({ ...common, setting: { ...setting, inputBits: 1 }, out: join(dir, 'x.mpqp') }),
    (e: Error) => e instanceof mpq.FieldError && /^inputBits: /.test(e.message));
});

test('the README\'s program runs as written, importing the package by name, and writes the policy `mpq search` writes', (t) => {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Use mpq from a program'));
  const program = /```js\n([\s\S]*?)```/.exec(section)?.[1];
  assert.ok(program?.includes("from 'mpq'"), 'the section has a js block importing mpq');
  // a project of the user's: mpq installed in node_modules, the program beside the shipped indicators
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(REPO_ROOT, join(dir, 'node_modules/mpq'), 'dir');
  symlinkSync(join(REPO_ROOT, 'indicators'), join(dir, 'indicators'), 'dir');
  writeFileSync(join(dir, 'search.mjs'), program!);
  const run = spawnSync(process.execPath, ['search.mjs'], { cwd: dir, encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  const expected = cliSearch();
  const lines = run.stdout.trim().split('\n');
  assert.equal(lines[0], `objective ${expected.objective.toFixed(6)}, ${expected.bitops.toFixed(4)} GBitOps, compression ratio ${expected.compression_ratio.toFixed(2)}`);
  assert.deepEqual(lines.slice(1), expected.layers.map((l: { name: string; weight_bits: number; act_bits: number }) => `${l.name} W${l.weight_bits}A${l.act_bits}`));
  const written = mpq.readPolicy(join(dir, 'mnist-cnn-w3a4.json'));
  assert.deepEqual(written.layers.map((l) => l.weightBits), expected.weight_bits);
  assert.deepEqual(written.layers.map((l) => l.actBits), expected.act_bits);
  assert.equal(written.objective, expected.objective);
});
