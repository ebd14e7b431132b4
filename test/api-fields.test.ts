/**
 * One library, one vocabulary: a program calling the package entry with a bad option reads the
 * option field it gave (`dataDir`, `model`, `workers`), as a FieldError; the CLI, for the same
 * fault, prints the flag it took (`--data`, `--model`, `--workers`). Each case checks both.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import * as mpq from '../src/index.js';
import { REPO_ROOT, runCli, tempDir } from './support.js';

const dir = tempDir();
const FP = join(dir, 'fp');
const SMALL = { model: 'mnist-cnn', epochs: 1, seed: 0, limit: 64, progress: false };
const POLICY = join(REPO_ROOT, 'policies/mnist-cnn-w3a4-cr12.2.json');
const INDICATORS = join(REPO_ROOT, 'indicators/mnist-cnn.json');
test.before(async () => {
  await mpq.trainFullPrecision({ ...SMALL, checkpoint: FP });
});
test.after(() => rmSync(dir, { recursive: true, force: true }));

/** `call` throws, or rejects with, a FieldError whose message (as a program reads it) is or matches `message`. */
async function fieldError(call: () => unknown, message: string | RegExp): Promise<void> {
  await assert.rejects(async () => call(), (e: unknown) => {
    assert.ok(e instanceof mpq.FieldError, `not a FieldError: ${String(e)}`);
    if (typeof message === 'string') assert.equal(e.message, message);
    else assert.match(e.message, message);
    return true;
  });
}

/** The CLI's one line for the fault: exit 2, no stack, the message naming flags. */
function cliError(args: string[], message: string | RegExp): void {
  const r = runCli(args);
  assert.equal(r.status, 2, r.stderr);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  if (typeof message === 'string') assert.equal(lines[0], `mpq: ${message}`);
  else assert.match(lines[0], message);
}

test('model: an unknown model, both layer lists, no layer left to search, LIMPQ\'s MACs of a layer table', async () => {
  await fieldError(() => mpq.searchLayerTable('nosuch', {}), /^model: unknown model 'nosuch': neither a zoo model/);
  cliError(['search', '--model', 'nosuch'], /^mpq: --model: unknown model 'nosuch': neither a zoo model/);

  await fieldError(() => mpq.searchLayerTable('mnist-cnn', { fixed: ['conv1'], searchable: ['fc'] }), 'layers.fixed and layers.searchable: give one of them');
  cliError(['search', '--model', 'mnist-cnn', '--fixed', 'conv1', '--searchable', 'fc'], '--fixed and --searchable: give one of them');

  const all = ['conv1', 'conv2', 'conv3', 'conv4', 'conv5', 'fc'];
  await fieldError(() => mpq.searchLayerTable('mnist-cnn', { fixed: all }), /none is left to search \(layers\.searchable NAME… or layers\.fixFirstLast=false\)$/);
  cliError(['search', '--model', 'mnist-cnn', '--fixed', ...all], /none is left to search \(--searchable NAME… or --no-fix-first-last\)$/);

  const table = join(dir, 'table.json');
  writeFileSync(table, JSON.stringify({ model: 'two', layers: [{ name: 'a', macs: 1000, params: 10 }, { name: 'b', macs: 4000, params: 30 }] }));
  await fieldError(() => mpq.searchLayerTable(table, {}, { macs: 'limpq' }), `macs: ${table} is a layer table, which gives its own MACs`);
  cliError(['search', '--model', table, '--indicators', INDICATORS, '--limpq-macs'], `--limpq-macs: ${table} is a layer table, which gives its own MACs`);
});

test('search: indicators that name no model, an unknown solver, no budget (also thrown in a sweep\'s worker thread)', async () => {
  const anonymous = join(dir, 'anonymous.json');
  const { meta: _meta, ...rest } = JSON.parse(readFileSync(INDICATORS, 'utf8')) as Record<string, unknown>;
  writeFileSync(anonymous, JSON.stringify(rest));
  await fieldError(() => mpq.loadSearchInputs({ indicators: anonymous, layers: {} }), `model: not given, and ${anonymous} does not record its model`);
  cliError(['search', '--indicators', anonymous], `--model: not given, and ${anonymous} does not record its model`);

  await fieldError(() => mpq.solverByName('nope'), "solver: unknown solver 'nope' (choose from exact, glpk, highs)");
  cliError(['search', '--solver', 'nope'], "--solver: unknown solver 'nope' (choose from exact, glpk, highs)");

  const noBudget = 'no constraint given: enable BitOps (weightBits/actBits, on by default), cr, maxBitopsG, maxSizeMb, equivalentBits, latency.max or cost.max';
  const flags = { bits: [6, 5, 4, 3, 2], alpha: 2, bops: false };
  const point = { weightBits: 3, actBits: 4, cr: 0 };
  const { table, indicators } = await mpq.loadSearchInputs({ model: 'mnist-cnn', indicators: INDICATORS, layers: {} });
  await fieldError(() => mpq.formulate(table, indicators, mpq.searchOptions(flags, point)), noBudget);
  // this thread waits while the worker takes the sweep's one point: the error crossed threads
  const spec = { model: 'mnist-cnn', indicators: INDICATORS, layers: {} };
  await fieldError(() => mpq.runSweep(spec, flags, [point], { solver: 'exact', jobs: 2, meanwhile: () => sleep(2000) }), noBudget);
  const jobs = availableParallelism() > 1 ? ['--jobs', '2'] : [];
  cliError(['sweep', '--no-bops', '--cr', '0', ...jobs, '--out-dir', join(dir, 'sweep')],
    'no constraint given: enable BitOps (--weight-bits/--act-bits, on by default), --cr, --max-bitops, --max-size-mb, --equivalent-bits, --max-latency or --max-cost');
});

test('train: a model mpq cannot train, a missing data directory, a resumed run with other settings, two sources of bits, workers with QAT', async () => {
  const cli = ['--model', 'mnist-cnn', '--epochs', '1', '--limit', '64'];
  await fieldError(() => mpq.trainFullPrecision({ ...SMALL, model: 'resnet50', checkpoint: join(dir, 'r50') }), /^model: 'resnet50' cannot be trained here/);
  cliError(['train', '--model', 'resnet50', '--epochs', '1', '--checkpoint', join(dir, 'r50')], /^mpq: --model: 'resnet50' cannot be trained here/);

  const missing = join(dir, 'no-such-dir');
  await fieldError(() => mpq.trainFullPrecision({ ...SMALL, checkpoint: join(dir, 'c'), dataDir: missing }), `dataDir: directory ${missing} does not exist`);
  cliError(['train', ...cli, '--checkpoint', join(dir, 'c'), '--data', missing], `--data: directory ${missing} does not exist`);

  await fieldError(() => mpq.trainFullPrecision({ ...SMALL, seed: 5, checkpoint: FP, resume: true }),
    `resume: ${FP} was made with seed 0; this run has seed 5 (give the same settings, or overwrite instead of resume to start afresh)`);
  cliError(['train', ...cli, '--seed', '5', '--checkpoint', FP, '--resume'],
    `--resume: ${FP} was made with --seed 0; this run has --seed 5 (give the same settings, or --overwrite instead of --resume to start afresh)`);

  const oneSource = 'give one source of bits (a policy file, uniform bits or a config list)';
  await fieldError(() => mpq.finetuneAtPolicy({ ...SMALL, from: FP, policyPath: POLICY, weightBits: 4 }), `policyPath and weightBits: ${oneSource}`);
  cliError(['finetune', ...cli, '--from', FP, '--policy', POLICY, '--weight-bits', '4'], `--policy and --weight-bits: ${oneSource}`);

  const lsqOnly = "data-parallel training supports LSQ quantizers only, the model has 'qat'";
  await fieldError(() => mpq.finetuneAtPolicy({ ...SMALL, from: FP, quantizer: { name: 'qat' }, weightBits: 4, workers: 1 }), `workers: ${lsqOnly}`);
  cliError(['finetune', ...cli, '--from', FP, '--quantizer', 'qat', '--weight-bits', '4', '--workers', '1'], `--workers: ${lsqOnly}`);
});

test('backend: tfjs-node asked for where it is not installed', async (t) => {
  const tfjsNode = '@tensorflow/tfjs-node';
  if (await import(tfjsNode).then(() => true, () => false)) return t.skip('tfjs-node is installed here');
  await fieldError(() => mpq.initBackend('tensorflow'), /^backend tensorflow: .* is not installed \(use backend wasm\)$/);
  cliError(['train', '--model', 'mnist-cnn', '--epochs', '1', '--checkpoint', join(dir, 'tf'), '--backend', 'tensorflow'],
    /^mpq: --backend tensorflow: .* is not installed \(use --backend wasm\)$/);
});

test('simulate and export: a group size that does not divide, more calibration samples than a class has, fake-quant without a policy', async () => {
  const setting = { quantType: 'group' as const, weightBits: 8, inputBits: 8, inputSigned: false, calib: 'naive' as const, mergeBn: false, excludeFirstConv: false };
  const common = { from: FP, settings: [setting], groupSize: 3, numSample: 2, calibEpoch: 1, batchSize: 64, seed: 7, limit: 64 };
  await fieldError(() => mpq.runSimulation(common), 'groupSize 3: does not divide the 16 output channels of conv1');
  cliError(['simulate', '--from', FP, '--quant-type', 'group', '--group-size', '3', '--limit', '64'], '--group-size 3: does not divide the 16 output channels of conv1');

  await fieldError(() => mpq.runSimulation({ ...common, settings: [{ ...setting, quantType: 'layer' }], numSample: 100000 }), /^numSample 100000: class \d has only \d+ training samples$/);
  cliError(['simulate', '--from', FP, '--calib', 'naive', '--num-sample', '100000', '--limit', '64'], /^mpq: --num-sample 100000: class \d has only \d+ training samples$/);

  const out = join(dir, 'model.onnx');
  await fieldError(() => mpq.exportModelFile({ from: FP, out, fakeQuant: true }), 'fakeQuant: needs policyPath (the bits to fake-quantize the weights at)');
  cliError(['export-model', '--from', FP, '--out', out, '--fake-quant'], '--fake-quant: needs --policy (the bits to fake-quantize the weights at)');
});
