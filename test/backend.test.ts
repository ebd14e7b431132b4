import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs';
import { getThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import { DataParallelGradients, splitBatch } from '../src/train/backend/data-parallel.js';
import { createReplica, type ModelReplicaOptions, type ModelReplicaTask } from '../src/train/backend/model-replica.js';
import { loadMnistPackage, subset, type Dataset } from '../src/train/data.js';
import { DEFAULT_HYPERPARAMETERS, fullPrecisionPasses, jointPretrainPasses, trainLoop, type PassMetrics } from '../src/train/loops.js';
import { createModel, namedVariables } from '../src/train/models.js';
import { uniformPolicy } from '../src/train/policies.js';
import { batchNormTrain, initBackend } from '../src/train/backend/index.js';
import { quantizerFactory } from '../src/train/quantizer-factory.js';
import { fakeQuantize, fakeQuantizeUnfused } from '../src/quant/quantizer.js';
import { fakeQuantSimd } from '../src/train/backend/fake-quant-simd.js';
import { gradScale } from '../src/quant/ste.js';
import { FieldError, UserError } from '../src/util/errors.js';
import { inFlags } from '../src/cli/run.js';
import { relativeGap } from './support.js';

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

test('initBackend names the field and value of an unavailable backend (the CLI: its flag)', { skip: nativeInstalled && 'tfjs-node is installed' }, async () => {
  await assert.rejects(initBackend('tensorflow'), (error: unknown) => {
    assert.ok(error instanceof FieldError);
    assert.match(error.message, /^backend tensorflow: .*\(use backend wasm\)$/);
    assert.match((inFlags(error) as Error).message, /^--backend tensorflow: .*\(use --backend wasm\)$/);
    assert.doesNotMatch(error.message, /\n/);
    return true;
  });
});

test('wasm convolution gradients match the cpu backend (multi-threaded wasm build)', async () => {
  const expected = new Map<string, ReturnType<typeof convGradients>>();
  assert.equal(await initBackend('cpu'), 'cpu');
  for (const c of convCases) expected.set(c.name, convGradients(c));
  // The first wasm start in this process: two XNNPACK threads, whatever the machine's load.
  assert.equal(await initBackend('wasm', { threads: 2 }), 'wasm');
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

test('a data-parallel step returns the shard-size-weighted mean of per-shard gradients, metrics and changed state', async () => {
  await initBackend('wasm');
  // per-channel weight steps: the replica is rebuilt with them (vector state and gradients)
  const options: ModelReplicaOptions = { model: 'mnist-cnn', bits: [4], perChannelWeights: true, fixed: ['conv1', 'fc'] };
  // The reference runs the same replica code in this thread, one shard at a time from the same state.
  const replica = createReplica(options);
  const task: ModelReplicaTask = { passes: [{ label: 'w4a4', policy: uniformPolicy(createModel('mnist-cnn', { bits: [4] }), 4) }], labelSmoothing: 0.1 };
  const start = replica.state.map((variable) => Float32Array.from(variable.dataSync()));
  const batch = { x: tf.tensor4d(values(5 * 28 * 28, 14), [5, 28, 28, 1]), y: tf.tensor1d([1, 4, 0, 9, 4], 'int32') };
  const shards = splitBatch(batch, 2);
  assert.deepEqual(shards.map((shard) => shard.x.shape[0]), [3, 2]);

  const expectedGradients: (Float32Array | undefined)[] = [];
  const expectedState = start.map((a) => new Float32Array(a.length));
  let expectedLoss = 0;
  let expectedCorrect = 0;
  let trainableCount = 0;
  for (const shard of shards) {
    const share = shard.x.shape[0] / 5;
    tf.tidy(() => replica.state.forEach((variable, i) => variable.assign(tf.tensor(start[i], variable.shape))));
    const inputs = Object.fromEntries(Object.entries(shard).map(([name, data]) => [name, tf.tensor(data.values, data.shape, data.dtype)]));
    const { gradients, report } = replica.gradients(inputs, task);
    trainableCount = gradients.length;
    gradients.forEach((g, v) => {
      if (!g) return; // a variable the pass does not use (the FP batch-norm set)
      const sum = (expectedGradients[v] ??= new Float32Array(g.size));
      g.dataSync().forEach((value, k) => (sum[k] += value * share));
    });
    replica.state.forEach((variable, i) => variable.dataSync().forEach((value, k) => (expectedState[i][k] += value * share)));
    const [metrics] = report as PassMetrics[];
    expectedLoss += metrics.loss * share;
    expectedCorrect += metrics.correct;
    tf.dispose([...gradients.filter((g) => g !== undefined), ...Object.values(inputs)]);
  }

  const pool = await DataParallelGradients.start({
    workers: 2, replicaModule: new URL('../src/train/backend/model-replica.js', import.meta.url), replicaOptions: options,
  });
  try {
    const step = await pool.step(start, shards, task);
    assert.equal(step.gradients.length, trainableCount);
    step.gradients.forEach((g, v) => {
      const want = expectedGradients[v];
      if (!want || !g) return assert.equal(g, want, `variable ${v}: a gradient on one side only`);
      assert.ok(relativeGap(g, want) < 1e-4, `variable ${v}: gradient differs by ${relativeGap(g, want)}`);
    });
    assert.ok(step.gradients.filter((g) => g !== undefined).length > 10);
    // the first quantized step initialises the LSQ step sizes and moves the 4-bit BN statistics
    const names = [...namedVariables(createModel('mnist-cnn', { bits: [4] })).keys()];
    const changed = [...step.state.keys()].map((i) => names[i]);
    assert.ok(changed.includes('conv2.quan_w_fn.s.4') && changed.includes('bn2.bns.4.running_mean'), `changed: ${changed.join(', ')}`);
    start.forEach((sent, i) => {
      const got = step.state.get(i) ?? sent;
      assert.ok(relativeGap(got, expectedState[i]) < 1e-5, `${names[i]} differs by ${relativeGap(got, expectedState[i])}`);
    });
    const metrics = step.reports.map((r) => ({ ...(r.report as PassMetrics[])[0], size: r.size }));
    assert.deepEqual(metrics.map((m) => m.size), [3, 2]);
    assert.equal(metrics.reduce((sum, m) => sum + m.correct, 0), expectedCorrect);
    const loss = metrics.reduce((sum, m) => sum + (m.loss * m.size) / 5, 0);
    assert.ok(Math.abs(loss - expectedLoss) < 1e-5 * Math.abs(expectedLoss), `loss ${loss} vs ${expectedLoss}`);
  } finally {
    await pool.close();
    tf.dispose([batch.x, batch.y]);
  }
});

interface StridedCase {
  name: string;
  shape: number[];
  begin: number[];
  end: number[];
  strides: number[];
  masks?: [number, number, number, number, number];
  /** by hand: per axis of x, the first index read, the step and how many */
  reads: Array<[number, number, number]>;
}

const stridedCases: StridedCase[] = [
  {
    name: 'option-A shortcut: every other row and column', shape: [2, 8, 8, 3], begin: [0, 0, 0, 0], end: [2, 8, 8, 3], strides: [1, 2, 2, 1],
    reads: [[0, 1, 2], [0, 2, 4], [0, 2, 4], [0, 1, 3]],
  },
  {
    name: 'odd extent, stride 3 on the last axis', shape: [2, 7, 5, 7], begin: [0, 1, 0, 1], end: [2, 7, 5, 7], strides: [1, 2, 1, 3],
    reads: [[0, 1, 2], [1, 2, 3], [0, 1, 5], [1, 3, 2]],
  },
  { name: 'negative stride', shape: [3, 7, 5], begin: [1, 6, 0], end: [3, 0, 5], strides: [1, -2, 2], reads: [[1, 1, 2], [6, -2, 3], [0, 2, 3]] },
  {
    // (tfjs's cpu kernel reads the wrong elements here: x[i, j, 0])
    name: 'end mask and a shrunk middle axis', shape: [4, 6, 2], begin: [1, 2, 1], end: [0, 6, 2], strides: [2, 3, 1], masks: [0, 1, 0, 0, 4],
    reads: [[1, 2, 2], [2, 3, 2], [1, 1, 1]],
  },
];

/** Flat indices of x the case reads, in output order. */
function stridedReads(c: StridedCase): number[] {
  const strides = c.shape.map((_, j) => c.shape.slice(j + 1).reduce((a, b) => a * b, 1));
  let offsets = [0];
  c.reads.forEach(([first, step, count], j) => {
    offsets = offsets.flatMap((o) => Array.from({ length: count }, (_, k) => o + (first + k * step) * strides[j]));
  });
  return offsets;
}

const stridedSlice = (x: tf.Tensor, c: StridedCase) => tf.stridedSlice(x, c.begin, c.end, c.strides, ...(c.masks ?? []));

test('wasm StridedSlice reads, and the StridedSlice gradient (any backend) writes back, the elements a strided slice takes', async () => {
  for (const backend of ['cpu', 'wasm'] as const) {
    await initBackend(backend);
    for (const c of stridedCases) {
      tf.tidy(() => {
        const read = stridedReads(c);
        const x = tf.tensor(values(size(c.shape), 15), c.shape);
        const sliced = stridedSlice(x, c);
        assert.equal(sliced.size, read.length, `${backend} ${c.name}: size`);
        const xs = x.dataSync();
        if (backend === 'wasm') assert.deepEqual(Array.from(sliced.dataSync()), read.map((i) => xs[i]), `${c.name}: values`);
        const weights = tf.tensor(values(sliced.size, 16), sliced.shape);
        const dx = tf.grad((a: tf.Tensor) => stridedSlice(a, c).mul(weights).sum())(x).dataSync();
        const expected = new Float32Array(x.size);
        weights.dataSync().forEach((w, k) => (expected[read[k]] += w));
        assert.deepEqual(Array.from(dx), Array.from(expected), `${backend} ${c.name}: gradient`);
      });
    }
  }
});

test('wasm Identity shares memory: a clone outlives its source without a copy', async () => {
  await initBackend('wasm');
  const x = tf.tensor([1.5, -2, 3]);
  const dataIds = tf.backend().numDataIds();
  const y = tf.clone(x);
  assert.equal(tf.backend().numDataIds(), dataIds);
  x.dispose();
  assert.deepEqual(Array.from(y.dataSync()), [1.5, -2, 3]);
  y.dispose();
  assert.equal(tf.backend().numDataIds(), dataIds - 1);
});

interface FakeQuantCase {
  name: string;
  shape: number[];
  step: number[];
  range: { lo: number; hi: number };
}

const fakeQuantCases: FakeQuantCase[] = [
  { name: 'unsigned 4-bit activations, per-tensor step', shape: [3, 5, 4, 6], step: [0.25], range: { lo: 0, hi: 15 } },
  { name: 'signed 4-bit weights, per-tensor step', shape: [3, 3, 4, 5], step: [0.125], range: { lo: -8, hi: 7 } },
  { name: 'signed 3-bit, one step per output channel', shape: [3, 3, 2, 4], step: [0.25, 0.5, 0.0625, 1], range: { lo: -4, hi: 3 } },
  { name: 'symmetric 2-bit dense input, scalar step of rank 0', shape: [7, 9], step: [], range: { lo: -1, hi: 1 } },
];

/**
 * Values, gradients w.r.t. x and the step (through LSQ's gradient scale) of a weighted sum of the
 * fake-quantized x. x holds ties (k + 1/2 steps), range ends and values beyond them.
 */
function fakeQuantInput(c: FakeQuantCase): Float32Array {
  const steps = c.step.length === 0 ? [0.25] : c.step;
  const special = [c.range.lo - 1, c.range.lo, c.range.lo + 0.5, 0.5, 1.5, 2.5, c.range.hi - 0.5, c.range.hi, c.range.hi + 0.5, c.range.hi + 3];
  return values(size(c.shape), 17).map((v, i) => {
    const s = steps[i % steps.length];
    return i % 3 === 0 ? special[(i / 3) % special.length] * s : v * (c.range.hi - c.range.lo + 2) * s * 0.6;
  });
}

/** LSQ's step gradient in float64 from its definition: Σ weight · (round(x/s) − x/s inside, lo or hi outside) · scale. */
function stepGradientByHand(c: FakeQuantCase, scale: number): number[] {
  const steps = c.step.length === 0 ? [0.25] : c.step;
  const sums = steps.map(() => 0);
  const weights = values(size(c.shape), 18);
  fakeQuantInput(c).forEach((x, i) => {
    const k = i % steps.length;
    const v = x / steps[k];
    // halves to even, as tf.round
    const rounded = Math.abs(v % 1) === 0.5 ? 2 * Math.round(v / 2) : Math.round(v);
    sums[k] += weights[i] * scale * (v < c.range.lo ? c.range.lo : v > c.range.hi ? c.range.hi : rounded - v);
  });
  return c.step.length === 0 || c.step.length === 1 ? [sums.reduce((a, b) => a + b, 0)] : sums;
}

function fakeQuantResults(c: FakeQuantCase, quantize: typeof fakeQuantize): { y: Float32Array; dx: Float32Array; dStep: Float32Array } {
  return tf.tidy(() => {
    const x = tf.tensor(fakeQuantInput(c), c.shape);
    const step = c.step.length === 0 ? tf.scalar(0.25) : tf.tensor1d(c.step);
    const weights = tf.tensor(values(size(c.shape), 18), c.shape);
    const y = quantize(x, step, c.range);
    const [dx, dStep] = tf.grads((a: tf.Tensor, s: tf.Tensor) => quantize(a, gradScale(s, 0.3), c.range).mul(weights).sum())([x, step]);
    return { y: y.dataSync() as Float32Array, dx: dx.dataSync() as Float32Array, dStep: dStep.dataSync() as Float32Array };
  });
}

test('the fused fake-quantize kernel equals the unfused ops (values exactly, dx within 1e-6) and LSQ\'s step gradient (within 1e-6)', async () => {
  for (const backend of ['cpu', 'wasm'] as const) {
    await initBackend(backend);
    if (backend === 'wasm') {
      // per-tensor steps take the SIMD loops on the heap (else the JS loops: right, but ~20x slower)
      const module = (tf.backend() as unknown as { wasm: { wasmMemory?: WebAssembly.Memory; asm?: { memory?: WebAssembly.Memory } } }).wasm;
      assert.notEqual(fakeQuantSimd((module.wasmMemory ?? module.asm?.memory)!), null);
    }
    for (const c of fakeQuantCases) {
      const fused = fakeQuantResults(c, fakeQuantize);
      const unfused = fakeQuantResults(c, fakeQuantizeUnfused);
      // === (not deepEqual): the unfused ops may give -0 where the kernel gives 0
      fused.y.forEach((v, i) => assert.ok(v === unfused.y[i], `${backend} ${c.name}: y[${i}] ${v} vs ${unfused.y[i]}`));
      assert.ok(relativeGap(fused.dx, unfused.dx) <= 1e-6, `${backend} ${c.name}: dx differs by ${relativeGap(fused.dx, unfused.dx)}`);
      // the kernel sums in float64, the unfused ops in float32: compare both with the definition
      const byHand = Float32Array.from(stepGradientByHand(c, 0.3));
      for (const [which, got, tolerance] of [['fused', fused.dStep, 1e-6], ['unfused', unfused.dStep, 1e-5]] as const) {
        const gap = relativeGap(got, byHand);
        assert.ok(gap <= tolerance, `${backend} ${c.name}: ${which} dstep differs from the definition by ${gap}`);
      }
      assert.ok(fused.dx.some((g) => g === 0) && fused.dx.some((g) => g !== 0), `${backend} ${c.name}: x should reach both sides of the range`);
    }
  }
});

test('trainLoop with one worker ends where the in-thread loop does; with two it trains and carries BN statistics back', async () => {
  await initBackend('wasm');
  const mnist = loadMnistPackage(0);
  const tiny: Dataset = { ...mnist, train: subset(mnist.train, 32), test: subset(mnist.test, 16) };
  // joint pretraining: several passes per step, clipping, LSQ step sizes initialised in the first step
  const run = async (workers?: number) => {
    const model = createModel('mnist-cnn', { bits: [4, 2], seed: 3 });
    const reports = await trainLoop(model, tiny, {
      stage: 'pretrain', hyper: { ...DEFAULT_HYPERPARAMETERS.pretrain, epochs: 1, batchSize: 16 }, seed: 3,
      passes: jointPretrainPasses(model), evalPolicy: uniformPolicy(model, 4), workers,
    });
    return { reports, state: new Map([...namedVariables(model)].map(([name, v]) => [name, Float32Array.from(v.dataSync())])) };
  };
  const inThread = await run();
  const oneWorker = await run(1);
  for (const [name, values] of inThread.state) {
    const gap = relativeGap(oneWorker.state.get(name)!, values);
    assert.ok(gap < 1e-5, `${name} differs by ${gap}`);
  }
  assert.equal(oneWorker.reports[0].testTop1, inThread.reports[0].testTop1);

  const twoWorkers = await run(2);
  const initialMean = createModel('mnist-cnn', { bits: [4, 2], seed: 3 }).batchNorms[1].set('4').movingMean.dataSync();
  assert.ok(relativeGap(twoWorkers.state.get('bn2.bns.4.running_mean')!, Float32Array.from(initialMean)) > 0, 'running mean did not move');
  assert.ok(twoWorkers.state.get('conv3.quan_a_fn.s_init.4')![0] === 1, 'step size not initialised');
  assert.deepEqual(Object.keys(twoWorkers.reports[0].train), ['w4a4', 'w2a2', 'mixed']);
  for (const m of Object.values(twoWorkers.reports[0].train)) assert.ok(Number.isFinite(m.loss) && m.top1 >= 0 && m.top1 <= 1);

  const options = {
    stage: 'finetune' as const, hyper: { ...DEFAULT_HYPERPARAMETERS.finetune, epochs: 1, batchSize: 16 }, seed: 3,
    passes: fullPrecisionPasses, evalPolicy: {},
  };
  const userError = (pattern: RegExp) => (e: unknown) => e instanceof UserError && pattern.test(e.message);
  const dorefa = createModel('mnist-cnn', { bits: [4], quantizers: quantizerFactory({ name: 'dorefa' }) });
  await assert.rejects(trainLoop(dorefa, tiny, { ...options, workers: 2 }), userError(/^workers: .*LSQ quantizers only.*'dorefa'$/));
  await assert.rejects(trainLoop(createModel('mnist-cnn'), tiny, { ...options, workers: -1 }), userError(/^workers: must be a positive integer, got -1$/));
});
