import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { EmaMaxObserver } from '../src/calibrate/ema.js';
import {
  dequantize, DorefaQuantizer, EmaRange, LsqQuantizer, MinMaxWeightQuantizer, NaiveQuantizer, NuqQuantizer, QatQuantizer, stepCount,
  type Quantizer,
} from '../src/quant/index.js';
import { initBackend } from '../src/train/backend/index.js';
import { createModel } from '../src/train/models.js';
import { planQuantization } from '../src/train/quantization-plan.js';
import { Prng } from '../src/util/prng.js';
import { tempDir } from './support.js';

// as the training commands run them: with the fused fake-quant kernel
await initBackend('cpu');

function randomWeight(seed: number, shape: number[]): tf.Tensor {
  const rng = new Prng(seed);
  return tf.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal() * 0.2), shape);
}

/** Every quantizer family, at a bit-width it takes, on a [3, 3, 2, 4] weight. */
function everyQuantizer(): Array<[string, Quantizer, number]> {
  const shape = [3, 3, 2, 4];
  return [
    ['lsq', new LsqQuantizer({ bitsList: [3], signedness: 'signed', init: 'weight' }), 3],
    ['min-max', new MinMaxWeightQuantizer({ bitsList: [4], granularity: 'channel', shape }), 4],
    ['nuq', new NuqQuantizer({ bitsList: [2], shape }), 2],
    ['qat', new QatQuantizer({ bitsList: [4], role: 'weight' }), 4],
    ['dorefa', new DorefaQuantizer([3]), 3],
    ['naive', new NaiveQuantizer(), 8],
  ];
}

function stateValues(q: Quantizer): Map<string, number[]> {
  return new Map([...q.namedState()].map(([name, v]) => [name, Array.from(v.dataSync())]));
}

test('the delay wraps every quantizer: x passes through before the start step (counted from 1, as NNI), quantized from it; steps resume from the state', () => {
  const x = randomWeight(1, [3, 3, 2, 4]);
  for (const [name, q, bits] of everyQuantizer()) {
    q.activeBits = bits;
    assert.equal(q.namedState().has('steps'), name === 'qat', `${name}: a step counter only where a delay is set (QAT always has one)`);
    q.startStep = 3;
    assert.equal(q.namedState().has('steps'), true, name);
    assert.equal(q.quantize(x, true), x, `${name}: step 1`);
    assert.equal(q.quantize(x, false), x, `${name}: inference before the start`);
    assert.equal(q.integerForm(x), undefined, `${name}: no codes before the start`);
    assert.equal(q.quantize(x, true), x, `${name}: step 2`);
    const third = q.quantize(x, true);
    assert.notDeepEqual(third.dataSync(), x.dataSync(), `${name}: step 3 quantizes`);
    assert.deepEqual(dequantize(q.integerForm(x)!), q.quantize(x, false).dataSync(), `${name}: codes once started`);
    assert.equal(q.namedState().get('steps')!.dataSync()[0], 3);
  }
  // a fresh quantizer given the saved counter is past its start
  const saved = new LsqQuantizer({ bitsList: [3], signedness: 'signed', init: 'weight' });
  saved.startStep = 3;
  saved.activeBits = 3;
  saved.namedState().get('steps')!.assign(tf.scalar(2));
  assert.notEqual(saved.quantize(x, true), x);
  // 0 and 1 both start at once, with no counter added
  const now = new DorefaQuantizer([2]);
  now.startStep = 1;
  assert.equal(now.namedState().size, 0);
  assert.throws(() => { now.startStep = -1; }, /start step must be a whole number >= 0, got -1/);
});

test('integerForm is a query: no quantizer\'s state changes (naive\'s running scale, NUQ\'s points, LSQ\'s steps stay)', () => {
  const small = randomWeight(2, [3, 3, 2, 4]);
  const large = tf.mul(small, 10);
  for (const [name, q, bits] of everyQuantizer()) {
    q.activeBits = bits;
    q.quantize(small, true);
    const before = stateValues(q);
    const form = q.integerForm(large)!;
    assert.deepEqual(stateValues(q), before, `${name}: state after integerForm`);
    // and the codes are what quantize would give
    assert.deepEqual(dequantize(form), q.quantize(large, false).dataSync(), name);
  }
  // the review's case: naive's codes of a larger tensor no longer raise the running scale
  const naive = new NaiveQuantizer();
  naive.activeBits = 8;
  naive.quantize(tf.tensor1d([1.27]), true);
  naive.integerForm(tf.tensor1d([12.7]));
  assert.equal(naive.currentScale(), Math.fround(0.01));
});

test('granularity, one parameter: LSQ steps per group of channels are learned per group; min-max per group; a group must divide the channels', () => {
  // dense [in 2, out 4], groups of 2 channels: steps [0.5, 0.25] repeated as [0.5, 0.5, 0.25, 0.25]
  const q = new LsqQuantizer({ bitsList: [3], signedness: 'signed', init: 'weight', channels: 4, granularity: { per: 'group', size: 2 } });
  q.activeBits = 3;
  q.step(3).assign(tf.tensor1d([0.5, 0.25]));
  const xVar = tf.variable(tf.tensor2d([[0.6, -0.9, 0.3, 0.1], [2.0, 0.2, -0.7, 0.4]]));
  const { value, grads } = tf.variableGrads(() => tf.sum(q.quantize(xVar, false)) as tf.Scalar, [q.step(3)]);
  // x/s = [1.2, -1.8, 1.2, 0.4 | 4, 0.4, -2.8, 1.6] → clamp [-4, 3] → round [1, -2, 1, 0 | 3, 0, -3, 2]
  const y = tf.tidy(() => q.quantize(xVar, false).dataSync());
  assert.deepEqual(Array.from(y), [0.5, -1, 0.25, 0, 1.5, 0, -0.75, 0.5]);
  // d/ds per group: Σ (round(v) − v) inside, hi outside, over its channels, times 1/√(numel·hi)
  const g = grads[q.step(3).name]!.dataSync();
  const scale = 1 / Math.sqrt(8 * 3);
  const group0 = (1 - 1.2) + (-2 + 1.8) + 3 + (0 - 0.4);
  const group1 = (1 - 1.2) + (0 - 0.4) + (-3 + 2.8) + (2 - 1.6);
  assert.ok(Math.abs(g[0]! - group0 * scale) < 1e-5 && Math.abs(g[1]! - group1 * scale) < 1e-5, `${Array.from(g)}`);
  value.dispose();
  // initialised per group from data in training
  const fresh = new LsqQuantizer({ bitsList: [3], signedness: 'signed', init: 'activation', channels: 4, granularity: { per: 'group', size: 2 } });
  fresh.activeBits = 3;
  fresh.quantize(xVar, true);
  const mean = (vs: number[]) => vs.reduce((s, v) => s + Math.abs(v), 0) / vs.length;
  const expected = [mean([0.6, -0.9, 2.0, 0.2]), mean([0.3, 0.1, -0.7, 0.4])].map((m) => (2 * m) / Math.sqrt(3));
  assert.ok(fresh.step(3).dataSync().every((s, i) => Math.abs(s - expected[i]!) < 1e-6));

  const minmax = new MinMaxWeightQuantizer({ bitsList: [3], granularity: 'group', shape: [2, 4], groupSize: 2 });
  minmax.activeBits = 3;
  // max |x| per group: 2.0 and 0.7, over hi = 3
  assert.deepEqual(Array.from(minmax.steps(xVar)), [2 / 3, 2 / 3, 0.7 / 3, 0.7 / 3].map(Math.fround));
  assert.equal(stepCount({ per: 'group', size: 2 }, 4), 2);
  assert.throws(() => stepCount({ per: 'group', size: 3 }, 4), /group size 3 must be a positive divisor of the 4 channels/);
});

test('QAT\'s observer keeps its state in its variables and averages with the one EMA formula calibrate/ uses', () => {
  const batches = [[0, 1, 0.5], [-2, 4], [0.25, 3]];
  // decay 0.5 and dyadic values: every average is exact in float32 too
  const tracked = new EmaRange(0.5);
  const observer = new EmaMaxObserver({ decay: 0.5, signed: true });
  for (const b of batches) {
    tracked.observe(tf.tensor1d(b));
    observer.observe(b);
    assert.deepEqual(tracked.tracked(), observer.range());
  }
  // min 0 → 0.5·0 + 0.5·(−2) = −1 → 0.5·(−1) + 0.5·0.25; max 1 → 2.5 → 2.75
  assert.deepEqual(tracked.tracked(), { min: -0.375, max: 2.75 });
});

test('quant_start_step from a config list reaches every quantizer of the model, LSQ\'s too', (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const config = join(dir, 'config.json');
  writeFileSync(config, JSON.stringify([
    { quant_types: ['weight', 'input'], quant_bits: 4, quant_start_step: 5, op_names: ['conv2', 'conv3'] },
    { quant_types: ['weight', 'input'], quant_bits: 8, op_names: ['conv1', 'fc'] },
  ]));
  for (const quantizer of ['lsq', 'qat'] as const) {
    const plan = planQuantization({ quantizer: { name: quantizer }, configPath: config })!;
    const model = createModel('mnist-cnn', { bits: plan.bits, quantizers: plan.quantizers });
    plan.attach(model);
    const steps = Object.fromEntries(model.layers.map((l) => [l.name, [l.weightQuantizer.startStep, l.inputQuantizer.startStep]]));
    assert.deepEqual(steps.conv2, [5, 5], quantizer);
    assert.deepEqual(steps.conv3, [5, 5], quantizer);
    assert.deepEqual(steps.conv1, [0, 0], quantizer);
  }
});
