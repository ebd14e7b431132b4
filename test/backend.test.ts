import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs';
import { getThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import { createReplica } from '../bench/train-step.js';
import { DataParallelGradients, splitBatch } from '../src/train/backend/data-parallel.js';
import { batchNormTrain, initBackend } from '../src/train/backend/index.js';
import { UserError } from '../src/util/errors.js';

type Pad = 'same' | 'valid' | number | [[number, number], [number, number], [number, number], [number, number]];
type Shape4 = [number, number, number, number];

interface ConvCase {
  name: string;
  depthwise: boolean;
  x: Shape4;
  filter: Shape4;
  strides: number | [number, number];
  pad: Pad;
}

const convCases: ConvCase[] = [
  { name: '3x3 s1 same', depthwise: false, x: [2, 7, 7, 3], filter: [3, 3, 3, 4], strides: 1, pad: 'same' },
  { name: '3x3 s2 same, even input (asymmetric pad)', depthwise: false, x: [2, 8, 8, 3], filter: [3, 3, 3, 5], strides: 2, pad: 'same' },
  { name: '3x3 s2 valid, odd input', depthwise: false, x: [3, 9, 7, 2], filter: [3, 3, 2, 4], strides: 2, pad: 'valid' },
  { name: '1x1 s2 valid (ResNet shortcut)', depthwise: false, x: [2, 8, 8, 4], filter: [1, 1, 4, 6], strides: 2, pad: 'valid' },
  { name: '5x3 strides [3,2] valid, remainder rows', depthwise: false, x: [2, 12, 9, 3], filter: [5, 3, 3, 2], strides: [3, 2], pad: 'valid' },
  { name: '3x3 s1 numeric pad 2', depthwise: false, x: [1, 6, 5, 2], filter: [3, 3, 2, 3], strides: 1, pad: 2 },
  {
    name: '3x3 s2 explicit pad wider than the filter',
    depthwise: false, x: [2, 6, 7, 2], filter: [3, 3, 2, 3], strides: 2, pad: [[0, 0], [3, 1], [0, 4], [0, 0]],
  },
  { name: 'depthwise 3x3 s1 same', depthwise: true, x: [2, 7, 7, 4], filter: [3, 3, 4, 1], strides: 1, pad: 'same' },
  { name: 'depthwise 3x3 s2 same, even input', depthwise: true, x: [2, 8, 8, 3], filter: [3, 3, 3, 1], strides: 2, pad: 'same' },
  { name: 'depthwise 3x3 s2 valid, multiplier 2', depthwise: true, x: [2, 9, 9, 3], filter: [3, 3, 3, 2], strides: 2, pad: 'valid' },
  { name: 'depthwise 5x5 s1 explicit, multiplier 3', depthwise: true, x: [1, 7, 6, 2], filter: [5, 5, 2, 3], strides: 1, pad: [[0, 0], [1, 3], [2, 2], [0, 0]] },
];

/** Deterministic values in [-1, 1). */
function values(size: number, seed: number): Float32Array {
  const out = new Float32Array(size);
  let state = seed * 2654435761 >>> 0;
  for (let i = 0; i < size; i++) {
    state = (state * 1664525 + 1013904223) >>> 0;
    out[i] = state / 2 ** 31 - 1;
  }
  return out;
}

const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** Relative gap: max |a - b| over max |b|. */
function relativeGap(actual: Float32Array, expected: Float32Array): number {
  assert.equal(actual.length, expected.length);
  let gap = 0;
  let scale = 0;
  for (let i = 0; i < actual.length; i++) {
    gap = Math.max(gap, Math.abs(actual[i] - expected[i]));
    scale = Math.max(scale, Math.abs(expected[i]));
  }
  return gap / Math.max(scale, 1e-12);
}

/** dLoss/dx and dLoss/dfilter for loss = sum(conv(x, filter) * weights), on the active backend. */
function convGradients(c: ConvCase): { dx: Float32Array; dFilter: Float32Array } {
  return tf.tidy(() => {
    const x = tf.tensor4d(values(size(c.x), 1), c.x);
    const filter = tf.tensor4d(values(size(c.filter), 2), c.filter);
    const conv = (a: tf.Tensor4D, b: tf.Tensor4D) =>
      c.depthwise ? tf.depthwiseConv2d(a, b, c.strides, c.pad) : tf.conv2d(a, b, c.strides, c.pad);
    const outShape = conv(x, filter).shape;
    const weights = tf.tensor(values(size(outShape), 3), outShape);
    const [dx, dFilter] = tf.grads((a: tf.Tensor, b: tf.Tensor) => conv(a as tf.Tensor4D, b as tf.Tensor4D).mul(weights).sum())([x, filter]);
    return { dx: dx.dataSync() as Float32Array, dFilter: dFilter.dataSync() as Float32Array };
  });
}

interface BatchNormResult {
  y: Float32Array;
  mean: Float32Array;
  variance: Float32Array;
  dx: Float32Array;
  dGamma: Float32Array;
  dBeta: Float32Array;
}

const bnShape: Shape4 = [4, 5, 6, 3];

/** Values and gradients of a weighted sum of batch-normalised x; reference uses tf.moments + tf.batchNorm. */
function batchNormGradients(useMpq: boolean): BatchNormResult {
  return tf.tidy(() => {
    // A large mean tests the centred (cancellation-free) formulas.
    const x = tf.tensor4d(values(size(bnShape), 4), bnShape).mul(3).add(5);
    const gamma = tf.tensor1d(values(3, 5)).add(1.5);
    const beta = tf.tensor1d(values(3, 6));
    const weights = tf.tensor4d(values(size(bnShape), 7), bnShape);
    const forward = (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => {
      if (useMpq) return batchNormTrain(a as tf.Tensor4D, g as tf.Tensor1D, b as tf.Tensor1D, 1e-5);
      const { mean, variance } = tf.moments(a, [0, 1, 2]);
      return { y: tf.batchNorm(a, mean, variance, b as tf.Tensor1D, g as tf.Tensor1D, 1e-5), mean, variance };
    };
    const { y, mean, variance } = forward(x, gamma, beta);
    const [dx, dGamma, dBeta] = tf.grads((a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => forward(a, g, b).y.mul(weights).sum())([x, gamma, beta]);
    const read = (t: tf.Tensor) => t.dataSync() as Float32Array;
    return { y: read(y), mean: read(mean), variance: read(variance), dx: read(dx), dGamma: read(dGamma), dBeta: read(dBeta) };
  });
}

const nativeInstalled = ['@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu'].some((name) => {
  try {
    createRequire(import.meta.url).resolve(name);
    return true;
  } catch {
    return false;
  }
});

test('initBackend names the flag value of an unavailable backend', { skip: nativeInstalled && 'tfjs-node is installed' }, async () => {
  await assert.rejects(initBackend('tensorflow'), (error: unknown) => {
    assert.ok(error instanceof UserError);
    assert.match(error.message, /--backend tensorflow/);
    assert.doesNotMatch(error.message, /\n/);
    return true;
  });
});

test('wasm convolution gradients match the cpu backend (multi-threaded wasm build)', async () => {
  const expected = new Map<string, ReturnType<typeof convGradients>>();
  assert.equal(await initBackend('cpu'), 'cpu');
  for (const c of convCases) expected.set(c.name, convGradients(c));
  // The first wasm start in this process: two XNNPACK threads, whatever the machine's load.
  assert.equal(await initBackend('wasm', { wasmThreads: 2 }), 'wasm');
  assert.equal(getThreadsCount(), 2);
  for (const c of convCases) {
    const got = convGradients(c);
    const want = expected.get(c.name)!;
    assert.ok(relativeGap(got.dx, want.dx) < 1e-4, `${c.name}: dx differs by ${relativeGap(got.dx, want.dx)}`);
    assert.ok(relativeGap(got.dFilter, want.dFilter) < 1e-4, `${c.name}: dfilter differs by ${relativeGap(got.dFilter, want.dFilter)}`);
  }
});

test('batchNormTrain matches tf.moments + tf.batchNorm on cpu, on wasm and cpu', async () => {
  await initBackend('cpu');
  const reference = batchNormGradients(false);
  const onCpu = batchNormGradients(true);
  await initBackend('wasm');
  const onWasm = batchNormGradients(true);
  for (const [backend, got] of [['cpu', onCpu], ['wasm', onWasm]] as const) {
    for (const key of Object.keys(reference) as (keyof BatchNormResult)[]) {
      const gap = relativeGap(got[key], reference[key]);
      assert.ok(gap < 1e-4, `${backend} ${key} differs by ${gap}`);
    }
  }
});

/**
 * Every parameter gradient of a small CNN (strided conv, batchNormTrain, relu6, depthwise conv,
 * max and average pooling, dense, softmax cross-entropy) on the active backend, in a fixed order.
 */
function smallCnnGradients(): Float32Array[] {
  return tf.tidy(() => {
    const images = tf.tensor4d(values(4 * 12 * 12 * 3, 8), [4, 12, 12, 3]);
    const labels = tf.oneHot(tf.tensor1d([0, 2, 1, 2], 'int32'), 3);
    const params = [
      tf.tensor4d(values(3 * 3 * 3 * 8, 9), [3, 3, 3, 8]).mul(0.3),
      tf.ones([8]),
      tf.zeros([8]),
      tf.tensor4d(values(3 * 3 * 8 * 2, 10), [3, 3, 8, 2]).mul(0.3),
      tf.tensor2d(values(16 * 3, 11), [16, 3]).mul(0.3),
      tf.zeros([3]),
    ];
    const loss = (...[conv, gamma, beta, depthwise, dense, bias]: tf.Tensor[]) => {
      const features = tf.conv2d(images, conv as tf.Tensor4D, 2, 'same');
      const normalised = batchNormTrain(features, gamma as tf.Tensor1D, beta as tf.Tensor1D).y;
      const dw = tf.depthwiseConv2d(tf.relu6(normalised), depthwise as tf.Tensor4D, 1, 'same');
      const pooled = tf.avgPool(tf.maxPool(dw, 2, 2, 'valid'), 3, 3, 'valid').reshape([4, 16]);
      return tf.losses.softmaxCrossEntropy(labels, pooled.matMul(dense).add(bias)) as tf.Scalar;
    };
    return tf.grads(loss)(params).map((grad) => grad.dataSync() as Float32Array);
  });
}

test('a small CNN with depthwise convs and pooling gets the same gradients on wasm as on cpu', async () => {
  await initBackend('cpu');
  const expected = smallCnnGradients();
  await initBackend('wasm');
  const got = smallCnnGradients();
  for (let i = 0; i < expected.length; i++) {
    const gap = relativeGap(got[i], expected[i]);
    assert.ok(gap < 1e-4, `parameter ${i}: gradient differs by ${gap}`);
  }
});

test('wasm maxPool gradient matches cpu, including windows whose maximum is <= 0 and ties', async () => {
  // Negative values, a zero block (a tie, as after ReLU), overlapping 'same' windows and valid ones.
  const x = values(2 * 7 * 7 * 3, 12).map((v, i) => (i % 5 === 0 ? 0 : v - 0.6));
  const cases: [number, number, 'same' | 'valid'][] = [[2, 2, 'valid'], [3, 2, 'same'], [3, 1, 'same'], [2, 1, 'valid']];
  const gradients = () =>
    cases.map(([size, stride, pad]) =>
      tf.tidy(() => {
        const input = tf.tensor4d(x, [2, 7, 7, 3]);
        const weights = tf.tensor(values(tf.maxPool(input, size, stride, pad).size, 13), tf.maxPool(input, size, stride, pad).shape);
        return tf.grad((a: tf.Tensor) => tf.maxPool(a as tf.Tensor4D, size, stride, pad).mul(weights).sum())(input).dataSync() as Float32Array;
      }),
    );
  await initBackend('cpu');
  const expected = gradients();
  await initBackend('wasm');
  const got = gradients();
  cases.forEach((c, i) => assert.ok(relativeGap(got[i], expected[i]) < 1e-6, `maxPool ${c.join(' ')}: dx differs`));
});

test('batchNormTrain leaks no tensors', async () => {
  await initBackend('wasm');
  const x = tf.randomNormal([2, 3, 3, 4]);
  const gamma = tf.ones([4]) as tf.Tensor1D;
  const beta = tf.zeros([4]) as tf.Tensor1D;
  const before = tf.memory().numTensors;
  tf.tidy(() => {
    const { y, mean, variance } = batchNormTrain(x, gamma, beta);
    return [y, mean, variance];
  }).forEach((t) => t.dispose());
  tf.tidy(() => tf.grads((a: tf.Tensor) => batchNormTrain(a, gamma, beta).y.sum())([x])).forEach((t) => t.dispose());
  assert.equal(tf.memory().numTensors, before);
  tf.dispose([x, gamma, beta]);
});

test('unsupported wasm gradient configurations fail with a clear UserError', async () => {
  await initBackend('wasm');
  const x = tf.zeros([1, 5, 5, 2]);
  const dy = tf.zeros([1, 5, 5, 2]);
  const filter = tf.zeros([3, 3, 2, 1]);
  const isUserError = (pattern: RegExp) => (error: unknown) => error instanceof UserError && pattern.test(error.message);
  assert.throws(
    () => tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, { strides: 1, pad: 'same', dataFormat: 'NCHW', filterShape: [3, 3, 2, 2] }),
    isUserError(/Conv2DBackpropFilter.*NHWC only, got NCHW/),
  );
  assert.throws(
    () => tf.engine().runKernel('DepthwiseConv2dNativeBackpropInput', { dy, filter }, { strides: 1, pad: 'same', dilations: 2, inputShape: [1, 5, 5, 2] }),
    isUserError(/DepthwiseConv2dNativeBackpropInput.*dilation 1 only, got dilations \[2, 2\]/),
  );
  tf.dispose([x, dy, filter]);
});

test('data-parallel workers return the size-weighted mean of per-shard gradients', async () => {
  await initBackend('wasm');
  const replica = createReplica();
  const weights = replica.variables.map((variable) => variable.dataSync() as Float32Array);
  const batch = {
    images: tf.tensor4d(values(5 * 32 * 32 * 3, 14), [5, 32, 32, 3]),
    labels: tf.oneHot(tf.tensor1d([1, 4, 0, 9, 4], 'int32'), 10),
  };
  const shards = splitBatch(batch, 2);
  assert.deepEqual(shards.map((shard) => shard.images.shape[0]), [3, 2]);

  // Reference: the same replica, one shard at a time, in this thread.
  const expected = replica.variables.map((variable) => new Float32Array(variable.size));
  let expectedLoss = 0;
  for (const shard of shards) {
    const share = shard.images.shape[0] / 5;
    const inputs = Object.fromEntries(Object.entries(shard).map(([name, data]) => [name, tf.tensor(data.values, data.shape, data.dtype)]));
    const { value, grads } = tf.variableGrads(() => replica.loss(inputs), replica.variables);
    expectedLoss += value.dataSync()[0] * share;
    replica.variables.forEach((variable, v) => grads[variable.name].dataSync().forEach((g, k) => (expected[v][k] += g * share)));
    tf.dispose([value, ...Object.values(grads), ...Object.values(inputs)]);
  }

  const pool = await DataParallelGradients.start({ workers: 2, replicaModule: new URL('../bench/train-step.js', import.meta.url) });
  try {
    const { gradients, loss } = await pool.gradients(weights, shards);
    assert.ok(Math.abs(loss - expectedLoss) < 1e-4 * Math.abs(expectedLoss), `loss ${loss} vs ${expectedLoss}`);
    gradients.forEach((grad, v) => assert.ok(relativeGap(grad, expected[v]) < 1e-4, `variable ${v}: gradient differs by ${relativeGap(grad, expected[v])}`));
  } finally {
    await pool.close();
    tf.dispose([batch.images, batch.labels, ...replica.variables]);
  }
});
