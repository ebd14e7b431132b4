import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { EmaMaxObserver } from '../src/calibrate/ema.js';
import { histogramOf, klThreshold } from '../src/calibrate/kl.js';
import { MinMaxInputQuantizer, MinMaxWeightQuantizer } from '../src/quant/minmax.js';
import { dequantize } from '../src/quant/quantizer.js';
import { calibrateInputs, CLIP_LIMIT, clippingWarning, klTargetBins, samplePerClass } from '../src/simulate/calibrate.js';
import { identityVariance, mergeBatchNorm, minMaxQuantizers, useFullPrecisionBatchNorm } from '../src/simulate/model.js';
import { expandGrid, SEED_GRID, simulatePolicy } from '../src/simulate/simulate.js';
import { settingsFromFlags } from '../src/cli/simulate.js';
import { initBackend } from '../src/train/backend/index.js';
import { batches, loadMnistPackage, subset } from '../src/train/data.js';
import { createModel } from '../src/train/models.js';
import { FULL_PRECISION } from '../src/train/policies.js';
import { Prng } from '../src/util/prng.js';
import { saveUntrainedCheckpoint } from './checkpoints.js';
import { runCli, tempDir } from './support.js';

await initBackend('wasm');
const mnist = loadMnistPackage(0);

const values = (t: tf.Tensor) => Array.from(t.dataSync());

test('min-max weights: layer, group and channel steps max|w|/(2^(b-1)-1), codes equal the fake-quantized values bit for bit', () => {
  // dense [in 2, out 4]: columns (output channels) 0..3
  const w = tf.tensor2d([[0.7, -0.1, 0.2, 0.03], [-0.35, 0.3, -0.4, 0.06]]);
  const q = (granularity: 'layer' | 'group' | 'channel') => {
    const quantizer = new MinMaxWeightQuantizer({ bitsList: [3], granularity, shape: [2, 4], groupSize: 2 });
    quantizer.activeBits = 3;
    return quantizer;
  };
  // 3 bits symmetric: levels -3..3
  assert.deepEqual(Array.from(q('layer').steps(w)), [Math.fround(0.7 / 3)]);
  assert.deepEqual(Array.from(q('group').steps(w)), [0.7 / 3, 0.7 / 3, 0.4 / 3, 0.4 / 3].map(Math.fround));
  assert.deepEqual(Array.from(q('channel').steps(w)), [0.7 / 3, 0.3 / 3, 0.4 / 3, 0.06 / 3].map(Math.fround));
  // per channel: 0.7 → 3 steps, -0.35 → -1.5 → -2 (half to even), -0.1/0.1 = -1, 0.2/(0.4/3) = 1.5 → 2
  const channel = q('channel');
  assert.deepEqual(Array.from(channel.integerForm(w)!.q), [3, -1, 2, 2, -2, 3, -3, 3]);
  for (const g of ['layer', 'group', 'channel'] as const) {
    const quantizer = q(g);
    // equal bit for bit as numbers (integer codes have no -0: round(-0.43)·s is -0 in the fake-quantized tensor)
    const noSignedZero = (a: ArrayLike<number>) => Float32Array.from(a, (v) => v + 0);
    assert.deepEqual(noSignedZero(dequantize(quantizer.integerForm(w)!)), noSignedZero(quantizer.quantize(w, false).dataSync()), g);
  }
  // an all-zero tensor quantizes to zeros (step 1, not a division by zero)
  assert.deepEqual(values(q('layer').quantize(tf.zeros([2, 4]), false)), new Array(8).fill(0));
  // 32 bits passes the tensor through
  const off = new MinMaxWeightQuantizer({ bitsList: [], granularity: 'layer', shape: [2, 4] });
  assert.equal(off.quantize(w, false), w);
});

test('min-max inputs: unsigned one-sided [0, T], signed symmetric [-T, T], online and calibrated, observe passes through', () => {
  const x = tf.tensor1d([-1, 0, 0.5, 1, 2]);
  const online = new MinMaxInputQuantizer({ bitsList: [2], signed: false, mode: 'online' });
  online.activeBits = 2;
  // T = max|x| = 2, step 2/3: -1 → 0 (clipped), 0.5 → round(0.75) = 1, 1 → round(1.5) = 2, 2 → 3
  const step = Math.fround(2 / 3);
  assert.deepEqual(values(online.quantize(x, false)), [0, 0, step, Math.fround(2 * step), Math.fround(3 * step)]);

  const calibrated = new MinMaxInputQuantizer({ bitsList: [3], signed: true, mode: 'calibrated' });
  calibrated.activeBits = 3;
  assert.throws(() => calibrated.quantize(x, false), /before calibration/);
  calibrated.calibrate(1.5);
  // 3 bits signed symmetric: levels -3..3, step 0.5; 2 → clipped to 1.5
  assert.deepEqual(values(calibrated.quantize(x, false)), [-1, 0, 0.5, 1, 1.5]);
  assert.deepEqual(values(calibrated.namedState().get('max')!), [1.5]);
  assert.throws(() => calibrated.calibrate(0), /positive/);

  const seen: number[][] = [];
  calibrated.observe = (v) => seen.push(Array.from(v));
  assert.equal(calibrated.quantize(x, false), x);
  assert.deepEqual(seen, [[-1, 0, 0.5, 1, 2]]);
});

test('samplePerClass: exactly N of every class, the same draw for the same seed, an error when a class is short', () => {
  const sample = samplePerClass(mnist.train, 3, 10, 7);
  assert.equal(sample.count, 30);
  const counts = new Array(10).fill(0);
  for (const label of sample.labels) counts[label]++;
  assert.deepEqual(counts, new Array(10).fill(3));
  assert.deepEqual(samplePerClass(mnist.train, 3, 10, 7).images, sample.images);
  assert.notDeepEqual(samplePerClass(mnist.train, 3, 10, 8).labels, sample.labels);
  assert.throws(() => samplePerClass(subset(mnist.train, 20), 5, 10, 1), /^UserError: numSample 5: class \d has only \d training samples$/);
});

test('calibration: naive is the EMA of the per-batch max |x|, KL the entropy threshold of the |x| histogram (first layer input = the images)', () => {
  const set = samplePerClass(mnist.train, 4, 10, 3);
  const calibrated = (mode: 'naive' | 'kl') => {
    const model = createModel('mnist-cnn', { quantizers: minMaxQuantizers({ granularity: 'layer', inputMode: 'calibrated', inputSigned: false }) });
    useFullPrecisionBatchNorm(model, '8');
    const policy = simulatePolicy(model, { ...expandGrid(SEED_GRID)[0]!, excludeFirstConv: false });
    return calibrateInputs(model, policy, set, { mode, epochs: 2, batchSize: 16 }).thresholds.get('conv1')!;
  };
  // by hand: batches of 16 of the images, two passes
  const ema = new EmaMaxObserver();
  for (let pass = 0; pass < 2; pass++) {
    for (const batch of batches(set, 16)) {
      ema.observe(batch.x.dataSync());
      batch.x.dispose();
      batch.y.dispose();
    }
  }
  assert.equal(calibrated('naive'), ema.maxAbs);
  let max = 0;
  for (const v of set.images) max = Math.max(max, Math.abs(v));
  // the image input is signed: 2^(8-1) = 128 target bins, TensorRT's
  assert.equal(klTargetBins(8, true), 128);
  assert.equal(klTargetBins(8, false), 256);
  assert.equal(calibrated('kl'), klThreshold(histogramOf(set.images, 2048, max), max / 2048, { targetBins: 128, maxOutliers: CLIP_LIMIT * set.images.length }));
});

test('clipping warning, constructed: an EMA dragged down by a dim first batch clips the later images, and the warning names that input', () => {
  // 40 digits in batches of 16; the first 16 scaled to a tenth, so the EMA of batch maxima (decay
  // 0.99) starts at a tenth of the others' and stays near it
  const set = samplePerClass(mnist.train, 4, 10, 3);
  const images = Float32Array.from(set.images, (v, i) => (i < 16 * 784 ? 0.1 * v : v));
  const dimFirst = { ...set, images };
  const model = createModel('mnist-cnn', { quantizers: minMaxQuantizers({ granularity: 'layer', inputMode: 'calibrated', inputSigned: false }) });
  useFullPrecisionBatchNorm(model, '8');
  const { thresholds, clipped } = calibrateInputs(model, { conv1: { weightBits: 8, actBits: 8 } }, dimFirst, { mode: 'naive', epochs: 1, batchSize: 16 });
  const ema = new EmaMaxObserver();
  for (let b = 0; b < 40; b += 16) ema.observe(images.subarray(b * 784, Math.min(40, b + 16) * 784));
  assert.equal(thresholds.get('conv1'), ema.maxAbs);
  const share = images.filter((v) => Math.abs(v) > ema.maxAbs).length / images.length;
  assert.deepEqual([...clipped], [['conv1', share]]);
  assert.ok(share > 0.5, `the later digits' background (|x| 0.42) lies above ${ema.maxAbs}: ${share} clipped`);
  assert.equal(clippingWarning(clipped), `calibrated input thresholds clip more than 0.10% of the calibration values: conv1 ${(100 * share).toFixed(1)}% `
    + '(those inputs lose their largest values; try another calibration mode)');
  // worst first, two decimals under 10%; none over the limit: no warning
  assert.match(clippingWarning(new Map([['a', CLIP_LIMIT / 2], ['b', 0.02], ['c', 0.15]]))!, /: c 15\.0%, b 2\.00% \(/);
  assert.equal(clippingWarning(new Map([['a', CLIP_LIMIT], ['b', 0]])), undefined);
});

test('merge-bn: every conv finds its batch norm, and folding them keeps the FP outputs (max abs diff tiny)', () => {
  const model = createModel('mnist-cnn', { seed: 5 });
  const rng = new Prng(11);
  for (const bn of model.batchNorms) {
    const fp = bn.set('fp');
    const random = (lo: number, hi: number) => tf.tensor1d(Array.from({ length: bn.channels }, () => lo + (hi - lo) * rng.next()));
    fp.gamma.assign(random(0.5, 1.5));
    fp.beta.assign(random(-0.3, 0.3));
    fp.movingMean.assign(random(-0.5, 0.5));
    fp.movingVar.assign(random(0.2, 3));
  }
  assert.deepEqual([...model.layerBatchNorms].map(([layer, bn]) => [layer, bn.name]), [1, 2, 3, 4, 5].map((i) => [`conv${i}`, `bn${i}`]));
  const x = tf.tensor4d(subset(mnist.test, 16).images, [16, 28, 28, 1]);
  const before = model.forward(x, FULL_PRECISION, false);
  mergeBatchNorm(model);
  const after = model.forward(x, FULL_PRECISION, false);
  const diff = tf.max(tf.abs(tf.sub(before, after))).dataSync()[0]!;
  const scale = tf.max(tf.abs(before)).dataSync()[0]!;
  assert.ok(diff < 1e-5 * Math.max(1, scale), `max abs diff ${diff} (logits up to ${scale})`);
  assert.notDeepEqual(values(before), new Array(before.size).fill(0));
  // the merged sets multiply by exactly 1: mean 0, γ 1, float32(var + ε) = 1
  assert.equal(Math.fround(identityVariance(model.batchNorms[2]!) + Math.fround(model.batchNorms[2]!.epsilon)), 1);
  const set = model.batchNorms[2]!.set('fp');
  const y = tf.randomNormal([1, 2, 2, 64]) as tf.Tensor4D;
  assert.deepEqual(values(model.batchNorms[2]!.apply(y, 'fp', false)), values(tf.add(y, set.beta)));
});

test('grid: the seed table is 36 settings in table order; each setting quantizes every layer but an excluded first', () => {
  const grid = expandGrid(SEED_GRID);
  assert.equal(grid.length, 3 * 2 * 3 * 2);
  assert.deepEqual(grid.slice(0, 3).map((s) => s.calib), ['none', 'naive', 'kl']);
  assert.deepEqual(grid.map((s) => s.quantType).filter((q, i, a) => a.indexOf(q) === i), ['layer', 'group', 'channel']);
  const model = createModel('mnist-cnn');
  assert.deepEqual(Object.keys(simulatePolicy(model, grid[0]!)), ['conv2', 'conv3', 'conv4', 'conv5', 'fc']);
  assert.deepEqual(simulatePolicy(model, { ...grid[0]!, excludeFirstConv: false, weightBits: 4 }).conv1, { weightBits: 4, actBits: 8 });
});

test('simulate flags: one value each without --grid, lists with it, the seed table by default; bad values name the flag', () => {
  assert.deepEqual(settingsFromFlags({}), [{ quantType: 'layer', weightBits: 8, inputBits: 8, inputSigned: false, calib: 'none', mergeBn: false, excludeFirstConv: false }]);
  assert.deepEqual(settingsFromFlags({ grid: true }), expandGrid(SEED_GRID));
  const some = settingsFromFlags({ grid: true, quantType: ['channel'], weightBits: ['4', '2'], mergeBn: true, excludeFirstConv: ['off'] });
  assert.deepEqual(some.map((s) => [s.weightBits, s.calib, s.mergeBn, s.excludeFirstConv]), [
    [4, 'none', true, false], [4, 'naive', true, false], [4, 'kl', true, false], [2, 'none', true, false], [2, 'naive', true, false], [2, 'kl', true, false],
  ]);
  const fails: Array<[Record<string, unknown>, RegExp]> = [
    [{ weightBits: ['8', '4'] }, /^--weight-bits: 2 values need --grid$/],
    [{ grid: true, weightBits: ['8', '8'] }, /^--weight-bits: 8 is given twice$/],
    [{ quantType: ['block'] }, /^--quant-type: 'block' is not one of layer, group, channel$/],
    [{ calib: ['entropy'] }, /^--calib: 'entropy' is not one of none, naive, kl$/],
    [{ mergeBn: ['maybe'] }, /^--merge-bn: 'maybe' is not on or off$/],
    [{ weightBits: ['1'] }, /^--weight-bits: 1 is not a bit-width in 2\.\.16$/],
    [{ actBits: ['x'] }, /^--act-bits: 'x' is not a number$/],
  ];
  for (const [flags, message] of fails) assert.throws(() => settingsFromFlags(flags), (err: Error) => err.name === 'UserError' && message.test(err.message), JSON.stringify(flags));
});

test('mpq simulate: a grid prints the table and writes JSON, CSV and markdown; 16 bits online keeps every FP prediction; errors are one line', (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // an untrained model is checkpoint enough for the wiring
  const fp = join(dir, 'fp');
  saveUntrainedCheckpoint(fp, 'mnist-cnn', 2);
  const common = ['simulate', '--model', 'mnist-cnn', '--from', fp, '--limit', '40', '--num-sample', '2', '--batch-size', '20'];

  const [csv, markdown] = [join(dir, 'sim.csv'), join(dir, 'sim.md')];
  const grid = runCli([...common, '--grid', '--quant-type', 'layer', 'channel', '--weight-bits', '16', '--input-bits', '16', '--calib', 'none', 'naive',
    '--merge-bn', 'off', '--csv', csv, '--markdown', markdown, '--json']);
  assert.equal(grid.status, 0, grid.stderr);
  const result = JSON.parse(grid.stdout);
  assert.equal(result.rows.length, 4);
  // snake_case keys, as every --json; --input-bits (the alias) set the activation bits
  assert.deepEqual(Object.keys(result.rows[0]).filter((k) => /[A-Z]/.test(k)), []);
  assert.deepEqual([result.rows[0].quant_type, result.rows[0].weight_bits, result.rows[0].input_bits], ['layer', 16, 16]);
  assert.equal(result.calibration_count, 20);
  assert.equal(result.test_count, 40);
  for (const row of result.rows.filter((r: { calib: string }) => r.calib === 'none')) {
    assert.equal(row.top1, result.fp_top1, `${row.quant_type}: 16-bit weights and inputs keep every FP prediction`);
  }
  assert.deepEqual(Object.keys(result.rows[1].thresholds), ['conv2', 'conv3', 'conv4', 'conv5', 'fc']);
  // calibrated rows say what each threshold clips; online rows have no threshold to clip with
  assert.deepEqual(Object.keys(result.rows[1].clipped), ['conv2', 'conv3', 'conv4', 'conv5', 'fc']);
  assert.equal(result.rows[0].clipped, undefined);
  const lines = readFileSync(markdown, 'utf8').trim().split('\n');
  assert.match(lines[0]!, /^\| IN dtype \| IN offline \| WT dtype \| WT qtype \| Merge BN \| w\/o 1st conv \| Top-1 \|/);
  assert.match(lines[2]!, /^\| float32 \| \/ \| float32 \|/);
  assert.equal(lines.length, 3 + 4);
  assert.match(lines[4]!, /^\| uint16 \| naive \| int16 \| layer \|  \| √ \| \d+\.\d\d% \|/);
  const rows = readFileSync(csv, 'utf8').trim().split('\n');
  assert.equal(rows.length, 5);
  assert.match(rows[4]!, /^uint16,naive,int16,channel,,0,1,/);

  for (const [flags, message] of [
    [['--weight-bits', '8', '4'], /^mpq: --weight-bits: 2 values need --grid$/],
    [['--quant-type', 'group', '--group-size', '5'], /^mpq: --group-size 5: does not divide the 16 output channels of conv1$/],
  ] as const) {
    const r = runCli([...common, ...flags]);
    assert.equal(r.status, 2, r.stderr);
    const errors = r.stderr.trim().split('\n');
    assert.deepEqual(errors.length, 1, r.stderr);
    assert.match(errors[0]!, message);
  }
});
