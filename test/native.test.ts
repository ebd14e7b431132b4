/**
 * mpq's native (oneDNN) kernels against the wasm kernels they replace, on random shapes, strides,
 * paddings, dilations and depthwise multipliers: every output within 1e-5 of the wasm kernel's,
 * relative to its largest magnitude, and of the cpu backend's (tfjs's plain loops, the referee where
 * the wasm kernel is wrong: its Conv2D is, for 'same' padding at a stride larger than the filter).
 * Runs when the addon is built (skips, saying why, when not; CI sets MPQ_REQUIRE_NATIVE=1 once it
 * has installed oneDNN, and then the addon must be there).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import type { NamedAttrMap } from '@tensorflow/tfjs';
import { batchNormTrain, groupedConv2d, initBackend, loadNative } from '../src/train/backend/index.js';
import { nativeKernelsActive, useNativeKernels } from '../src/train/backend/native.js';
import { fusedFakeQuantize } from '../src/train/backend/fake-quant.js';
import { convolve, type ConvShape } from '../src/train/layers.js';
import { SgdMomentum } from '../src/train/optimizer.js';
import { Prng } from '../src/util/prng.js';
import { UserError } from '../src/util/errors.js';
import { relativeGap, runCli, tempDir } from './support.js';

const load = loadNative();
const skip = load.addon ? false : `native kernels ${load.reason}`;
const TOLERANCE = 1e-5;

test('the native kernels are built where CI installed oneDNN', { skip: process.env.MPQ_REQUIRE_NATIVE !== '1' && 'MPQ_REQUIRE_NATIVE is not set' }, () => {
  assert.ok(load.addon, `native kernels ${load.reason}`);
});

interface Outputs {
  native: Float32Array[];
  wasm: Float32Array[];
  cpu: Float32Array[];
}

/** The tensors `run` returns, computed with the native kernels, the wasm ones and on the cpu backend. */
async function onAll(run: () => tf.Tensor[]): Promise<Outputs> {
  const read = () => tf.tidy(() => run().map((t) => Float32Array.from(t.dataSync())));
  await tf.setBackend('cpu');
  const cpu = read();
  await tf.setBackend('wasm');
  useNativeKernels(true);
  const native = read();
  useNativeKernels(false);
  const wasm = read();
  return { native, wasm, cpu };
}

/**
 * Each output of `run` on the native kernels is within TOLERANCE of the wasm kernel's, or, where
 * the wasm kernel is not within it of the cpu backend's, of the cpu backend's. Returns the outputs
 * the wasm kernel got wrong.
 */
async function assertClose(label: string, run: () => tf.Tensor[], names: string[]): Promise<string[]> {
  const { native, wasm, cpu } = await onAll(run);
  const wasmWrong: string[] = [];
  names.slice(0, native.length).forEach((name, i) => {
    if (relativeGap(wasm[i], cpu[i]) > TOLERANCE) wasmWrong.push(`${label}: ${name}`);
    const [reference, referee] = wasmWrong.at(-1) === `${label}: ${name}` ? [cpu[i], 'cpu'] : [wasm[i], 'wasm'];
    const gap = relativeGap(native[i], reference);
    assert.ok(gap <= TOLERANCE, `${label}: ${name} differs from the ${referee} kernel's by ${gap.toExponential(2)}`);
  });
  return wasmWrong;
}

/** Equal as numbers (0 and −0 alike). */
function assertSameValues(actual: Float32Array, expected: Float32Array, label: string): void {
  assert.equal(actual.length, expected.length);
  const first = actual.findIndex((v, i) => v !== expected[i]);
  assert.equal(first, -1, `${label}: element ${first} is ${actual[first]}, expected ${expected[first]}`);
}

const random = (rng: Prng, shape: number[]) => tf.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => 2 * rng.next() - 1), shape);
const between = (rng: Prng, lo: number, hi: number) => lo + rng.int(hi - lo + 1);

type Pad = 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];

interface ConvCase {
  label: string;
  depthwise: boolean;
  x: [number, number, number, number];
  filter: [number, number, number, number];
  strides: [number, number];
  dilations: [number, number];
  pad: Pad;
  outShape: number[];
}

/** A random convolution (tfjs rules: dilation only at stride 1) whose output is not empty. */
function convCase(rng: Prng, depthwise: boolean, dilated: boolean): ConvCase {
  for (;;) {
    const x: ConvCase['x'] = [between(rng, 1, 3), between(rng, 4, 13), between(rng, 4, 13), between(rng, 1, 9)];
    const kernel = [between(rng, 1, 5), between(rng, 1, 5)];
    const filter: ConvCase['filter'] = [kernel[0], kernel[1], x[3], depthwise ? between(rng, 1, 3) : between(rng, 1, 9)];
    const strides: [number, number] = dilated ? [1, 1] : [between(rng, 1, 3), between(rng, 1, 3)];
    const dilations: [number, number] = dilated ? [between(rng, 1, 3), between(rng, 1, 3)] : [1, 1];
    const choice = rng.int(3);
    const pad: Pad = choice === 0 ? 'same' : choice === 1 ? 'valid'
      : [[0, 0], [rng.int(4), rng.int(4)], [rng.int(4), rng.int(4)], [0, 0]];
    const info = tf.backend_util.computeConv2DInfo(x, filter, strides, dilations, pad, undefined, depthwise, 'channelsLast');
    if (info.outHeight < 1 || info.outWidth < 1) continue;
    const label = `${depthwise ? 'depthwise ' : ''}x ${x} filter ${filter} strides ${strides} dilations ${dilations} pad ${JSON.stringify(pad)}`;
    return { label, depthwise, x, filter, strides, dilations, pad, outShape: info.outShape };
  }
}

/** Forward, backward-data and backward-weights kernels of a case, run directly. */
function convKernels(c: ConvCase, seed: number): tf.Tensor[] {
  const rng = new Prng(seed);
  const x = random(rng, c.x);
  const filter = random(rng, c.filter);
  const dy = random(rng, c.outShape);
  const common = { strides: c.strides, pad: c.pad, dimRoundingMode: undefined };
  const run = (name: string, inputs: Record<string, tf.Tensor>, attrs: object) =>
    tf.engine().runKernel(name, inputs, attrs as unknown as NamedAttrMap) as tf.Tensor;
  const dilated = c.dilations.some((d) => d > 1);
  if (c.depthwise) {
    const attrs = { ...common, dilations: c.dilations };
    const forward = run(tf.DepthwiseConv2dNative, { x, filter }, { ...attrs, dataFormat: 'NHWC' });
    // mpq's wasm depthwise gradients take dilation 1 only
    if (dilated) return [forward];
    return [
      forward,
      run(tf.DepthwiseConv2dNativeBackpropInput, { dy, filter }, { ...attrs, inputShape: c.x }),
      run(tf.DepthwiseConv2dNativeBackpropFilter, { x, dy }, { ...attrs, filterShape: c.filter }),
    ];
  }
  const forward = run(tf.Conv2D, { x, filter }, { ...common, dilations: c.dilations, dataFormat: 'NHWC' });
  // tfjs's conv2d gradients take no dilation
  if (dilated) return [forward];
  return [
    forward,
    run(tf.Conv2DBackpropInput, { dy, filter }, { ...common, dataFormat: 'NHWC', inputShape: c.x }),
    run(tf.Conv2DBackpropFilter, { x, dy }, { ...common, dataFormat: 'NHWC', filterShape: c.filter }),
  ];
}

test('native convolutions (forward, backward-data, backward-weights; depthwise and dilated) equal the wasm kernels', { skip }, async (t) => {
  await initBackend('native', { threads: 2 });
  const rng = new Prng(16);
  const cases = [
    ...Array.from({ length: 24 }, () => convCase(rng, false, false)),
    ...Array.from({ length: 6 }, () => convCase(rng, false, true)),
    ...Array.from({ length: 12 }, () => convCase(rng, true, false)),
    ...Array.from({ length: 4 }, () => convCase(rng, true, true)),
  ];
  const wasmWrong: string[] = [];
  for (const [i, c] of cases.entries()) wasmWrong.push(...await assertClose(c.label, () => convKernels(c, i), ['forward', 'backward-data', 'backward-weights']));
  if (wasmWrong.length > 0) t.diagnostic(`the wasm kernel is wrong (native matches the cpu backend) for ${wasmWrong.join('; ')}`);
});

test('groupedConv2d on the native kernels (one oneDNN convolution each way) equals tf.conv2d per group, values and gradients', { skip }, async () => {
  await initBackend('native', { threads: 2 });
  const rng = new Prng(21);
  for (let i = 0; i < 12; i++) {
    const groups = between(rng, 2, 4);
    const x = [between(rng, 1, 3), between(rng, 5, 12), between(rng, 5, 12), groups * between(rng, 1, 4)];
    const filter = [between(rng, 1, 3), between(rng, 1, 3), x[3] / groups, groups * between(rng, 1, 4)];
    const strides = between(rng, 1, 2);
    const pad = i % 2 === 0 ? 'same' : 'valid';
    await assertClose(`x ${x} filter ${filter} groups ${groups} strides ${strides} ${pad}`, () => {
      const r = new Prng(300 + i);
      const [input, weights] = [random(r, x) as tf.Tensor4D, random(r, filter) as tf.Tensor4D];
      const conv = (a: tf.Tensor, b: tf.Tensor) => groupedConv2d(a as tf.Tensor4D, b as tf.Tensor4D, { strides, pad, groups });
      const y = conv(input, weights);
      const upstream = random(r, y.shape);
      return [y, ...tf.grads((a: tf.Tensor, b: tf.Tensor) => conv(a, b).mul(upstream).sum())([input, weights])];
    }, ['y', 'dx', 'dfilter']);
  }
});

test('dilated groupedConv2d has native gradients, equal to those of the undilated convolution with the filter spread out', { skip }, async () => {
  await initBackend('native', { threads: 2 });
  const rng = new Prng(22);
  for (let i = 0; i < 8; i++) {
    const groups = between(rng, 1, 2);
    const x = [between(rng, 1, 2), between(rng, 9, 14), between(rng, 9, 14), groups * between(rng, 1, 3)];
    const [kh, kw, dh, dw] = [between(rng, 2, 3), between(rng, 2, 3), between(rng, 1, 3), between(rng, 2, 3)];
    const filter = [kh, kw, x[3] / groups, groups * between(rng, 1, 3)];
    const pad = i % 2 === 0 ? 'same' : 'valid';
    await assertClose(`x ${x} filter ${filter} groups ${groups} dilations ${dh},${dw} ${pad}`, () => {
      const r = new Prng(400 + i);
      const [input, weights] = [random(r, x) as tf.Tensor4D, random(r, filter) as tf.Tensor4D];
      const upstream = () => random(new Prng(500 + i), y.shape);
      let y: tf.Tensor4D;
      if (nativeKernelsActive()) {
        const conv = (a: tf.Tensor, b: tf.Tensor) => groupedConv2d(a as tf.Tensor4D, b as tf.Tensor4D, { pad, groups, dilations: [dh, dw] });
        y = conv(input, weights);
        return [y, ...tf.grads((a: tf.Tensor, b: tf.Tensor) => conv(a, b).mul(upstream()).sum())([input, weights])];
      }
      // the reference: the filter's taps spread dh, dw apart with zeros between, at dilation 1
      const values = weights.arraySync() as number[][][][];
      const spread = tf.buffer([(kh - 1) * dh + 1, (kw - 1) * dw + 1, filter[2], filter[3]]);
      values.forEach((row, a) => row.forEach((taps, b) => taps.forEach((ins, c) => ins.forEach((v, d) => spread.set(v, a * dh, b * dw, c, d)))));
      const conv = (a: tf.Tensor, b: tf.Tensor) => groupedConv2d(a as tf.Tensor4D, b as tf.Tensor4D, { pad, groups });
      y = conv(input, spread.toTensor() as tf.Tensor4D);
      const [dx, dSpread] = tf.grads((a: tf.Tensor, b: tf.Tensor) => conv(a, b).mul(upstream()).sum())([input, spread.toTensor()]);
      return [y, dx, tf.stridedSlice(dSpread, [0, 0, 0, 0], dSpread.shape, [dh, dw, 1, 1])];
    }, ['y', 'dx', 'dfilter']);
  }
});

test('the layers\' convolve runs groups, dilation and asymmetric pads as one native convolution, equal to its tfjs composition', { skip }, async () => {
  await initBackend('native', { threads: 2 });
  const shapes: ConvShape[] = [
    { inChannels: 6, outChannels: 9, kernel: [3, 3], strides: [2, 2], pads: [1, 0, 1, 1], dilations: [1, 1], groups: 3 },
    { inChannels: 4, outChannels: 8, kernel: [3, 2], strides: [1, 1], pads: [2, 1, 0, 1], dilations: [2, 3], groups: 4 },
    // square: the composition's symmetric padding is tfjs's numeric one, which takes the filter's
    // height and the stride's first value for both axes
    { inChannels: 5, outChannels: 3, kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], dilations: [2, 2], groups: 1 },
  ];
  for (const [i, shape] of shapes.entries()) {
    await assertClose(JSON.stringify(shape), () => {
      const r = new Prng(600 + i);
      const x = random(r, [2, 11, 10, shape.inChannels]) as tf.Tensor4D;
      const w = random(r, [...shape.kernel, shape.inChannels / shape.groups, shape.outChannels]) as tf.Tensor4D;
      const y = convolve(x, w, shape);
      const upstream = random(r, y.shape);
      return [y, ...tf.grads((a: tf.Tensor, b: tf.Tensor) => convolve(a as tf.Tensor4D, b as tf.Tensor4D, shape).mul(upstream).sum())([x, w])];
    }, ['y', 'dx', 'dweight']);
  }
});

test('native batched matrix products (transposes, broadcast batches) equal the wasm kernel', { skip }, async () => {
  await initBackend('native', { threads: 2 });
  const rng = new Prng(17);
  for (let i = 0; i < 16; i++) {
    const [m, k, n] = [between(rng, 1, 40), between(rng, 1, 40), between(rng, 1, 40)];
    const [transposeA, transposeB] = [rng.next() < 0.5, rng.next() < 0.5];
    const batch = between(rng, 1, 3);
    // batches: equal, or one of them 1 (broadcast)
    const [batchA, batchB] = i % 3 === 0 ? [1, batch] : i % 3 === 1 ? [batch, 1] : [batch, batch];
    const label = `batch ${batchA}/${batchB} ${m}x${k} · ${k}x${n} transposes ${transposeA}/${transposeB}`;
    await assertClose(label, () => {
      const r = new Prng(i);
      const a = random(r, [batchA, ...(transposeA ? [k, m] : [m, k])]);
      const b = random(r, [batchB, ...(transposeB ? [n, k] : [k, n])]);
      return [tf.matMul(a, b, transposeA, transposeB)];
    }, ['product']);
  }
});

test('native batch norm (forward and gradients) equals the wasm batchNormTrain', { skip }, async () => {
  await initBackend('native', { threads: 2 });
  const rng = new Prng(18);
  for (let i = 0; i < 8; i++) {
    const shape = i === 7 ? [37, between(rng, 1, 20)] : [between(rng, 1, 8), between(rng, 1, 9), between(rng, 1, 9), between(rng, 1, 20)];
    const channels = shape[shape.length - 1];
    await assertClose(`x ${shape}`, () => {
      const r = new Prng(100 + i);
      // a large mean: the variance must not come from E[x²] − E[x]²
      const x = random(r, shape).mul(3).add(5);
      const gamma = random(r, [channels]).add(1.5) as tf.Tensor1D;
      const beta = random(r, [channels]) as tf.Tensor1D;
      const weights = random(r, shape);
      const { y, mean, variance } = batchNormTrain(x, gamma, beta, 1e-5);
      const grads = tf.grads((a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) =>
        batchNormTrain(a, g as tf.Tensor1D, b as tf.Tensor1D, 1e-5).y.mul(weights).sum())([x, gamma, beta]);
      return [y, mean, variance, ...grads];
    }, ['y', 'mean', 'variance', 'dx', 'dgamma', 'dbeta']);
  }
});

test('native fake quantization (per tensor and per channel) equals the wasm kernels, values exactly', { skip }, async () => {
  await initBackend('native', { threads: 2 });
  const rng = new Prng(19);
  for (let i = 0; i < 10; i++) {
    const shape = [between(rng, 1, 40), between(rng, 1, 30), between(rng, 1, 70)];
    const perChannel = i % 2 === 1;
    const [lo, hi] = i % 3 === 0 ? [0, 15] : [-8, 7];
    const run = () => {
      const r = new Prng(200 + i);
      const x = random(r, shape).mul(2);
      const step = (perChannel ? random(r, [shape[2]]) : random(r, [])).abs().add(0.05);
      const weights = random(r, shape);
      const [dx, dStep] = tf.grads((a: tf.Tensor, s: tf.Tensor) => fusedFakeQuantize(a, s, lo, hi).mul(weights).sum())([x, step]);
      return [fusedFakeQuantize(x, step, lo, hi), dx, dStep];
    };
    const label = `x ${shape} ${perChannel ? 'per channel' : 'per tensor'} [${lo}, ${hi}]`;
    await assertClose(label, run, ['values', 'dx', 'dstep']);
    const { native, wasm } = await onAll(run);
    assertSameValues(native[0], wasm[0], `${label}: values`);
    assertSameValues(native[1], wasm[1], `${label}: dx`);
  }
});

test('native elementwise kernels (add, sub, mul, ReLU and its gradient, clipping\'s gradient, SGD-momentum, slices, padding) equal the wasm ops, exactly', { skip }, async () => {
  await initBackend('native', { threads: 2 });
  const names = ['add', 'sub', 'mul', 'relu', 'relu dx', 'clip dx', 'decayed weight', 'bias', 'slice', 'strided slice', 'reversed strided slice', 'pad', 'pad 1-d'];
  const { native, wasm } = await onAll(() => {
    const r = new Prng(20);
    // large enough to run on both threads
    const x = random(r, [3, 50, 700]);
    const y = random(r, [3, 50, 700]);
    const weights = random(r, [3, 50, 700]);
    const [dx] = tf.grads((a: tf.Tensor) => tf.relu(a).mul(weights).sum())([x]);
    const [clipDx] = tf.grads((a: tf.Tensor) => tf.clipByValue(a, -0.5, 0.25).mul(weights).sum())([x]);
    const w = tf.variable(random(r, [300, 7]));
    const b = tf.variable(random(r, [7]));
    const optimizer = new SgdMomentum(0.9, 5e-4, new Set([w]));
    for (let step = 0; step < 3; step++) optimizer.step(new Map([[w, random(r, [300, 7])], [b, random(r, [7])]]), 0.05 / (step + 1));
    const image = random(r, [4, 33, 17, 24]);
    const out = [
      tf.add(x, y), tf.sub(x, y), tf.mul(x, y), tf.relu(x), dx, clipDx, w.clone(), b.clone(),
      tf.slice(image, [1, 2, 0, 5], [2, 30, -1, 11]),
      tf.stridedSlice(image, [0, 1, 0, 0], image.shape, [1, 2, 3, 1]),
      tf.stridedSlice(image, [3, 30, 16, 20], [0, 2, 0, 2], [-1, -3, -2, -5]),
      tf.pad(image, [[0, 1], [2, 0], [1, 3], [8, 8]], -0.25),
      tf.pad(random(r, [1000]), [[3, 7]]),
    ];
    optimizer.dispose();
    w.dispose();
    b.dispose();
    return out;
  });
  names.forEach((name, i) => assertSameValues(native[i], wasm[i], name));
});

test('backend native says which backend runs; auto picks it when built', { skip }, async () => {
  const lines: string[] = [];
  assert.equal(await initBackend('auto', { threads: 1, log: (line) => lines.push(line) }), 'native');
  assert.equal(tf.getBackend(), 'wasm');
  assert.deepEqual(lines, [`backend: native (oneDNN ${load.addon!.version().onednn} kernels over wasm, 1 thread)`]);
});

test('--backend native without the addon is a one-line UserError naming why; auto then runs wasm and says why', { skip: !skip && 'native kernels are built' }, async () => {
  await assert.rejects(initBackend('native'), (error: unknown) => {
    assert.ok(error instanceof UserError);
    assert.match(error.message, /^backend native: the native kernels are not built.*; or use backend wasm\)$/);
    assert.doesNotMatch(error.message, /\n/);
    return true;
  });
  const lines: string[] = [];
  assert.equal(await initBackend('auto', { threads: 1, log: (line) => lines.push(line) }), 'wasm');
  assert.match(lines.join('\n'), /^backend: wasm \(1 thread; native kernels not built/);
});

test('a training run on the native kernels ends where the wasm run does (same seed, within one test digit)', { skip }, () => {
  const runs = ['native', 'wasm'].map((backend) => {
    const dir = tempDir();
    const r = runCli(['train', '--model', 'mnist-cnn', '--epochs', '1', '--limit', '1000', '--seed', '3', '--backend', backend, '--checkpoint', dir, '--no-progress']);
    assert.equal(r.status, 0, r.stderr);
    const top1 = /final test top1 ([\d.]+)% on (\d+) images/.exec(r.stdout + r.stderr);
    assert.ok(top1, r.stdout + r.stderr);
    return { correct: Math.round((Number(top1[1]) / 100) * Number(top1[2])), images: Number(top1[2]) };
  });
  assert.ok(Math.abs(runs[0].correct - runs[1].correct) <= 1, `native ${runs[0].correct} vs wasm ${runs[1].correct} of ${runs[0].images} correct`);
});
