import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';
import { packedByteLength, packTensor, readPacked, unpackTensor, writePacked, type PackedLayer } from '../src/export/packed.js';
import { Prng } from '../src/util/prng.js';
import { UserError } from '../src/util/errors.js';
import { evaluatePackedModel } from '../src/simulate/evaluate-packed.js';
import { runCli, tempDir } from './support.js';

const BIT_WIDTHS = [1, 2, 3, 4, 5, 6, 7, 8, 16];

/** A version-3 file's payload, inflated by hand (header: magic, version, inflated length). */
function payloadOf(file: Uint8Array): Uint8Array {
  return inflateSync(file.subarray(12));
}

/** The same model as a version-2 file: the payload uncompressed after magic and version. */
function asVersion(version: 1 | 2, file: Uint8Array): Uint8Array {
  const payload = payloadOf(file);
  const out = new Uint8Array(8 + payload.length);
  out.set(file.subarray(0, 4));
  new DataView(out.buffer).setUint32(4, version, true);
  out.set(payload, 8);
  return out;
}

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

test('writePacked: the payload is the code payloads, 4-byte aligned, plus the index; the file is it zlib-compressed', () => {
  const rng = new Prng(99);
  const layers = [
    randomLayer(rng, 'conv1', [3, 3, 3, 16], 8, 16),
    randomLayer(rng, 'conv2', [3, 3, 16, 32], 3, 32),
    randomLayer(rng, 'conv3', [3, 3, 32, 64], 2, 64),
    randomLayer(rng, 'fc', [256, 10], 5, 10),
  ];
  const file = writePacked(layers, { note: 'size check' });
  const header = new DataView(file.buffer, file.byteOffset);
  assert.equal(new TextDecoder().decode(file.subarray(0, 4)), 'MPQP');
  assert.equal(header.getUint32(4, true), 3);
  const payload = payloadOf(file);
  assert.equal(header.getUint32(8, true), payload.length, 'the header gives the inflated length');
  // payload: index length, index padded to 4 bytes, then the codes
  const indexLength = new DataView(payload.buffer, payload.byteOffset).getUint32(0, true);
  const dataStart = Math.ceil((4 + indexLength) / 4) * 4;
  const codes = layers.reduce((sum, l) => sum + (l.q.length * l.bits) / 8, 0);
  assert.ok(payload.length >= dataStart + codes);
  assert.ok(payload.length <= dataStart + 1.01 * codes, `${payload.length} bytes for ${codes} code bytes + ${dataStart} index`);
  assert.equal(payload.length % 4, 0);
  const model = readPacked(file);
  assert.equal(model.version, 3);
  assert.equal(model.payloadBytes, payload.length);
});

test('version 3 compresses: a compressible payload shrinks, an incompressible one costs only the header and zlib framing', () => {
  const rng = new Prng(12);
  // skewed codes (mostly 0, as quantized weights are) and repeated float state compress …
  const skewed: PackedLayer = { name: 'w', shape: [4096], bits: 4, scales: Float32Array.of(0.5), q: Int32Array.from({ length: 4096 }, () => (rng.next() < 0.9 ? 0 : rng.int(7) - 3)) };
  const floats = [{ name: 'bn.bns.fp', shape: [4, 64], values: new Float32Array(256).fill(1) }];
  const file = writePacked([skewed], { note: 'skewed' }, floats);
  const model = readPacked(file);
  assert.ok(file.length < 0.6 * model.payloadBytes, `${file.length} bytes for a ${model.payloadBytes}-byte payload`);
  assert.deepEqual(model.layers, [skewed]);
  // … uniformly random 8-bit codes do not: deflate falls back to stored blocks (5 bytes per 64 KiB)
  const random = randomLayer(rng, 'r', [8192], 8, 1);
  const noise = writePacked([random]);
  const noiseModel = readPacked(noise);
  assert.ok(noise.length <= 12 + noiseModel.payloadBytes + 6 + 5 * Math.ceil(noiseModel.payloadBytes / 65535), `${noise.length} vs ${noiseModel.payloadBytes}`);
  assert.deepEqual(noiseModel.layers, [random]);
});

test('readPacked: malformed files are one-line UserErrors', () => {
  const rng = new Prng(5);
  // the index and payload checks, on the uncompressed (version 2) layout they apply to
  const good = asVersion(2, writePacked([randomLayer(rng, 'a', [4, 10], 4, 1), randomLayer(rng, 'b', [100], 3, 1)]));
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
    ['short header', good.subarray(0, 7), /truncated: 7 bytes, shorter than the 12-byte header/],
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

test('float32 tensors and per-group codebooks round-trip bit for bit; version 2 and version 1 files still read', () => {
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
  const model = readPacked(file);
  // JSON has no -0: it comes back as 0 (equal as a number), everything else bit for bit
  assert.ok(Object.is(model.layers[1]!.codebook![0], 0));
  grouped.codebook[0] = 0;
  assert.deepEqual(model.layers, layers);
  // float32 scales and codebooks are written in their shortest round-tripping decimal form
  assert.match(new TextDecoder().decode(payloadOf(file)), /"codebook":\[0,0\.1,/);
  assert.deepEqual(model.floats.map((f) => f.name), floats.map((f) => f.name));
  model.floats.forEach((f, i) => {
    assert.deepEqual(f.shape, floats[i]!.shape);
    assert.deepEqual(new Uint32Array(f.values.buffer), new Uint32Array(Float32Array.from(floats[i]!.values).buffer), f.name);
  });
  // the float payloads are raw: 4 bytes a value, nothing else beyond alignment
  const withoutFloats = readPacked(writePacked(layers, { v: 2 }));
  assert.ok(model.payloadBytes - withoutFloats.payloadBytes >= 4 * 9 && model.payloadBytes - withoutFloats.payloadBytes <= 4 * 9 + 200);

  // a version 2 file (the same payload, uncompressed) reads to the same model
  const v2 = asVersion(2, file);
  assert.deepEqual(readPacked(v2), { ...model, version: 2 });
  assert.equal(v2.length, 8 + model.payloadBytes);
  // a version 1 file (same layout, no floats) reads as before
  const v1 = asVersion(1, writePacked([layers[0]!]));
  assert.deepEqual(readPacked(v1).layers, [layers[0]!]);
  assert.deepEqual(readPacked(v1).floats, []);

  assert.throws(() => writePacked([{ ...grouped, codebook: new Float32Array(13) }]), /13 codebook entries exceed 3 groups × 2\^2/);
  assert.throws(() => writePacked([layers[0]!], {}, [{ name: 'conv', shape: [1], values: new Float32Array(1) }]), /float tensor 'conv' appears twice/);
  assert.throws(() => writePacked([], {}, [{ name: 'x', shape: [2], values: new Float32Array(3) }]), /holds 2 values, got 3/);
  const truncated = asVersion(2, writePacked([], {}, [floats[0]!]));
  assert.throws(() => readPacked(truncated.subarray(0, truncated.length - 4), 'f.mpqp'), (err: unknown) => err instanceof UserError && /^f\.mpqp: float tensor 'bn1\.bns\.fp\.running_var': payload \[\d+, \d+\) runs past the end/.test(err.message));
});

test('version 3: a truncated or corrupt compressed payload is a one-line UserError naming the file', () => {
  const rng = new Prng(8);
  const good = writePacked([randomLayer(rng, 'a', [4, 10], 4, 1), randomLayer(rng, 'b', [300], 3, 1)], { note: 'corrupt me' },
    [{ name: 'bn.bns.fp', shape: [4, 8], values: Float32Array.from({ length: 32 }, () => rng.normal()) }]);
  const flipped = (at: number) => Uint8Array.from(good, (b, i) => (i === at ? b ^ 0x10 : b));
  const withLength = (length: number) => {
    const file = Uint8Array.from(good);
    new DataView(file.buffer).setUint32(8, length, true);
    return file;
  };
  const payloadBytes = readPacked(good).payloadBytes;
  const cases: [string, Uint8Array, RegExp][] = [
    ['header only', good.subarray(0, 12), /corrupt compressed payload \(unexpected end of file\)/],
    ['truncated stream', good.subarray(0, good.length - 20), /corrupt compressed payload \(unexpected end of file\)/],
    ['truncated checksum', good.subarray(0, good.length - 1), /corrupt compressed payload/],
    // a flipped bit in the last bytes hits the Adler-32 checksum, one in the middle the deflate stream or the checksum
    ['bad checksum', flipped(good.length - 2), /corrupt compressed payload \(incorrect data check\)/],
    ['flipped stream byte', flipped(12 + Math.floor((good.length - 12) / 2)), /corrupt compressed payload/],
    ['stated length too small', withLength(payloadBytes - 1), /corrupt compressed payload \(Cannot create a Buffer larger than/],
    ['stated length too large', withLength(payloadBytes + 4), new RegExp(`corrupt compressed payload \\(${payloadBytes} bytes inflated, the header says ${payloadBytes + 4}\\)`)],
  ];
  for (const [name, bytes, message] of cases) {
    assert.throws(
      () => readPacked(bytes, 'x.mpqp'),
      (err: unknown) => err instanceof UserError && message.test(err.message) && err.message.startsWith('x.mpqp: ') && !err.message.includes('\n'),
      name,
    );
  }
});

test('codebook layers without scales and codebooks per channel (version 4) round-trip; a file without them stays version 3', () => {
  const rng = new Prng(40);
  const uniform = randomLayer(rng, 'u', [2, 3], 4, 3);
  // QAT/DoReFa style: one codebook, no scales
  const affine: PackedLayer = { ...randomLayer(rng, 'a', [4, 5], 3, 0), codebook: Float32Array.from({ length: 8 }, (_, c) => Math.fround((c - 3) * 0.25)) };
  // a codebook per channel of the last axis (3 channels × 2^2 levels): element i reads channel i mod 3
  const perChannel: PackedLayer = { ...randomLayer(rng, 'c', [4, 3], 2, 0), codebook: Float32Array.from({ length: 12 }, () => rng.normal()), perChannel: true };
  const file = writePacked([uniform, affine, perChannel]);
  assert.equal(new DataView(file.buffer).getUint32(4, true), 4);
  const model = readPacked(file);
  assert.equal(model.version, 4);
  assert.deepEqual(model.layers, [uniform, affine, perChannel]);
  assert.equal(new DataView(writePacked([uniform]).buffer).getUint32(4, true), 3, 'nothing of version 4: older builds read it');

  // one validity check on both sides (quant/integer-form.ts integerFormProblem)
  const bad: Array<[PackedLayer, RegExp]> = [
    [{ ...uniform, scales: new Float32Array(0) }, /layer 'u': scales is empty \(a uniform form has one scale per tensor or channel\)/],
    [{ ...uniform, scales: new Float32Array(4).fill(1) }, /layer 'u': 4 scales do not divide 6 codes into channels/],
    [{ ...uniform, groupSize: 2 }, /layer 'u': groupSize without a codebook/],
    [{ ...perChannel, codebook: new Float32Array(20) }, /layer 'c': 20 codebook entries are not 2\^2 per channel of 12 codes/],
    [{ ...perChannel, codebook: new Float32Array(8) }, /layer 'c': codebooks for 2 channels, the last axis of \[4, 3\] has 3/],
    [{ ...uniform, scales: new Float32Array(2).fill(1) }, /layer 'u': scales for 2 channels, the last axis of \[2, 3\] has 3/],
    [{ ...affine, codebook: Float32Array.of(1, NaN) }, /layer 'a': codebook must be finite/],
  ];
  for (const [layer, message] of bad) assert.throws(() => writePacked([layer]), message);
  // the reader refuses the same, as a one-line UserError
  const text = new TextDecoder().decode(payloadOf(writePacked([uniform])));
  const tampered = inflatedWithIndex(writePacked([uniform]), text.slice(4, 4 + new DataView(payloadOf(writePacked([uniform])).buffer).getUint32(0, true)).replace('"scales":[', '"groupSize":2,"scales":['));
  assert.throws(() => readPacked(tampered, 't.mpqp'), (err: unknown) => err instanceof UserError && /^t\.mpqp: layer 'u': groupSize without a codebook$/.test(err.message));
});

/** A version-2 (uncompressed) copy of `file` with its JSON index replaced by `index`. */
function inflatedWithIndex(file: Uint8Array, index: string): Uint8Array {
  const payload = payloadOf(file);
  const oldLength = new DataView(payload.buffer, payload.byteOffset).getUint32(0, true);
  const data = payload.subarray(Math.ceil((4 + oldLength) / 4) * 4);
  const json = new TextEncoder().encode(index);
  const start = Math.ceil((4 + json.length) / 4) * 4;
  const out = new Uint8Array(8 + start + data.length);
  out.set(file.subarray(0, 4));
  const view = new DataView(out.buffer);
  view.setUint32(4, 2, true);
  view.setUint32(8, json.length, true);
  out.set(json, 12);
  out.set(data, 8 + start);
  return out;
}

test('a version-2 file (no checksum) says so on load; mpq pack --packed rewrites it as version 3, the same model', async () => {
  const rng = new Prng(5);
  const layers = [randomLayer(rng, 'conv', [3, 3, 2, 5], 3, 5)];
  const floats = [{ name: 'bn.weight', shape: [5], values: Float32Array.from({ length: 5 }, () => rng.normal()) }];
  const dir = tempDir('mpq-packed-');
  const old = join(dir, 'old.mpqp');
  writeFileSync(old, asVersion(2, writePacked(layers, { format: 'mpq-packed-model', model: 'no-such-model' }, floats)));

  const notes: string[] = [];
  // the note comes as the file is read, before anything else is asked of it (here: a model it cannot build)
  await assert.rejects(evaluatePackedModel({ bytes: readFileSync(old), path: old, log: (l) => notes.push(l) }), (e: Error) => e.name === 'UserError');
  assert.deepEqual(notes, [`mpq: note: ${old} is a version-2 packed file, without a checksum: a corrupted byte would go unnoticed; \`mpq pack --packed ${old} --out NEW.mpqp\` rewrites it with one (version 3 or later)`]);

  const fresh = join(dir, 'new.mpqp');
  const r = runCli(['pack', '--packed', old, '--out', fresh, '--json']);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { out: fresh, from_version: 2, version: 3, bytes: readFileSync(fresh).length });
  const before = readPacked(readFileSync(old));
  const after = readPacked(readFileSync(fresh));
  assert.deepEqual({ ...after, version: 2 }, before);
  // version 3 is checksummed: the byte that version 2 would have taken is now an error
  const bytes = readFileSync(fresh);
  bytes[bytes.length - 3] ^= 0x10;
  assert.throws(() => readPacked(bytes, 'new.mpqp'), /new\.mpqp: corrupt compressed payload/);
  const stray = runCli(['pack', '--packed', old, '--out', fresh, '--policy', 'p.json']);
  assert.equal(stray.status, 2);
  assert.equal(stray.stderr, 'mpq: --policy: not with --packed (the packed file holds the model)\n');
});
