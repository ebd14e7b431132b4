import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { readPacked, writePacked, type PackedLayer } from '../src/export/packed.js';
import { foldBatchNorm } from '../src/fold/bn-fold.js';
import {
  affineFakeQuantize, affineParams, dequantize, DorefaQuantizer, initialPoints, LsqQuantizer, NaiveQuantizer, NuqQuantizer, QatQuantizer,
  type Quantizer,
} from '../src/quant/index.js';
import { bindBatchNormFolds, PassThroughQuantizer, quantizerFactory } from '../src/train/quantizer-factory.js';
import { MinMaxWeightQuantizer } from '../src/quant/minmax.js';
import { QuantConv2d, SwitchableBatchNorm } from '../src/train/layers.js';
import type { QuantModel } from '../src/train/models.js';
import { Prng } from '../src/util/prng.js';

await tf.setBackend('cpu');

function close(actual: ArrayLike<number>, expected: number[], tol = 1e-5): void {
  assert.equal(actual.length, expected.length, `length ${actual.length} vs ${expected.length}`);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Math.abs(actual[i]! - expected[i]!) <= tol, `index ${i}: ${actual[i]} vs ${expected[i]}`);
  }
}

/** Value of loss = Σ c·q(x) and its gradients w.r.t. x and `extra` variables (absent when no path). */
function withGrads(q: Quantizer, bits: number, x: number[] | tf.Tensor, c: number[], extra: tf.Variable[] = [], training = false) {
  q.activeBits = bits;
  const xVar = tf.variable(x instanceof tf.Tensor ? x : tf.tensor1d(x));
  let y = new Float32Array();
  const { grads } = tf.variableGrads(() => {
    const out = q.quantize(xVar, training);
    y = Float32Array.from(out.dataSync());
    return tf.sum(tf.mul(out, tf.tensor(c, out.shape))) as tf.Scalar;
  }, [xVar, ...extra]);
  return { y, dx: grads[xVar.name]?.dataSync(), dExtra: extra.map((v) => grads[v.name]?.dataSync()) };
}

// ---------------------------------------------------------------------------------------------
// NUQ
// ---------------------------------------------------------------------------------------------

test('NUQ initial points: quantiles at (k+1)/(K+1), linear between order statistics; uniform from min to max', () => {
  // sorted [-1, -0.2, 0.1, 0.3, 0.9, 2.0], K = 2: positions (1/3)·5 = 1.667 and (2/3)·5 = 3.333
  //   → -0.2 + 0.667·0.3 = 0 and 0.3 + 0.333·0.6 = 0.5
  close(initialPoints([0.9, -1, 0.3, 2.0, -0.2, 0.1], 2, 'quantile'), [0, 0.5]);
  // K = 4 uniform over [-1, 2]: -1, 0, 1, 2
  close(initialPoints([0.9, -1, 0.3, 2.0, -0.2, 0.1], 4, 'uniform'), [-1, 0, 1, 2]);
});

test('NUQ forward: nearest point; backward: STE to the weights, per-point sum of the assigned gradients', () => {
  // points [0, 0.5] (quantiles above); -1, -0.2, 0.1 → 0; 0.3 (0.2 from 0.5), 0.9, 2.0 → 0.5
  // loss Σ c·q with c = 1..6: dL/dx = c; dL/dpoint0 = 1+2+3 = 6, dL/dpoint1 = 4+5+6 = 15, and the
  // points' variable gets that scaled by 1/√(weights per bucket) = 1/√6
  const x = [-1, -0.2, 0.1, 0.3, 0.9, 2.0];
  const c = [1, 2, 3, 4, 5, 6];
  const both = new NuqQuantizer({ bitsList: [1], shape: [6], optMode: 'both' });
  const r = withGrads(both, 1, x, c, [both.codebook(1)]);
  close(r.y, [0, 0, 0, 0.5, 0.5, 0.5]);
  close(r.dx!, c);
  close(r.dExtra[0]!, [6 / Math.sqrt(6), 15 / Math.sqrt(6)]);
  assert.deepEqual(Array.from(both.assignment(1).dataSync()), [0, 0, 0, 1, 1, 1], 'indices kept for checkpoints');
  assert.deepEqual(both.trainableVariables(), [both.codebook(1)]);

  // 'weights' (the seed's default): fixed points, not trainable; the weights still get the STE gradient
  const weights = new NuqQuantizer({ bitsList: [1], shape: [6] });
  assert.equal(weights.optMode, 'weights');
  assert.deepEqual(weights.trainableVariables(), []);
  close(withGrads(weights, 1, x, c).dx!, c);

  // 'clusters': the weights are frozen, no gradient path to them at all (so no weight decay either)
  const clusters = new NuqQuantizer({ bitsList: [1], shape: [6], optMode: 'clusters' });
  const rc = withGrads(clusters, 1, x, [1, 1, 1, 1, 1, 1], [clusters.codebook(1)]);
  assert.equal(rc.dx, undefined);
  close(rc.dExtra[0]!, [3 / Math.sqrt(6), 3 / Math.sqrt(6)]);
});

test('NUQ ties go to the smaller point; moved points re-assign the weights', () => {
  const q = new NuqQuantizer({ bitsList: [1], shape: [3], init: 'uniform' });
  q.activeBits = 1;
  // uniform over [0, 1]: points [0, 1]; 0.5 is a tie → 0
  close(q.quantize(tf.tensor1d([0, 0.5, 1]), true).dataSync(), [0, 0, 1]);
  q.codebook(1).assign(tf.tensor2d([[0.6, 0.2]]));
  // nearest of unsorted points [0.6, 0.2]: 0 → 0.2 (code 1), 0.5 → 0.6 (code 0), 1 → 0.6
  close(q.quantize(tf.tensor1d([0, 0.5, 1]), false).dataSync(), [0.2, 0.6, 0.6]);
  assert.deepEqual(Array.from(q.assignment(1).dataSync()), [1, 0, 0]);
});

test('NUQ split buckets: points per run of `size` weights (the last shorter); integer form round-trips', () => {
  const q = new NuqQuantizer({ bitsList: [1], shape: [5], init: 'uniform', buckets: { type: 'split', size: 2 } });
  assert.equal(q.bucketCount, 3);
  q.activeBits = 1;
  // buckets [0.1, 0.7] → points [0.1, 0.7]; [-2, 4] → [-2, 4]; [3] → [3, 3]
  const x = tf.tensor1d([0.1, 0.7, 4, -2, 3]);
  close(q.quantize(x, true).dataSync(), [0.1, 0.7, 4, -2, 3]);
  close(q.codebook(1).dataSync(), [0.1, 0.7, -2, 4, 3, 3]);
  const form = q.integerForm(x)!;
  assert.equal(form.groupSize, 2);
  // codes 0/1 of 1 bit as two's complement patterns: 0 → 0, 1 → -1
  assert.deepEqual(Array.from(form.q), [0, -1, -1, 0, 0]);
  close(dequantize(form), [0.1, 0.7, 4, -2, 3]);
});

test('NUQ channel buckets: one codebook per output channel (last axis), and so in the integer form', () => {
  // dense [in 3, out 2]: channel 0 = [1, 3.2, 5], channel 1 = [10, 21, 30] (row-major x[i][o])
  const q = new NuqQuantizer({ bitsList: [2], shape: [3, 2], init: 'uniform', buckets: { type: 'channel' } });
  q.activeBits = 2;
  const y = q.quantize(tf.tensor2d([[1, 10], [3.2, 21], [5, 30]]), true);
  // channel 0 points 1, 2.33, 3.67, 5: 3.2 → 3.67; channel 1 points 10, 16.67, 23.33, 30: 21 → 23.33
  close(y.dataSync(), [1, 10, 11 / 3, 70 / 3, 5, 30], 1e-4);
  close(q.codebook(2).dataSync(), [1, 7 / 3, 11 / 3, 5, 10, 50 / 3, 70 / 3, 30], 1e-4);
  // codes 0, 0 | 2, 2 | 3, 3 (point indices; 2 and 3 as 2-bit two's complement -2, -1), a codebook per channel
  const form = q.integerForm(tf.tensor2d([[1, 10], [3.2, 21], [5, 30]]))!;
  assert.equal(form.perChannel, true);
  assert.deepEqual(Array.from(form.q), [0, 0, -2, -2, -1, -1]);
  assert.deepEqual(dequantize(form), y.dataSync());
});

test('NUQ with 2 bits: a 4-point integer form of the row-major tensor, codes within [-2, 1]', () => {
  const q = new NuqQuantizer({ bitsList: [2], shape: [2, 2], init: 'uniform' });
  q.activeBits = 2;
  const x = tf.tensor2d([[0, 3], [1.2, 2.1]]);
  const y = q.quantize(x, false);
  close(y.dataSync(), [0, 3, 1, 2]);
  const form = q.integerForm(x)!;
  assert.deepEqual(Array.from(form.q), [0, -1, 1, -2]);
  close(dequantize(form), Array.from(y.dataSync()));
  assert.throws(() => new NuqQuantizer({ bitsList: [9], shape: [2] }), /1\.\.8 bits/);
});

// ---------------------------------------------------------------------------------------------
// QAT
// ---------------------------------------------------------------------------------------------

test('QAT affine parameters: range widened to 0, scale (max−min)/(2^b−1), zero point rounded and clamped', () => {
  const a = affineParams(2, -0.3, 0.6)!;
  assert.equal(a.zeroPoint, 1);
  close([a.scale], [0.3]);
  assert.deepEqual(affineParams(8, 0.5, 2), { scale: Math.fround(2 / 255), zeroPoint: 0, qmax: 255 });
  const negative = affineParams(2, -1, -0.5)!;
  close([negative.scale], [1 / 3]);
  assert.equal(negative.zeroPoint, 3);
  // -min/scale = 0.25/0.3 = 0.83 → 1
  assert.equal(affineParams(2, -0.25, 0.65)!.zeroPoint, 1);
  assert.equal(affineParams(4, 0, 0), undefined);
});

test('QAT fake quantization: values on (q − zp)·scale, straight-through inside the window, zero outside', () => {
  // scale 0.3, zp 1, 2 bits: x/s = [-1.67, -0.33, 0.67, 1.47, 3] → clamp [-1, 2] → round [-1, 0, 1, 1, 2]
  const p = { scale: 0.3, zeroPoint: 1, qmax: 3 };
  const xVar = tf.variable(tf.tensor1d([-0.5, -0.1, 0.2, 0.44, 0.9]));
  const { value, grads } = tf.variableGrads(() => tf.sum(affineFakeQuantize(xVar, p)) as tf.Scalar, [xVar]);
  close(tf.tidy(() => affineFakeQuantize(xVar, p).dataSync()), [-0.3, 0, 0.3, 0.3, 0.6]);
  close(grads[xVar.name]!.dataSync(), [0, 1, 1, 1, 0]);
  close([value.dataSync()[0]!], [0.9]);
});

test('QAT weights: the tensor\'s own min/max; activations: EMA of batch min/max (first batch seeds it)', () => {
  const w = new QatQuantizer({ bitsList: [2], role: 'weight' });
  // [-0.3, 0.6]: scale 0.3, zp 1 → [-0.3, 0.1, 0.6] → [-0.3, 0, 0.6]
  close(withGrads(w, 2, [-0.3, 0.1, 0.6], [1, 1, 1], [], true).y, [-0.3, 0, 0.6]);

  const a = new QatQuantizer({ bitsList: [2], role: 'activation', decay: 0.5 });
  a.activeBits = 2;
  assert.equal(a.needsCalibration(), true);
  assert.throws(() => a.quantize(tf.tensor1d([1]), false), /no tracked range/);
  a.quantize(tf.tensor1d([0, 1, 2]), true);
  assert.deepEqual(a.trackedRange(), { min: 0, max: 2 });
  a.quantize(tf.tensor1d([-1, 4]), true);
  // 0.5·0 + 0.5·(−1) = −0.5; 0.5·2 + 0.5·4 = 3
  assert.deepEqual(a.trackedRange(), { min: -0.5, max: 3 });
  // inference uses the tracked range and leaves it alone: scale 3.5/3, zp round(0.43) = 0
  close(a.quantize(tf.tensor1d([1.2, -0.4, 9]), false).dataSync(), [7 / 6, 0, 3.5], 1e-5);
  assert.deepEqual(a.trackedRange(), { min: -0.5, max: 3 });
  assert.equal(a.needsCalibration(), false);
});

test('QAT resumes exactly: a fresh quantizer given the saved state continues the same EMA', () => {
  const batches = [[0, 1], [-2, 5], [0.5, 3]];
  const full = new QatQuantizer({ bitsList: [4], role: 'activation' });
  full.activeBits = 4;
  for (const b of batches) full.quantize(tf.tensor1d(b), true);
  const first = new QatQuantizer({ bitsList: [4], role: 'activation' });
  first.activeBits = 4;
  for (const b of batches.slice(0, 2)) first.quantize(tf.tensor1d(b), true);
  const resumed = new QatQuantizer({ bitsList: [4], role: 'activation' });
  resumed.activeBits = 4;
  for (const [name, v] of first.namedState()) resumed.namedState().get(name)!.assign(v);
  resumed.quantize(tf.tensor1d(batches[2]!), true);
  assert.deepEqual(resumed.trackedRange(), full.trackedRange());
  assert.equal(resumed.stepsSeen, 3);
});

test('QAT quant_start_step: unquantized (and untracked) before that training step, as NNI counts from 1', () => {
  const a = new QatQuantizer({ bitsList: [2], role: 'activation', quantStartStep: 3 });
  a.activeBits = 2;
  const x = tf.tensor1d([0.1, 0.7, 2]);
  assert.equal(a.quantize(x, true), x);
  assert.equal(a.quantize(x, false), x);
  assert.equal(a.quantize(x, true), x);
  assert.equal(a.trackedRange(), undefined);
  // third training step: range [0, 2] → scale 2/3 → [0, 2/3, 2]
  close(a.quantize(x, true).dataSync(), [0, 2 / 3, 2]);
  assert.equal(a.stepsSeen, 3);
});

test('QAT batch-norm folding: BN(conv(x, q(w·s)/s)) at inference equals conv(x, q(folded w)) + folded bias', () => {
  const conv = new QuantConv2d('c', { inChannels: 2, outChannels: 3, kernel: 1, stride: 1, padding: 0 }, new Prng(4),
    { bitsList: [4], inputSignedness: 'unsigned', quantizers: quantizerFactory({ name: 'qat' }) });
  const bn = new SwitchableBatchNorm('bn', 3, [4]);
  const set = bn.set('4');
  set.gamma.assign(tf.tensor1d([0.5, -2, 3]));
  set.beta.assign(tf.tensor1d([0.1, 0.2, -0.3]));
  set.movingMean.assign(tf.tensor1d([0.4, -0.1, 0.2]));
  set.movingVar.assign(tf.tensor1d([0.25, 4, 1]));
  assert.deepEqual(bindBatchNormFolds({ layers: [conv], batchNorms: [bn], layerBatchNorms: new Map([['c', bn]]) } as unknown as QuantModel), ['c']);
  const x = tf.tensor4d([0.3, 1.2, 0.8, 0.1, 2, 0.5, 0, 1], [1, 2, 2, 2]);
  const viaModel = bn.apply(conv.apply(x, { weightBits: 4, actBits: 32 }, false), '4', false);

  const folded = foldBatchNorm(conv.weight.dataSync() as Float32Array, { shape: [1, 1, 2, 3] }, undefined, {
    gamma: [0.5, -2, 3], beta: [0.1, 0.2, -0.3], movingMean: [0.4, -0.1, 0.2], movingVariance: [0.25, 4, 1], epsilon: SwitchableBatchNorm.EPSILON,
  });
  const foldedWeight = tf.tensor(folded.weights, [1, 1, 2, 3]);
  const min = Math.min(...folded.weights);
  const max = Math.max(...folded.weights);
  const q = affineFakeQuantize(foldedWeight, affineParams(4, min, max)!);
  const engine = tf.add(tf.conv2d(x, q as tf.Tensor4D, 1, 0), tf.tensor1d(folded.bias));
  close(viaModel.dataSync(), Array.from(engine.dataSync()), 1e-4);
  // folded weights have levels per channel (q(w·s)/s): a codebook per output channel
  const quantizer = conv.weightQuantizer as QatQuantizer;
  quantizer.activeBits = 4;
  const form = quantizer.integerForm(conv.weight)!;
  assert.equal(form.perChannel, true);
  assert.equal(form.codebook!.length, 3 * 16);
  assert.deepEqual(dequantize(form), quantizer.quantize(conv.weight, false).dataSync());
});

test('QAT integer form (unfolded): codebook (c − zp)·scale, codes as two\'s-complement patterns', () => {
  const w = new QatQuantizer({ bitsList: [2], role: 'weight' });
  w.activeBits = 2;
  const x = tf.tensor1d([-0.3, 0.1, 0.6, 0.3]);
  const form = w.integerForm(x)!;
  // codes c = [0, 1, 3, 2] (zp 1) → patterns [0, 1, -1, -2]
  assert.deepEqual(Array.from(form.q), [0, 1, -1, -2]);
  close(form.codebook!, [-0.3, 0, 0.3, 0.6]);
  close(dequantize(form), Array.from(w.quantize(x, false).dataSync()));
});

// ---------------------------------------------------------------------------------------------
// naive and DoReFa
// ---------------------------------------------------------------------------------------------

test('naive: 8 bits, scale = running max of max|w|/127, truncated towards zero, straight-through gradient', () => {
  const q = new NaiveQuantizer();
  // max|x| = 7.9375 = 127/16 → scale 1/16: x/s = [127, -16, 1.6, -1.6] → trunc [127, -16, 1, -1]
  const r = withGrads(q, 8, [7.9375, -1, 0.1, -0.1], [1, 2, 3, 4]);
  close(r.y, [7.9375, -1, 0.0625, -0.0625], 0);
  close(r.dx!, [1, 2, 3, 4]);
  const form = q.integerForm(tf.tensor1d([7.9375, -1, 0.1, -0.1]))!;
  assert.deepEqual(Array.from(form.q), [127, -16, 1, -1]);
  close(dequantize(form), [7.9375, -1, 0.0625, -0.0625], 0);
  // a smaller tensor keeps the running scale; a larger one raises it
  q.quantize(tf.tensor1d([0.5]), true);
  assert.equal(q.currentScale(), 0.0625);
  close(q.quantize(tf.tensor1d([15.875, 0.2]), true).dataSync(), [15.875, 0.125], 0);
  assert.equal(q.currentScale(), 0.125);
  assert.throws(() => new NaiveQuantizer([4]), /8 bits only/);
});

test('DoReFa: tanh-normalised weights on 2^b levels in [-1, 1]; gradient through tanh and the max', () => {
  const x = [0.3, -0.8, 1.5, 0.05];
  const c = [1, -2, 0.5, 3];
  // t = tanh x = [0.2913, -0.6640, 0.9051, 0.0500]; m = 0.9051; n = t/(2m) + 0.5 = [0.661, 0.133, 1, 0.528]
  // n·3 = [1.98, 0.40, 3, 1.58] → round [2, 0, 3, 2] → 2·round/3 − 1 = [1/3, -1, 1, 1/3]
  const q = new DorefaQuantizer([2]);
  const r = withGrads(q, 2, x, c);
  close(r.y, [1 / 3, -1, 1, 1 / 3]);
  // STE on the round: d out_i/d n_i = 2 → dL/dn = 2c; n_i = t_i/(2m) + 1/2 with m = |t_2| (x_2 = 1.5 is the max):
  //   dL/dt_j = 2c_j/(2m) − [j = 2]·Σ_i 2c_i·t_i/(2m²);  dL/dx_j = dL/dt_j·(1 − t_j²)
  const t = x.map(Math.tanh);
  const m = t[2]!;
  const cross = t.reduce((s, ti, i) => s + 2 * c[i]! * ti / (2 * m * m), 0);
  const expected = t.map((tj, j) => ((2 * c[j]!) / (2 * m) - (j === 2 ? cross : 0)) * (1 - tj * tj));
  close(r.dx!, expected, 1e-4);
  const form = q.integerForm(tf.tensor1d(x))!;
  assert.deepEqual(Array.from(form.q), [-2, 0, -1, -2]);
  close(form.codebook!, [-1, -1 / 3, 1 / 3, 1]);
  close(dequantize(form), [1 / 3, -1, 1, 1 / 3]);
});

// ---------------------------------------------------------------------------------------------
// factory
// ---------------------------------------------------------------------------------------------

test('factory: each quantizer\'s weight side and its activation convention; sites are recorded', () => {
  const site = { layerName: 'c', kind: 'conv' as const, bitsList: [4], outChannels: 2, weightShape: [1, 1, 3, 2] };
  const weight = { ...site, role: 'weight' as const, signedness: 'signed' as const };
  const input = { ...site, role: 'input' as const, signedness: 'unsigned' as const };
  const expected: Array<[Parameters<typeof quantizerFactory>[0]['name'], unknown, unknown]> = [
    ['lsq', LsqQuantizer, LsqQuantizer], ['nuq', NuqQuantizer, QatQuantizer], ['qat', QatQuantizer, QatQuantizer],
    ['dorefa', DorefaQuantizer, PassThroughQuantizer], ['naive', NaiveQuantizer, PassThroughQuantizer],
  ];
  for (const [name, weightClass, inputClass] of expected) {
    const factory = quantizerFactory({ name });
    const bits = name === 'naive' ? { bitsList: [8] } : {};
    assert.ok(factory({ ...weight, ...bits }) instanceof (weightClass as never), `${name} weight`);
    assert.ok(factory({ ...input, ...bits }) instanceof (inputClass as never), `${name} input`);
    assert.deepEqual(factory.sites.map((s) => s.role), ['weight', 'input']);
  }
  const nuq = quantizerFactory({ name: 'nuq', nuq: { optMode: 'both', init: 'uniform', buckets: { type: 'split', size: 3 } } })(weight) as NuqQuantizer;
  assert.deepEqual([nuq.optMode, nuq.init, nuq.bucketCount], ['both', 'uniform', 2]);
});

// ---------------------------------------------------------------------------------------------
// integer forms through the packed container
// ---------------------------------------------------------------------------------------------

test('every quantizer\'s integer form passes the packed container: written, read back, dequantized to quantize(x)', () => {
  const rng = new Prng(11);
  const shape = [3, 3, 2, 4];
  const x = tf.tensor(Float32Array.from({ length: 72 }, () => rng.normal() * 0.3), shape);
  const relu = tf.relu(x);
  const cases: Array<[string, Quantizer, number, tf.Tensor]> = [
    ['lsq', new LsqQuantizer({ bitsList: [3], signedness: 'signed', init: 'weight' }), 3, x],
    ['lsq per channel', new LsqQuantizer({ bitsList: [4], signedness: 'signed', init: 'weight', channels: 4 }), 4, x],
    ['min-max per group', new MinMaxWeightQuantizer({ bitsList: [5], granularity: 'group', shape, groupSize: 2 }), 5, x],
    ['nuq', new NuqQuantizer({ bitsList: [3], shape }), 3, x],
    ['nuq split buckets', new NuqQuantizer({ bitsList: [2], shape, buckets: { type: 'split', size: 16 } }), 2, x],
    ['qat weight', new QatQuantizer({ bitsList: [4], role: 'weight' }), 4, x],
    ['qat activation', new QatQuantizer({ bitsList: [3], role: 'activation' }), 3, relu],
    ['dorefa', new DorefaQuantizer([2]), 2, x],
    ['naive', new NaiveQuantizer(), 8, x],
  ];
  for (const [name, q, bits, input] of cases) {
    q.activeBits = bits;
    // a training-mode call first: learned steps, codebooks and tracked ranges start from data
    q.quantize(input, true);
    const expected = Float32Array.from(q.quantize(input, false).dataSync());
    const form = q.integerForm(input)!;
    const layer: PackedLayer = { name, shape: [...input.shape], ...form };
    const [back] = readPacked(writePacked([layer])).layers;
    assert.deepEqual(back, layer, name);
    // equal as numbers (tfjs's own round gives −0 where the fused kernel and the codes give 0)
    const values = dequantize(back!);
    const differ = values.findIndex((v, i) => v !== expected[i]);
    assert.equal(differ, -1, `${name}: index ${differ}: ${values[differ]} vs ${expected[differ]}`);
  }
});
