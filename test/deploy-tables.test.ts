import { test } from 'node:test';
import assert from 'node:assert/strict';
import { float32HexBigEndian, ncnnWeightScales, printfFixed, writeNcnnTable, writeTensorRtCache } from '../src/export/deploy-tables.js';

test('ncnn table: exact text for a conv and a depthwise layer', () => {
  // conv1 [kh, kw, inC, outC] = [1, 1, 2, 3], output channel i % 3:
  //   ch0 {0.5, -0.25} → 127 / 0.5 = 254; ch1 {-3, 1} → float32(127 / 3) = 42.33333206… → "42.333332";
  //   ch2 all zero → 1. Input threshold 4 → 127 / 4 = 31.75.
  const conv1 = Float32Array.of(0.5, -3, 0, -0.25, 1, 0);
  // dw2 [1, 2, 2, 2] depthwise, multiplier 2: ncnn's group is the input channel, all multipliers:
  //   flat ((x · 2 + c) · 2 + m); c0 {1, -2, 0.5, 1} → 127 / 2 = 63.5; c1 {0.5, 0.25, -0.125, 0.5} → 254.
  //   Input threshold 12.7 → float32(127 / float32(12.7)) = 10 exactly.
  const dw2 = Float32Array.of(1, -2, 0.5, 0.25, 0.5, 1, -0.125, 0.5);
  const table = writeNcnnTable([
    { name: 'conv1', weights: conv1, layout: { shape: [1, 1, 2, 3] }, inputThreshold: 4 },
    { name: 'dw2', weights: dw2, layout: { shape: [1, 2, 2, 2], depthwise: true }, inputThreshold: 12.7 },
  ]);
  assert.equal(
    table,
    'conv1_param_0 254.000000 42.333332 1.000000 \n' +
      'dw2_param_0 63.500000 254.000000 \n' +
      'conv1 31.750000 \n' +
      'dw2 10.000000 \n',
  );
  assert.throws(() => writeNcnnTable([{ name: 'conv 1', weights: conv1, layout: { shape: [1, 1, 2, 3] }, inputThreshold: 4 }]), /whitespace/);
  assert.throws(() => writeNcnnTable([{ name: 'conv1', weights: conv1, layout: { shape: [1, 1, 2, 3] }, inputThreshold: 0 }]), /positive/);
});

test('ncnn weight scales of a dense [in, out] kernel are per output unit', () => {
  // [3, 2]: unit 0 {0.5, -1.27, 0.1}, unit 1 {-0.25, 0.2, 0.127}
  const scales = ncnnWeightScales(Float32Array.of(0.5, -0.25, -1.27, 0.2, 0.1, 0.127), { shape: [3, 2] });
  assert.deepEqual(Array.from(scales).map((s) => printfFixed(s)), ['100.000000', '508.000000']);
});

test('printf %f: six decimals of the exact binary value, ties to even', () => {
  assert.equal(printfFixed(1 / 128), '0.007812'); // exactly 0.0078125: tie, even digit kept
  assert.equal(printfFixed(3 / 128), '0.023438'); // exactly 0.0234375: tie, rounds up to even
  assert.equal(printfFixed(0.1), '0.100000');
  assert.equal(printfFixed(Math.fround(0.1)), '0.100000'); // 0.100000001490116…
  assert.equal(printfFixed(123456789.5), '123456789.500000');
  assert.equal(printfFixed(2 ** 60), '1152921504606846976.000000');
  assert.equal(printfFixed(-0.0000004), '-0.000000');
  assert.equal(printfFixed(0), '0.000000');
  assert.equal(printfFixed(Infinity), 'inf');
});

test('float32 hex: big-endian bit pattern, 8 lowercase digits', () => {
  assert.equal(float32HexBigEndian(1), '3f800000');
  assert.equal(float32HexBigEndian(2), '40000000');
  assert.equal(float32HexBigEndian(-2), 'c0000000');
  assert.equal(float32HexBigEndian(0.1), '3dcccccd');
  assert.equal(float32HexBigEndian(1 / 127), '3c010204');
  assert.equal(float32HexBigEndian(2 ** -149), '00000001'); // smallest subnormal keeps its zeros
});

test('TensorRT cache: exact text for two tensors', () => {
  // scale = threshold / 127: 127 → 1 (3f800000), 254 → 2 (40000000)
  const cache = writeTensorRtCache(
    [
      { tensor: 'data', threshold: 127 },
      { tensor: 'conv1', threshold: 254 },
    ],
    { version: 8601 },
  );
  assert.equal(cache, 'TRT-8601-EntropyCalibration2\ndata: 3f800000\nconv1: 40000000\n');
  assert.throws(() => writeTensorRtCache([{ tensor: 'a\nb', threshold: 1 }], { version: 8601 }), /one non-empty line/);
});
