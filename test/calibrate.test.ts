import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EmaMaxObserver } from '../src/calibrate/ema.js';
import { histogramOf, klDivergences, klThreshold } from '../src/calibrate/kl.js';
import { minMaxRange } from '../src/calibrate/ranges.js';
import { Prng } from '../src/util/prng.js';

/** KL(P || Q) of two unnormalised count vectors, straight from the definition. */
function klOfCounts(p: number[], q: number[]): number {
  const sp = p.reduce((a, b) => a + b);
  const sq = q.reduce((a, b) => a + b);
  return p.reduce((sum, pk, k) => sum + (pk / sp) * Math.log(pk / sp / (q[k]! / sq)), 0);
}

test('KL: hand-worked 8-bin histogram into 4 levels', () => {
  // hist = [8, 4, 2, 1, 4, 1, 1, 4], 25 counts and no empty bin, so smoothing changes nothing.
  // Candidate i takes P = hist[0..i) with sum(hist[i..]) added to P[i-1]; bin k goes to level
  // floor(4k / i); Q spreads each level's count (outliers excluded) evenly over its bins.
  // i = 4: levels {0} {1} {2} {3}
  //   P = [8, 4, 2, 1+10] / 25, Q = [8, 4, 2, 1] / 15
  //   KL = 14/25 ln(15/25) + 11/25 ln(11·15 / 25) = 0.56 ln 0.6 + 0.44 ln 6.6 = 0.544248
  // i = 5: levels {0,1} {2} {3} {4}
  //   P = [8, 4, 2, 1, 4+6] / 25, Q = [6, 6, 2, 1, 4] / 19
  //   KL = .32 ln(.32/(6/19)) + .16 ln(.16/(6/19)) + .08 ln(.08/(2/19)) + .04 ln(.04/(1/19))
  //      + .40 ln(.40/(4/19)) = 0.004238 - 0.108784 - 0.021955 - 0.010977 + 0.256742 = 0.119263
  // i = 6: levels {0,1} {2} {3,4} {5}
  //   P = [8, 4, 2, 1, 4, 1+5] / 25, Q = [6, 6, 2, 2.5, 2.5, 1] / 20
  //   KL = 0.020652 - 0.100577 - 0.017851 - 0.045577 + 0.039498 + 0.376468 = 0.272612
  // i = 7: levels {0,1} {2,3} {4,5} {6}
  //   P = [8, 4, 2, 1, 4, 1, 1+4] / 25, Q = [6, 6, 1.5, 1.5, 2.5, 2.5, 1] / 21  →  KL = 0.220063
  // Minimum at i = 5: threshold (5 + 0.5) · binWidth.
  const hist = [8, 4, 2, 1, 4, 1, 1, 4];
  const byHand = [0.544248, 0.119263, 0.272612, 0.220063];
  const fromDefinition = [
    klOfCounts([8, 4, 2, 11], [8, 4, 2, 1]),
    klOfCounts([8, 4, 2, 1, 10], [6, 6, 2, 1, 4]),
    klOfCounts([8, 4, 2, 1, 4, 6], [6, 6, 2, 2.5, 2.5, 1]),
    klOfCounts([8, 4, 2, 1, 4, 1, 5], [6, 6, 1.5, 1.5, 2.5, 2.5, 1]),
  ];
  const got = klDivergences(hist, 4);
  assert.equal(got.length, 4);
  for (let c = 0; c < 4; c++) {
    assert.ok(Math.abs(got[c]! - fromDefinition[c]!) < 1e-12, `i = ${c + 4}: ${got[c]} vs ${fromDefinition[c]}`);
    assert.ok(Math.abs(got[c]! - byHand[c]!) < 2e-6, `i = ${c + 4}: ${got[c]} vs hand-worked ${byHand[c]}`);
  }
  assert.equal(klThreshold(hist, 0.25, { targetBins: 4 }), 5.5 * 0.25);
});

test('KL: empty bins are smoothed and a candidate whose P and Q share their zeros costs ~nothing', () => {
  // hist = [3, 0, 3, 0, 0, 0]: at i = 4 (levels {0} {1} {2} {3}, no outliers) Q equals P, zeros
  // included, so KL is 0 even after smoothing; i = 5 likewise, and ties keep the first.
  const got = klDivergences([3, 0, 3, 0, 0, 0], 4);
  assert.ok(Math.abs(got[0]!) < 1e-12 && Math.abs(got[1]!) < 1e-12, `${Array.from(got)}`);
  assert.equal(klThreshold([3, 0, 3, 0, 0, 0], 1, { targetBins: 4 }), 4.5);
});

test('KL: with all mass below bin k the threshold lands at k (flat) or within two bins of it', () => {
  // Flat mass: for every i >= k, Q reproduces P exactly (KL 0) and the first such i, k, wins; any
  // i < k piles mass into P's last bin. Smooth decaying shapes: the level partition can align a
  // bin or two better past k, but never further (checked over k = 129..2047 in steps of 37).
  for (const k of [200, 777, 1535]) {
    const flat = new Float64Array(2048);
    const gauss = new Float64Array(2048);
    const ramp = new Float64Array(2048);
    for (let b = 0; b < k; b++) {
      flat[b] = 17;
      gauss[b] = 10000 * Math.exp(-0.5 * ((3 * b) / k) ** 2);
      ramp[b] = 1000 * (1 - b / k) + 1;
    }
    assert.equal(klThreshold(flat, 0.5), (k + 0.5) * 0.5, `flat, k = ${k}`);
    for (const [name, hist] of [['gauss', gauss], ['ramp', ramp]] as const) {
      const t = klThreshold(hist, 0.5);
      assert.ok(t <= (k + 2.5) * 0.5, `${name}, k = ${k}: threshold ${t} is past bin ${k} + 2`);
      assert.ok(t >= 128.5 * 0.5, `${name}, k = ${k}: threshold ${t} below the smallest candidate`);
    }
  }
});

test('KL: a few far outliers are clipped, the bulk is kept', () => {
  const rng = new Prng(11);
  const values = new Float32Array(100_000);
  for (let i = 0; i < values.length; i++) values[i] = rng.normal();
  for (let i = 0; i < 20; i++) values[i] = 40 + rng.next();
  const maxAbs = 41;
  const hist = histogramOf(values, 2048, maxAbs);
  const t = klThreshold(hist, maxAbs / 2048);
  assert.ok(t < 10, `outliers at 40 not clipped: threshold ${t}`);
  assert.ok(t > 2, `bulk of N(0, 1) clipped: threshold ${t}`);
});

test('KL with maxOutliers: a point mass that draws the minimum onto itself is not allowed to clip the tail', () => {
  // MNIST's case, built: 80% of the values at one level (the image background, |x| = 0.42), the
  // rest spread up to 2.8 (the strokes). KL's own minimum sits just above the point mass and
  // clips every stroke; with at most 0.1% of the counts left above, the threshold covers the tail.
  const binWidth = 2.8 / 2048;
  const hist = new Float64Array(2048);
  hist[310] = 80_000;
  const rng = new Prng(3);
  for (let n = 0; n < 20_000; n++) hist[Math.floor(2048 * rng.next())]++;
  const above = (t: number) => hist.reduce((sum, c, k) => sum + (k * binWidth >= t - binWidth / 2 ? c : 0), 0);
  const own = klThreshold(hist, binWidth);
  assert.ok(own > 310 * binWidth && own < 330 * binWidth, `KL's own threshold ${own} should sit just above the point mass`);
  assert.ok(above(own) > 0.15 * 100_000, `it clips the tail: ${above(own)} counts above ${own}`);
  const limited = klThreshold(hist, binWidth, { maxOutliers: 100 });
  assert.ok(above(limited) <= 100, `${above(limited)} counts at or above ${limited}`);
  assert.ok(limited > 2.7, `threshold ${limited}`);
  // a limit that no candidate meets (a point mass in the last bin): the histogram's top, nothing clipped
  const saturated = new Float64Array(2048).fill(1);
  saturated[2047] = 5000;
  assert.equal(klThreshold(saturated, binWidth, { maxOutliers: 100 }), 2048 * binWidth);
  // a limit every candidate meets changes nothing
  assert.equal(klThreshold(hist, binWidth, { maxOutliers: 100_000 }), own);
  assert.throws(() => klThreshold(hist, binWidth, { maxOutliers: -1 }), /maxOutliers must be a count >= 0/);
});

test('histogramOf: |x| binned over [0, maxAbs], zeros skipped, overflow in the last bin', () => {
  const hist = histogramOf([0, 0, 0.1, -0.1, 0.26, -0.5, 0.99, 1, 7], 4, 1);
  // bins of width 0.25: 0.1, 0.1 → 0; 0.26 → 1; 0.5 → 2; 0.99, 1 (= maxAbs), 7 → 3
  assert.deepEqual(Array.from(hist), [2, 1, 1, 3]);
});

test('EmaMaxObserver: EMA of per-batch max |x| (and min / max when signed) on a known sequence', () => {
  const unsigned = new EmaMaxObserver({ decay: 0.5 });
  const signed = new EmaMaxObserver({ decay: 0.5, signed: true });
  const batches = [
    [0.5, -2, 1], // max|x| 2, min -2, max 1
    [4, 0, -1], // 4, -1, 4
    [-1, 1, 0], // 1, -1, 1
  ];
  for (const b of batches) {
    unsigned.observe(b);
    signed.observe(b);
  }
  // max|x|: 2 → 0.5·2 + 0.5·4 = 3 → 0.5·3 + 0.5·1 = 2
  // min:   -2 → -1.5 → -1.25;   max: 1 → 2.5 → 1.75
  assert.equal(unsigned.count, 3);
  assert.equal(unsigned.maxAbs, 2);
  assert.deepEqual(unsigned.range(), { min: 0, max: 2 });
  assert.deepEqual(signed.range(), { min: -1.25, max: 1.75 });
  assert.equal(signed.maxAbs, 2);

  const seedDefault = new EmaMaxObserver();
  seedDefault.observe([1]);
  seedDefault.observe([2]);
  assert.ok(Math.abs(seedDefault.maxAbs - 1.01) < 1e-12, 'default decay is 0.99');
  assert.throws(() => new EmaMaxObserver().range(), /no batch/);
});

test('minMaxRange: per layer, per output channel and per group on a hand-built conv kernel', () => {
  // [kh, kw, inC, outC] = [1, 2, 1, 4]: flat index i holds output channel i % 4
  const kernel = new Float32Array([
    1, -2, 3, -4, // kw = 0: channels 0..3
    -5, 6, -7, 8, // kw = 1
  ]);
  const shape = [1, 2, 1, 4];
  assert.deepEqual(minMaxRange(kernel, 'layer', shape), { min: Float32Array.of(-7), max: Float32Array.of(8) });
  assert.deepEqual(minMaxRange(kernel, 'channel', shape), {
    min: Float32Array.of(-5, -2, -7, -4),
    max: Float32Array.of(1, 6, 3, 8),
  });
  assert.deepEqual(minMaxRange(kernel, 'group', shape, { groupSize: 2 }), {
    min: Float32Array.of(-5, -7),
    max: Float32Array.of(6, 8),
  });
  assert.throws(() => minMaxRange(kernel, 'group', shape, { groupSize: 3 }), /divisor/);
  assert.throws(() => minMaxRange(kernel, 'layer', [2, 2, 1, 4]), /holds 16 values/);
});

test('minMaxRange: dense [in, out] and depthwise [kh, kw, inC, multiplier] channels', () => {
  // dense [3, 2]: rows are inputs, output channel = i % 2
  const dense = Float32Array.of(1, -1, 2, -3, -4, 5);
  assert.deepEqual(minMaxRange(dense, 'channel', [3, 2]), { min: Float32Array.of(-4, -3), max: Float32Array.of(2, 5) });
  // depthwise [2, 1, 2, 2]: two kernel rows of four output channels c·2 + m, channel = i % 4
  const depthwise = Float32Array.of(1, 2, 3, 4, -1, -2, -3, -4);
  assert.deepEqual(minMaxRange(depthwise, 'channel', [2, 1, 2, 2], { depthwise: true }), {
    min: Float32Array.of(-1, -2, -3, -4),
    max: Float32Array.of(1, 2, 3, 4),
  });
});
