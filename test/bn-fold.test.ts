import { test } from 'node:test';
import assert from 'node:assert/strict';
import { foldBatchNorm, type BatchNormParams } from '../src/fold/bn-fold.js';
import { Prng } from '../src/util/prng.js';

interface Tensor4 {
  data: Float32Array;
  shape: [number, number, number, number];
}

function randomArray(rng: Prng, n: number, lo = -1, hi = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * rng.next();
  return a;
}

/**
 * Reference NHWC convolution, 'valid' padding, in float64. Kernel [kh, kw, inC, outC], or
 * depthwise [kh, kw, inC, multiplier] with output channel c · multiplier + m (tfjs order).
 */
function naiveConv(x: Tensor4, kernel: Float32Array, kshape: number[], bias: ArrayLike<number>, stride: number, depthwise: boolean): Float64Array {
  const [n, h, w, c] = x.shape;
  const [kh, kw, inC, k3] = kshape as [number, number, number, number];
  assert.equal(inC, c);
  const outC = depthwise ? inC * k3 : k3;
  const oh = Math.floor((h - kh) / stride) + 1;
  const ow = Math.floor((w - kw) / stride) + 1;
  const out = new Float64Array(n * oh * ow * outC);
  for (let b = 0; b < n; b++) {
    for (let oy = 0; oy < oh; oy++) {
      for (let ox = 0; ox < ow; ox++) {
        for (let o = 0; o < outC; o++) {
          let sum = bias[o]!;
          for (let dy = 0; dy < kh; dy++) {
            for (let dx = 0; dx < kw; dx++) {
              const xBase = ((b * h + oy * stride + dy) * w + ox * stride + dx) * c;
              if (depthwise) {
                const ci = Math.floor(o / k3);
                const m = o % k3;
                sum += x.data[xBase + ci]! * kernel[((dy * kw + dx) * inC + ci) * k3 + m]!;
              } else {
                for (let ci = 0; ci < inC; ci++) sum += x.data[xBase + ci]! * kernel[((dy * kw + dx) * inC + ci) * outC + o]!;
              }
            }
          }
          out[((b * oh + oy) * ow + ox) * outC + o] = sum;
        }
      }
    }
  }
  return out;
}

/** Inference batch norm over the last (channel) axis. */
function batchNorm(y: Float64Array, bn: BatchNormParams): Float64Array {
  const channels = bn.gamma.length;
  return y.map((v, i) => {
    const o = i % channels;
    return ((v - bn.movingMean[o]!) / Math.sqrt(bn.movingVariance[o]! + bn.epsilon)) * bn.gamma[o]! + bn.beta[o]!;
  });
}

function randomBatchNorm(rng: Prng, channels: number): BatchNormParams {
  return {
    gamma: randomArray(rng, channels, 0.2, 2),
    beta: randomArray(rng, channels, -1, 1),
    movingMean: randomArray(rng, channels, -0.5, 0.5),
    movingVariance: randomArray(rng, channels, 0.05, 3),
    epsilon: 1e-3,
  };
}

const cases = [
  { name: '3x3 conv, stride 1, with bias', kshape: [3, 3, 3, 5], depthwise: false, stride: 1, withBias: true },
  { name: '3x3 conv, stride 2, no bias', kshape: [3, 3, 4, 6], depthwise: false, stride: 2, withBias: false },
  { name: '3x3 depthwise, multiplier 1', kshape: [3, 3, 4, 1], depthwise: true, stride: 1, withBias: true },
  { name: '3x3 depthwise, multiplier 2, stride 2', kshape: [3, 3, 3, 2], depthwise: true, stride: 2, withBias: false },
];

for (const c of cases) {
  test(`BN fold: ${c.name} then batch norm equals the folded conv`, () => {
    const rng = new Prng(c.kshape.reduce((a, b) => a * 31 + b, 7));
    const inC = c.kshape[2]!;
    const outC = c.depthwise ? inC * c.kshape[3]! : c.kshape[3]!;
    const x: Tensor4 = { data: randomArray(rng, 2 * 7 * 6 * inC), shape: [2, 7, 6, inC] };
    const kernel = randomArray(rng, c.kshape.reduce((a, b) => a * b));
    const bias = c.withBias ? randomArray(rng, outC) : undefined;
    const bn = randomBatchNorm(rng, outC);

    const expected = batchNorm(naiveConv(x, kernel, c.kshape, bias ?? new Float32Array(outC), c.stride, c.depthwise), bn);
    const folded = foldBatchNorm(kernel, { shape: c.kshape, depthwise: c.depthwise }, bias, bn);
    const got = naiveConv(x, folded.weights, c.kshape, folded.bias, c.stride, c.depthwise);

    assert.equal(got.length, expected.length);
    let maxDiff = 0;
    for (let i = 0; i < got.length; i++) maxDiff = Math.max(maxDiff, Math.abs(got[i]! - expected[i]!));
    assert.ok(maxDiff < 1e-5, `max abs diff ${maxDiff}`);
  });
}

test('BN fold: dense [in, out] by hand', () => {
  // w = [[1, 2], [3, 4]] (in × out), b = [1, -1]; γ = [4, 3], β = [0, 5], μ = [1, 1], σ² = [3, 0], ε = 1
  // s = γ / √(σ² + ε) = [4 / √4, 3 / √1] = [2, 3]
  // w' = [[2, 6], [6, 12]], b' = [(1 − 1)·2 + 0, (−1 − 1)·3 + 5] = [0, −1]
  const folded = foldBatchNorm(Float32Array.of(1, 2, 3, 4), { shape: [2, 2] }, [1, -1], {
    gamma: [4, 3],
    beta: [0, 5],
    movingMean: [1, 1],
    movingVariance: [3, 0],
    epsilon: 1,
  });
  assert.deepEqual(folded, { weights: Float32Array.of(2, 6, 6, 12), bias: Float32Array.of(0, -1) });
  assert.throws(
    () => foldBatchNorm(Float32Array.of(1, 2, 3, 4), { shape: [2, 2] }, undefined, { gamma: [1], beta: [0, 0], movingMean: [0, 0], movingVariance: [1, 1], epsilon: 0 }),
    /gamma has 1 entries for 2 output channels/,
  );
});
