import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { dequantize, fakeQuantize, LsqQuantizer, quantRange } from '../src/quant/index.js';

await tf.setBackend('cpu');

function close(actual: ArrayLike<number>, expected: number[], tol = 1e-5): void {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Math.abs(actual[i] - expected[i]) <= tol, `index ${i}: ${actual[i]} vs ${expected[i]}`);
  }
}

/** Value of loss = Σ c·q(x) and its gradients w.r.t. x and the quantizer's step for `bits`. */
function quantizeWithGrads(q: LsqQuantizer, bits: number, x: tf.Tensor, c: tf.Tensor) {
  q.activeBits = bits;
  const xVar = tf.variable(x);
  const step = q.step(bits);
  let y: Float32Array = new Float32Array();
  const { grads } = tf.variableGrads(() => {
    const out = q.quantize(xVar, false);
    y = out.dataSync() as Float32Array;
    return tf.sum(tf.mul(out, c)) as tf.Scalar;
  }, [xVar, step]);
  return { y, dx: grads[xVar.name].dataSync(), ds: grads[step.name].dataSync() };
}

test('integer ranges: unsigned [0, 2^b-1], signed [-2^(b-1), 2^(b-1)-1], symmetric [-2^(b-1)+1, 2^(b-1)-1]', () => {
  assert.deepEqual(quantRange(4, 'unsigned'), { lo: 0, hi: 15 });
  assert.deepEqual(quantRange(4, 'signed'), { lo: -8, hi: 7 });
  assert.deepEqual(quantRange(4, 'symmetric'), { lo: -7, hi: 7 });
  assert.throws(() => quantRange(1, 'signed'), RangeError);
});

test('LSQ unsigned 2 bits, s = 0.5: values, STE gradient of x, scaled gradient of s', () => {
  // x/s = [-0.4, 0.6, 1.48, 2.4, 4.0] → clamp [0, 3] → [0, 0.6, 1.48, 2.4, 3] → round [0, 1, 1, 2, 3]
  // y = levels·s = [0, 0.5, 0.5, 1.0, 1.5]
  // loss = Σ c·y with c = [1..5]: dx = c inside [0, 3], 0 outside = [0, 2, 3, 4, 0]
  // ds (unscaled) = Σ c·(round(v) − v inside; lo or hi outside)
  //              = 1·0 + 2·0.4 + 3·(−0.48) + 4·(−0.4) + 5·3 = 12.76
  // grad scale 1/√(numel·hi) = 1/√15 → 12.76/√15 = 3.294619...
  const q = new LsqQuantizer({ bitsList: [2], signedness: 'unsigned', init: 'activation' });
  q.step(2).assign(tf.scalar(0.5));
  const { y, dx, ds } = quantizeWithGrads(q, 2, tf.tensor1d([-0.2, 0.3, 0.74, 1.2, 2.0]), tf.tensor1d([1, 2, 3, 4, 5]));
  close(y, [0, 0.5, 0.5, 1.0, 1.5]);
  close(dx, [0, 2, 3, 4, 0]);
  close(ds, [12.76 / Math.sqrt(15)], 1e-4);
});

test('LSQ signed and symmetric 3 bits, s = 0.25', () => {
  // x/s = [-8, -3.6, 1.04, 4]
  // signed [-4, 3]:    clamp [-4, -3.6, 1.04, 3] → round [-4, -4, 1, 3] → y = [-1, -1, 0.25, 0.75]
  //   dx (c = 1) = [0, 1, 1, 0]; ds = −4 + (−4 + 3.6) + (1 − 1.04) + 3 = −1.44, scaled by 1/√(4·3)
  // symmetric [-3, 3]: clamp [-3, -3, 1.04, 3] → round [-3, -3, 1, 3] → y = [-0.75, -0.75, 0.25, 0.75]
  //   dx = [0, 0, 1, 0]; ds = −3 − 3 + (1 − 1.04) + 3 = −3.04, scaled by 1/√12
  const x = tf.tensor1d([-2.0, -0.9, 0.26, 1.0]);
  const ones = tf.ones([4]);
  const signed = new LsqQuantizer({ bitsList: [3], signedness: 'signed', init: 'weight' });
  signed.step(3).assign(tf.scalar(0.25));
  const s = quantizeWithGrads(signed, 3, x, ones);
  close(s.y, [-1, -1, 0.25, 0.75]);
  close(s.dx, [0, 1, 1, 0]);
  close(s.ds, [-1.44 / Math.sqrt(12)], 1e-4);

  const symmetric = new LsqQuantizer({ bitsList: [3], signedness: 'symmetric', init: 'weight' });
  symmetric.step(3).assign(tf.scalar(0.25));
  const m = quantizeWithGrads(symmetric, 3, x, ones);
  close(m.y, [-0.75, -0.75, 0.25, 0.75]);
  close(m.dx, [0, 0, 1, 0]);
  close(m.ds, [-3.04 / Math.sqrt(12)], 1e-4);
});

test('LSQ per-channel (last axis) signed 2 bits, s = [0.25, 0.1]', () => {
  // x = [[0.2, -0.3], [0.6, 0.1]]; range [-2, 1]
  // channel 0: x/s = [0.8, 2.4] → clamp [0.8, 1] → round [1, 1] → y = [0.25, 0.25]
  //   ds0 = (1 − 0.8) + hi(1) = 1.2; dx = [1, 0]
  // channel 1: x/s = [-3, 1] → clamp [-2, 1] → round [-2, 1] → y = [-0.2, 0.1]
  //   ds1 = lo(−2) + (1 − 1) = −2; dx = [0, 1] (1 sits on the boundary, which is inside)
  // grad scale 1/√(numel·hi) = 1/√(4·1) = 0.5 → ds = [0.6, −1]
  const q = new LsqQuantizer({ bitsList: [2], signedness: 'signed', channels: 2, init: 'weight' });
  q.step(2).assign(tf.tensor1d([0.25, 0.1]));
  const { y, dx, ds } = quantizeWithGrads(q, 2, tf.tensor2d([[0.2, -0.3], [0.6, 0.1]]), tf.ones([2, 2]));
  close(y, [0.25, -0.2, 0.25, 0.1]);
  close(dx, [1, 0, 0, 1]);
  close(ds, [0.6, -1]);
});

test('step size is clamped to [1e-5, 1] in use, and gets no gradient while outside', () => {
  // stored s = 3 → used s = 1: x = [0.4, 2.6] unsigned 2 bits → levels [0, 3] (0.4 rounds to 0, 2.6 → 3)
  const q = new LsqQuantizer({ bitsList: [2], signedness: 'unsigned', init: 'activation' });
  q.step(2).assign(tf.scalar(3));
  const { y, ds } = quantizeWithGrads(q, 2, tf.tensor1d([0.4, 2.6]), tf.ones([2]));
  close(y, [0, 3]);
  close(ds, [0]);
});

test('one step size per bit-width, switched by activeBits; 32 bits passes through', () => {
  const q = new LsqQuantizer({ bitsList: [4, 2], signedness: 'unsigned', init: 'activation' });
  q.step(4).assign(tf.scalar(0.1));
  q.step(2).assign(tf.scalar(0.5));
  const x = tf.tensor1d([0.33]);
  q.activeBits = 4; // 3.3 → 3 → 0.3
  close(q.quantize(x, false).dataSync(), [0.3]);
  q.activeBits = 2; // 0.66 → 1 → 0.5
  close(q.quantize(x, false).dataSync(), [0.5]);
  q.activeBits = 32;
  close(q.quantize(x, false).dataSync(), [0.33]);
  assert.throws(() => q.step(3), RangeError);
});

test('initialisation on the first training batch: weights from mean ± 3·std, activations from mean|x|', () => {
  // weights [1, 2, 3, 4]: mean 2.5, unbiased std √(5/3) = 1.290994; max(|2.5 − 3.872983|, 2.5 + 3.872983)
  // = 6.372983, over 2^(4−1) = 8 → 0.796623
  const w = new LsqQuantizer({ bitsList: [4], signedness: 'signed', init: 'weight' });
  w.activeBits = 4;
  w.quantize(tf.tensor1d([1, 2, 3, 4]), false);
  assert.equal(w.isInitialised(4), false, 'evaluation does not initialise');
  w.quantize(tf.tensor1d([1, 2, 3, 4]), true);
  assert.equal(w.isInitialised(4), true);
  close(w.step(4).dataSync(), [0.796623]);
  // a second training batch keeps the learned value
  w.quantize(tf.tensor1d([10, 20, 30, 40]), true);
  close(w.step(4).dataSync(), [0.796623]);

  // activations [0, 1, 2, 5], unsigned 2 bits (hi 3): 2·mean|x|/√3 = 2·2/√3 = 2.309401
  const a = new LsqQuantizer({ bitsList: [2], signedness: 'unsigned', init: 'activation' });
  a.activeBits = 2;
  a.quantize(tf.tensor1d([0, 1, 2, 5]), true);
  close(a.step(2).dataSync(), [2.309401]);
});

test('fakeQuantize alone: round half to even like torch.round', () => {
  // x/step = [0.5, 1.5, 2.5] → [0, 2, 2]
  close(fakeQuantize(tf.tensor1d([0.5, 1.5, 2.5]), tf.scalar(1), { lo: 0, hi: 7 }).dataSync(), [0, 2, 2]);
});

test('LSQ integer form: codes in range, and dequantized they equal the fake-quantized tensor bit for bit', () => {
  const q = new LsqQuantizer({ bitsList: [3, 4], signedness: 'signed', init: 'weight', channels: 3 });
  const x = tf.randomNormal([2, 2, 5, 3], 0, 1, 'float32', 7);
  q.activeBits = 3;
  q.quantize(x, true).dispose(); // initialises the per-channel step sizes from x
  const form = q.integerForm(x)!;
  assert.equal(form.bits, 3);
  assert.equal(form.scales.length, 3);
  assert.equal(form.q.length, x.size);
  assert.ok(form.q.every((v) => v >= -4 && v <= 3));
  assert.ok(new Set(form.q).size > 4, 'codes use most of the 3-bit range');
  // + 0 turns -0 into 0: the values are equal, only the sign of zero may differ
  assert.deepEqual(Array.from(dequantize(form), (v) => v + 0), Array.from(q.quantize(x, false).dataSync(), (v) => v + 0));
});
