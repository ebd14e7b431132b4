import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { quantizeRequest } from '../src/cli/finetune.js';
import { inFlags } from '../src/cli/run.js';
import { planQuantization } from '../src/train/quantization-plan.js';
import { runCli, tempDir, type CliRun } from './support.js';

function assertUserError(r: CliRun, pattern: RegExp): void {
  assert.equal(r.status, 2, r.stderr);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, pattern);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
}

function lastJson(r: CliRun): Record<string, unknown> {
  assert.equal(r.status, 0, r.stderr);
  // --json: stdout is the one JSON object (epoch lines go to stderr)
  assert.equal(r.stdout.trim().split('\n').length, 1, r.stdout);
  return JSON.parse(r.stdout);
}

/** Variables of a checkpoint directory by name, with their shapes and values. */
function checkpointVariables(dir: string): Map<string, { shape: number[]; values: Float32Array }> {
  const manifest = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8')) as { weightsFile: string; variables: Array<{ name: string; shape: number[]; offset: number }> };
  const bytes = readFileSync(join(dir, manifest.weightsFile));
  return new Map(manifest.variables.map(({ name, shape, offset }) => {
    const n = shape.reduce((a, b) => a * b, 1);
    return [name, { shape, values: new Float32Array(bytes.buffer.slice(bytes.byteOffset + offset, bytes.byteOffset + offset + 4 * n)) }];
  }));
}

/** The UserError message a flag set gets from the CLI's parsing and the run's plan (in process; the plan's fields named as flags). */
function flagError(flags: Record<string, unknown>): string {
  try {
    planQuantization(quantizeRequest(flags));
  } catch (thrown) {
    const err = inFlags(thrown) as Error;
    assert.equal(err.name, 'UserError');
    return err.message;
  }
  return '';
}

test('--quantizer flags: each bad combination is named (checked before any backend starts)', () => {
  assert.equal(flagError({ quantizer: 'hawq', weightBits: 4 }), "--quantizer: 'hawq' is not one of lsq, nuq, qat, dorefa, naive");
  assert.equal(flagError({ quantizer: 'naive', weightBits: 4 }), '--weight-bits: naive quantizes weights to 8 bits only, got 4');
  assert.equal(flagError({ quantizer: 'dorefa', weightBits: 4, actBits: 4 }), '--act-bits: dorefa quantizes weights only (activations stay at 32 bits), got 4');
  assert.equal(flagError({ quantizer: 'nuq', weightBits: 9 }), '--weight-bits: nuq takes 2..8 weight bits or 32, got 9');
  assert.equal(flagError({ quantizer: 'qat', weightBits: 4, nuqInit: 'uniform' }), '--nuq-init: only with --quantizer nuq');
  assert.equal(flagError({ quantizer: 'nuq', weightBits: 4, nuqBucketSize: 64 }), '--nuq-bucket-size: needs --nuq-buckets split');
  assert.equal(flagError({ quantizer: 'nuq', weightBits: 4, nuqOptMode: 'all' }), "--nuq-opt-mode: 'all' is not one of weights, clusters, both");
  assert.equal(flagError({ policy: 'p.json', weightBits: 4 }), '--policy and --weight-bits: give one source of bits (a policy file, uniform bits or a config list)');
  assert.equal(flagError({ actBits: 4 }), '--act-bits: needs --weight-bits (uniform bits)');
  assert.equal(flagError({ weightBits: 32, actBits: 32 }), '--weight-bits 32 --act-bits 32: nothing to quantize');
  // defaults follow each quantizer's convention
  const plan = planQuantization(quantizeRequest({ quantizer: 'nuq', weightBits: 3 }))!;
  assert.deepEqual([plan.describe.weight_bits, plan.describe.act_bits, plan.bits], [3, 32, [3]]);
  assert.deepEqual(planQuantization(quantizeRequest({ quantizer: 'qat', weightBits: 3 }))!.bits, [3]);
  // nuq alone: PocketFlow's 4 weight bits
  assert.deepEqual(planQuantization(quantizeRequest({ quantizer: 'nuq' }))!.describe.weight_bits, 4);
  assert.equal(planQuantization(quantizeRequest({ quantizer: 'qat' })), undefined);
});

test('the CLI prints those as one line, exit 2; a bad config list is named by entry and field', (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const config = join(dir, 'bad.json');
  writeFileSync(config, JSON.stringify([{ quant_types: ['weight'], quant_bits: { weight: 4, output: 8 }, op_types: ['Conv2d'] }]));
  const common = ['--model', 'mnist-cnn', '--from', '/nonexistent'];
  assertUserError(runCli(['quantize', ...common, '--config', config, '--quantizer', 'qat']), /bad\.json: config_list\[0\]\.quant_bits\.output: 'output' is not in quant_types$/);
  assertUserError(runCli(['finetune', ...common, '--epochs', '1', '--quantizer', 'naive', '--weight-bits', '4']), /--weight-bits: naive quantizes weights to 8 bits only, got 4$/);
});

/** Paths of the keys in camelCase at any depth of a JSON value (every --json is snake_case). */
function camelCaseKeys(value: unknown, path = '$'): string[] {
  if (Array.isArray(value)) return value.flatMap((v, i) => camelCaseKeys(v, `${path}[${i}]`));
  if (value === null || typeof value !== 'object') return [];
  return Object.entries(value).flatMap(([k, v]) => [...(/[A-Z]/.test(k) ? [`${path}.${k}`] : []), ...camelCaseKeys(v, `${path}.${k}`)]);
}

/** One tiny FP checkpoint shared by the runs below. */
const shared = tempDir();
const FP = join(shared, 'fp');
const TINY = ['--model', 'mnist-cnn', '--limit', '64', '--batch-size', '32', '--seed', '5', '--no-progress'];
test.before(() => assert.equal(runCli(['train', ...TINY, '--epochs', '1', '--checkpoint', FP]).status, 0));
test.after(() => rmSync(shared, { recursive: true, force: true }));

test('mpq quantize with a QAT config list: trains, saves EMA ranges; --epochs 0 reproduces it, or calibrates an FP checkpoint', (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const [tiny, fp] = [TINY, FP];

  const config = join(dir, 'config_list.json');
  writeFileSync(config, JSON.stringify([
    { quant_types: ['weight', 'input'], quant_bits: 8, op_types: ['default'] },
    { quant_types: ['weight'], quant_bits: { weight: 4 }, op_names: ['conv2', 'conv3', 'conv4', 'conv5'] },
    { quant_types: ['output'], quant_bits: 4, op_types: ['ReLU'] },
    { quant_types: ['weight', 'input'], quant_bits: 8, op_names: ['fc'] },
  ]));
  const q = join(dir, 'qat');
  const trained = lastJson(runCli(['quantize', ...tiny, '--from', fp, '--config', config, '--quantizer', 'qat', '--checkpoint', q, '--json']));
  assert.equal(trained.quantizer, 'qat');
  assert.deepEqual(trained.bn_folded, ['conv1', 'conv2', 'conv3', 'conv4', 'conv5']);
  assert.deepEqual(trained.layers, [
    { name: 'conv1', weight_bits: 8, act_bits: 8 },
    ...['conv2', 'conv3', 'conv4', 'conv5'].map((name) => ({ name, weight_bits: 4, act_bits: 4 })),
    { name: 'fc', weight_bits: 8, act_bits: 8 },
  ]);
  const saved = checkpointVariables(q);
  const range = saved.get('conv3.quan_a_fn.tracked_range')!.values;
  assert.ok(range[0]! <= 0 && range[1]! > 0, `post-ReLU range [${range}]`);
  assert.equal(saved.get('conv3.quan_w_fn.steps')!.values[0], 2, 'two training steps of 32');

  const again = lastJson(runCli(['quantize', ...tiny, '--from', q, '--config', config, '--quantizer', 'qat', '--epochs', '0', '--json']));
  assert.equal(again.calibrated, 0);
  assert.equal(again.top1, trained.top1, 'the saved ranges and weights give the same accuracy');

  const ptq = lastJson(runCli(['quantize', ...tiny, '--from', fp, '--config', config, '--quantizer', 'qat', '--epochs', '0', '--json']));
  assert.equal(ptq.calibrated, 6, 'every layer input calibrated on training images');
  assert.ok((ptq.top1 as number) >= 0 && (ptq.top1 as number) <= 1);
});

test('finetune --quantizer nuq: checkpoint keeps codebooks and indices; the weights\' points reproduce the accuracy', (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const [tiny, fp] = [TINY, FP];
  const n = join(dir, 'nuq');
  const summary = lastJson(runCli(['finetune', ...tiny, '--epochs', '1', '--from', fp, '--quantizer', 'nuq', '--weight-bits', '2',
    '--nuq-buckets', 'split', '--nuq-bucket-size', '1000', '--checkpoint', n, '--json']));
  // the seed's defaults: activations 32 bits, first and last layers not quantized
  assert.deepEqual([summary.act_bits, summary.quantize_first_last], [32, false]);
  assert.deepEqual((summary.layers as Array<{ name: string }>).map((l) => l.name), ['conv2', 'conv3', 'conv4', 'conv5']);

  const saved = checkpointVariables(n);
  // conv3: 3·3·32·64 = 18,432 weights in buckets of 1,000 → 19 codebooks of 4 points
  assert.deepEqual(saved.get('conv3.quan_w_fn.codebook.2')!.shape, [19, 4]);
  const indices = saved.get('conv3.quan_w_fn.indices.2')!;
  assert.deepEqual(indices.shape, [3, 3, 32, 64]);
  assert.ok(indices.values.every((v) => Number.isInteger(v) && v >= 0 && v <= 3));
  assert.equal(saved.has('conv1.quan_w_fn.codebook.8'), true, 'fixed layers hold 8-bit codebooks, unused here');

  // the same bits as an NNI config list, evaluated from the NUQ checkpoint without training
  const config = join(dir, 'nuq.json');
  writeFileSync(config, JSON.stringify([{ quant_types: ['weight'], quant_bits: 2, op_names: ['conv2', 'conv3', 'conv4', 'conv5'] }]));
  const evaluated = lastJson(runCli(['quantize', ...tiny, '--from', n, '--config', config, '--quantizer', 'nuq',
    '--nuq-opt-mode', 'weights', '--nuq-buckets', 'split', '--nuq-bucket-size', '1000', '--epochs', '0', '--json']));
  assert.equal(evaluated.top1, summary.top1);
  // the NUQ options in --json are snake_case like the rest, at every depth
  assert.deepEqual(evaluated.nuq, { opt_mode: 'weights', buckets: { type: 'split', size: 1000 } });
  assert.deepEqual([camelCaseKeys(summary), camelCaseKeys(evaluated)], [[], []]);
});
