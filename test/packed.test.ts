import { test } from 'node:test';
import assert from 'node:assert/strict';
import { packedByteLength, packTensor, readPacked, unpackTensor, writePacked, type PackedLayer } from '../src/export/packed.js';
import { Prng } from '../src/util/prng.js';
import { UserError } from '../src/util/errors.js';

const BIT_WIDTHS = [1, 2, 3, 4, 5, 6, 7, 8, 16];

function randomCodes(rng: Prng, n: number, bits: number): Int32Array {
  const lo = -(2 ** (bits - 1));
  const q = new Int32Array(n);
  for (let i = 0; i < n; i++) q[i] = lo + rng.int(2 ** bits);
  // the extremes, where sign extension goes wrong first
  if (n >= 2) {
    q[0] = lo;
    q[n - 1] = 2 ** (bits - 1) - 1;
  }
  return q;
}

function randomLayer(rng: Prng, name: string, shape: number[], bits: number, scaleCount: number, withCodebook = false): PackedLayer {
  const n = shape.reduce((a, b) => a * b, 1);
  const scales = new Float32Array(scaleCount);
  for (let i = 0; i < scaleCount; i++) scales[i] = rng.next() * 0.1 + 1e-4;
  const layer: PackedLayer = { name, shape, bits, scales, q: randomCodes(rng, n, bits) };
  if (withCodebook) layer.codebook = Float32Array.from({ length: 2 ** bits }, () => rng.normal());
  return layer;
}

test('packTensor: 3-bit codes by hand', () => {
  // 1 = 001, -1 = 111, 3 = 011, -4 = 100, bit 0 first: byte 0 = 1·2^0 + 7·2^3 + (3 & 3)·2^6 = 0xf9,
  // byte 1 = (3 >> 2) + 4·2^1 = 0x08
  const packed = packTensor(Int32Array.of(1, -1, 3, -4), 3);
  assert.deepEqual(Array.from(packed), [0xf9, 0x08]);
  assert.deepEqual(unpackTensor(packed, 3, 4), Int32Array.of(1, -1, 3, -4));
  assert.throws(() => packTensor(Int32Array.of(4), 3), /does not fit 3-bit/);
  assert.throws(() => packTensor(Int32Array.of(0), 17), /1\.\.16/);
});

test('packTensor / unpackTensor: bit-exact round trip and ceil(n·b/8) bytes for b = 1..8, 16', () => {
  const rng = new Prng(2024);
  for (const bits of BIT_WIDTHS) {
    for (const n of [0, 1, 7, 8, 9, 1000, 4097]) {
      const q = randomCodes(rng, n, bits);
      const packed = packTensor(q, bits);
      assert.equal(packed.length, Math.ceil((n * bits) / 8), `${n} codes at ${bits} bits`);
      assert.equal(packed.length, packedByteLength(n, bits));
      assert.deepEqual(unpackTensor(packed, bits, n), q, `${n} codes at ${bits} bits`);
    }
  }
});

test('writePacked / readPacked: every layer, scale and codebook comes back bit for bit', () => {
  const rng = new Prng(7);
  const layers = BIT_WIDTHS.map((bits, i) => randomLayer(rng, `layer${i}`, [3, 3, 2 + i, 5], bits, 5, bits <= 4));
  const meta = { model: 'resnet20', policy: { avgBits: 4.2 } };
  const model = readPacked(writePacked(layers, meta));
  assert.deepEqual(model.meta, meta);
  assert.equal(model.layers.length, layers.length);
  for (let i = 0; i < layers.length; i++) {
    const [want, got] = [layers[i]!, model.layers[i]!];
    assert.deepEqual(got, want, want.name);
    // Float32Array equality in deepEqual is by value; check the bits explicitly too
    assert.deepEqual(new Uint32Array(got.scales.buffer), new Uint32Array(want.scales.buffer));
  }
});

test('writePacked: the file is the payloads, 4-byte aligned, plus the header and index', () => {
  const rng = new Prng(99);
  const layers = [
    randomLayer(rng, 'conv1', [3, 3, 3, 16], 8, 16),
    randomLayer(rng, 'conv2', [3, 3, 16, 32], 3, 32),
    randomLayer(rng, 'conv3', [3, 3, 32, 64], 2, 64),
    randomLayer(rng, 'fc', [256, 10], 5, 10),
  ];
  const file = writePacked(layers, { note: 'size check' });
  // header: magic, version, index length, index padded to 4 bytes
  const indexLength = new DataView(file.buffer, file.byteOffset).getUint32(8, true);
  const header = Math.ceil((12 + indexLength) / 4) * 4;
  const payload = layers.reduce((sum, l) => sum + (l.q.length * l.bits) / 8, 0);
  assert.ok(file.length >= header + payload);
  assert.ok(file.length <= header + 1.01 * payload, `${file.length} bytes for ${payload} payload bytes + ${header} header`);
  assert.equal(file.length % 4, 0);
});

test('readPacked: malformed files are one-line UserErrors', () => {
  const rng = new Prng(5);
  const good = writePacked([randomLayer(rng, 'a', [4, 10], 4, 1), randomLayer(rng, 'b', [100], 3, 1)]);
  const withIndex = (index: unknown): Uint8Array => {
    const json = new TextEncoder().encode(JSON.stringify(index));
    const file = new Uint8Array(Math.ceil((12 + json.length) / 4) * 4 + 8);
    file.set(good.subarray(0, 8));
    new DataView(file.buffer).setUint32(8, json.length, true);
    file.set(json, 12);
    return file;
  };
  const entry = { name: 'a', shape: [4, 10], bits: 4, scales: [0.5], offset: 0, byteLength: 20 };
  const cases: [string, Uint8Array, RegExp][] = [
    ['short header', good.subarray(0, 7), /truncated: 7 bytes/],
    ['bad magic', Uint8Array.from(good, (b, i) => (i === 0 ? 0x58 : b)), /not an mpq packed model \(magic "XPQP"/],
    ['bad version', Uint8Array.from(good, (b, i) => (i === 4 ? 9 : b)), /unsupported format version 9/],
    ['truncated index', good.subarray(0, 20), /truncated: the index needs/],
    ['truncated payload', good.subarray(0, good.length - 4), /layer 'b': payload \[\d+, \d+\) runs past the end of the file/],
    ['index not JSON', withIndex('x').map((b, i) => (i === 12 ? 0x7b : b)), /index is not valid UTF-8 JSON/],
    ['missing field', withIndex({ meta: {}, layers: [{ ...entry, bits: undefined }] }), /bad index: layers\[0\]\.bits/],
    ['offset out of range', withIndex({ meta: {}, layers: [{ ...entry, offset: 4096 }] }), /layer 'a': payload \[\d+, \d+\) runs past the end/],
    ['wrong payload size', withIndex({ meta: {}, layers: [{ ...entry, byteLength: 8 }] }), /8 payload bytes, but 40 codes of 4 bits take 20/],
    ['unaligned offset', withIndex({ meta: {}, layers: [{ ...entry, shape: [2], byteLength: 1, offset: 2 }] }), /not 4-byte aligned/],
  ];
  for (const [name, bytes, message] of cases) {
    assert.throws(
      () => readPacked(bytes, 'model.mpqp'),
      (err: unknown) => err instanceof UserError && message.test(err.message) && err.message.startsWith('model.mpqp: ') && !err.message.includes('\n'),
      name,
    );
  }
});

test('version 2: float32 tensors and per-group codebooks round-trip bit for bit; version 1 files still read', () => {
  const rng = new Prng(31);
  const grouped = randomLayer(rng, 'nuq', [6, 4], 2, 1);
  grouped.groupSize = 8;
  // 24 codes in groups of 8: three codebooks of 2^2 levels
  grouped.codebook = Float32Array.from({ length: 12 }, () => rng.normal());
  grouped.codebook[0] = -0;
  grouped.codebook[1] = Math.fround(0.1);
  const floats = [
    { name: 'bn1.bns.fp.running_var', shape: [5], values: Float32Array.from({ length: 5 }, () => rng.next()) },
    { name: 'fc.quan_a_fn.s.8', shape: [], values: Float32Array.of(Math.fround(0.0123)) },
    { name: 'odd', shape: [3], values: Float32Array.of(-0, Number.MIN_VALUE, 3.4e38) },
  ];
  const layers = [randomLayer(rng, 'conv', [3, 3, 2, 5], 3, 5), grouped];
  const file = writePacked(layers, { v: 2 }, floats);
  assert.equal(new DataView(file.buffer).getUint32(4, true), 2);
  const model = readPacked(file);
  // JSON has no -0: it comes back as 0 (equal as a number), everything else bit for bit
  assert.ok(Object.is(model.layers[1]!.codebook![0], 0));
  grouped.codebook[0] = 0;
  assert.deepEqual(model.layers, layers);
  // float32 scales and codebooks are written in their shortest round-tripping decimal form
  assert.match(new TextDecoder().decode(file), /"codebook":\[0,0\.1,/);
  assert.deepEqual(model.floats.map((f) => f.name), floats.map((f) => f.name));
  model.floats.forEach((f, i) => {
    assert.deepEqual(f.shape, floats[i]!.shape);
    assert.deepEqual(new Uint32Array(f.values.buffer), new Uint32Array(Float32Array.from(floats[i]!.values).buffer), f.name);
  });
  // the float payloads are raw: 4 bytes a value, nothing else beyond alignment
  const withoutFloats = writePacked(layers, { v: 2 });
  assert.ok(file.length - withoutFloats.length >= 4 * 9 && file.length - withoutFloats.length <= 4 * 9 + 200);

  // a version 1 file (same layout, no floats) reads as before
  const v1 = writePacked([layers[0]!]);
  new DataView(v1.buffer).setUint32(4, 1, true);
  assert.deepEqual(readPacked(v1).layers, [layers[0]!]);
  assert.deepEqual(readPacked(v1).floats, []);

  assert.throws(() => writePacked([{ ...grouped, codebook: new Float32Array(13) }]), /13 codebook entries exceed 3 groups × 2\^2/);
  assert.throws(() => writePacked([layers[0]!], {}, [{ name: 'conv', shape: [1], values: new Float32Array(1) }]), /float tensor 'conv' appears twice/);
  assert.throws(() => writePacked([], {}, [{ name: 'x', shape: [2], values: new Float32Array(3) }]), /holds 2 values, got 3/);
  const truncated = writePacked([], {}, [floats[0]!]);
  assert.throws(() => readPacked(truncated.subarray(0, truncated.length - 4), 'f.mpqp'), (err: unknown) => err instanceof UserError && /^f\.mpqp: float tensor 'bn1\.bns\.fp\.running_var': payload \[\d+, \d+\) runs past the end/.test(err.message));
});
