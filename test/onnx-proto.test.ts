import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import protobuf from 'protobufjs';
import {
  decodeOnnx,
  encodeOnnx,
  ONNX_DATA_TYPE as T,
  onnxAttribute,
  readOnnxFile,
  writeOnnxFile,
  type OnnxModel,
  type OnnxNode,
  type OnnxTensor,
} from '../src/model/onnx/proto.js';
import { ONNX_PROTO } from '../src/model/onnx/schema.js';
import { floatToHalf, halfToFloat, pack4, unpack4 } from '../src/model/onnx/tensor-data.js';
import { loadMnistPackage, MNIST_PACKAGE_TEST } from '../src/train/data.js';
import { UserError } from '../src/util/errors.js';
import { Prng } from '../src/util/prng.js';
import { ONNX_FIXTURES_DIR, ORT_SKIP, runOnnx } from './onnxruntime.js';
import { tempDir } from './support.js';

interface FixtureRecord {
  file: string;
  opset: number;
  torch_test_top1: number;
  batch_norm: 'kept' | 'folded' | 'none';
  input: string;
  output: string;
  op_types: string[];
}
const FIXTURES = (JSON.parse(readFileSync(join(ONNX_FIXTURES_DIR, 'fixtures.json'), 'utf8')) as { fixtures: FixtureRecord[] }).fixtures;
const fixturePath = (f: FixtureRecord) => join(ONNX_FIXTURES_DIR, f.file);

function node(name: string, opType: string, inputs: string[], outputs: string[], attributes: OnnxNode['attributes'] = {}): OnnxNode {
  return { name, opType, domain: '', inputs, outputs, attributes };
}

function tensor(name: string, dataType: number, dims: number[], data: OnnxTensor['data']): OnnxTensor {
  return { name, dataType, dims, data };
}

function model(nodes: OnnxNode[], initializers: OnnxTensor[], opset = 21): OnnxModel {
  return {
    irVersion: opset >= 21 ? 10 : 8,
    opsetImports: [{ domain: '', version: opset }],
    producerName: 'mpq-test',
    producerVersion: '0',
    graph: {
      name: 'g',
      nodes,
      initializers,
      inputs: [{ name: 'x', elemType: T.FLOAT, shape: ['batch', 2] }],
      outputs: [{ name: 'y', elemType: T.FLOAT, shape: ['batch', 3] }],
      valueInfo: [],
    },
  };
}

/** A model holding every data type and attribute type mpq reads, with values that survive each type exactly. */
function everyKindModel(): OnnxModel {
  const m = model(
    [
      node('n0', 'Custom', ['x', '', 'w'], ['y', 'aux'], {
        alpha: { type: 'float', value: 1 },
        beta: { type: 'float', value: 0.25 },
        axis: { type: 'int', value: -1 },
        big: { type: 'int', value: 2 ** 63 }, // INT64_MAX as a double: written back as INT64_MAX
        mode: { type: 'string', value: 'constant ü' },
        value: { type: 'tensor', value: tensor('', T.INT64, [2], BigInt64Array.from([-3n, 9007199254740993n])) },
        scales: { type: 'floats', value: [0.5, -2, 3.25] },
        pads: { type: 'ints', value: [0, 1, -2, 2 ** 40] },
        names: { type: 'strings', value: ['a', '', 'ç'] },
        parts: { type: 'tensors', value: [tensor('p', T.FLOAT, [1], Float32Array.from([7]))] },
      }),
    ],
    [
      tensor('f32', T.FLOAT, [2, 3], Float32Array.from([0, -1.5, 3.25, 1e-8, -0, 65504])),
      tensor('u8', T.UINT8, [3], Uint8Array.from([0, 128, 255])),
      tensor('i8', T.INT8, [3], Int8Array.from([-128, 0, 127])),
      tensor('u16', T.UINT16, [2], Uint16Array.from([0, 65535])),
      tensor('i16', T.INT16, [2], Int16Array.from([-32768, 32767])),
      tensor('i32', T.INT32, [2], Int32Array.from([-(2 ** 31), 2 ** 31 - 1])),
      tensor('i64', T.INT64, [2], BigInt64Array.from([-(2n ** 63n), 2n ** 63n - 1n])),
      tensor('bool', T.BOOL, [3], Uint8Array.from([1, 0, 1])),
      tensor('f16', T.FLOAT16, [4], Float32Array.from([1, -2, 65504, 2 ** -24])),
      tensor('f64', T.DOUBLE, [2], Float64Array.from([Math.PI, -1e300])),
      tensor('u32', T.UINT32, [1], Uint32Array.from([2 ** 32 - 1])),
      tensor('u64', T.UINT64, [1], BigUint64Array.from([2n ** 64n - 1n])),
      tensor('bf16', T.BFLOAT16, [2], Float32Array.from([1.5, -256])),
      tensor('u4', T.UINT4, [3], Uint8Array.from([0, 1, 15])),
      tensor('i4', T.INT4, [5], Int8Array.from([-8, -1, 0, 7, 3])),
      tensor('scalar', T.FLOAT, [], Float32Array.from([2])),
      tensor('empty', T.FLOAT, [0, 4], new Float32Array(0)),
    ],
  );
  m.graph.valueInfo = [
    { name: 'aux', elemType: T.FLOAT16, shape: [null, 'n', 3] },
    { name: 'rankless', elemType: T.INT8, shape: undefined },
    { name: 'scalar_value', elemType: T.FLOAT, shape: [] },
  ];
  return m;
}

test('encode → decode gives back every data type, attribute type and shape exactly', () => {
  const original = everyKindModel();
  const back = decodeOnnx(encodeOnnx(original), 'every.onnx');
  assert.deepEqual(back, original);
  // INT64_MAX went on the wire (it reads back as the double 2^63); 2^63 wrapped would be INT64_MIN
  const big = onnxAttribute(back.graph.nodes[0], 'big', 'int', 'every.onnx');
  assert.ok(big !== undefined && big > 0);
});

test('INT4 / UINT4 are packed two per byte, low nibble first, in the bytes written', () => {
  // by hand: [-8, -1] → 0x8 | 0xF << 4 = 0xF8; [0, 7] → 0x70; [3] → 0x03 (odd count: high nibble 0)
  assert.deepEqual([...pack4([-8, -1, 0, 7, 3], true)], [0xf8, 0x70, 0x03]);
  assert.deepEqual([...pack4([0, 1, 15], false)], [0x10, 0x0f]);
  assert.deepEqual([...unpack4(Uint8Array.from([0xf8, 0x70, 0x03]), 5, true)], [-8, -1, 0, 7, 3]);
  assert.deepEqual([...unpack4(Uint8Array.from([0x10, 0x0f]), 3, false)], [0, 1, 15]);
  assert.throws(() => pack4([8], true), /INT4 element 0 is 8, outside \[-8, 7\]/);
  assert.throws(() => pack4([-1], false), /UINT4 element 0 is -1/);
  // in the file: raw_data (field 9, wire type 2: tag 0x4a) of 3 bytes holding them
  const bytes = Buffer.from(encodeOnnx(model([], [tensor('w', T.INT4, [5], Int8Array.from([-8, -1, 0, 7, 3]))])));
  assert.ok(bytes.includes(Buffer.from([0x4a, 0x03, 0xf8, 0x70, 0x03])));
});

/** ModelProto bytes written straight from protobuf message fields, for forms mpq's writer never uses. */
function rawModelBytes(initializers: object[], extra: object = {}): Uint8Array {
  const ModelProto = protobuf.parse(ONNX_PROTO, { keepCase: true }).root.lookupType('onnx.ModelProto');
  return ModelProto.encode({ ir_version: 8, opset_import: [{ domain: '', version: 13 }], graph: { name: 'g', initializer: initializers }, ...extra }).finish();
}

test('tensors stored in the typed fields (float_data, int32_data, int64_data, ...) decode like raw_data', () => {
  const bytes = rawModelBytes([
    { name: 'f', data_type: T.FLOAT, dims: [2], float_data: [1.5, -2] },
    { name: 'h', data_type: T.FLOAT16, dims: [3], int32_data: [0x3c00, 0xc000, 0x3555] },
    { name: 'i4', data_type: T.INT4, dims: [3], int32_data: [0xf8, 0x07] },
    { name: 'u8', data_type: T.UINT8, dims: [2], int32_data: [3, 250] },
    { name: 'i64', data_type: T.INT64, dims: [2], int64_data: [-5, 2 ** 40] },
    { name: 'd', data_type: T.DOUBLE, dims: [1], double_data: [0.1] },
    { name: 'u32', data_type: T.UINT32, dims: [1], uint64_data: [4000000000] },
  ]);
  const got = Object.fromEntries(decodeOnnx(bytes, 'typed.onnx').graph.initializers.map((t) => [t.name, t.data]));
  assert.deepEqual(got.f, Float32Array.from([1.5, -2]));
  assert.deepEqual(got.h, Float32Array.from([1, -2, 0.333251953125]));
  assert.deepEqual(got.i4, Int8Array.from([-8, -1, 7]));
  assert.deepEqual(got.u8, Uint8Array.from([3, 250]));
  assert.deepEqual(got.i64, BigInt64Array.from([-5n, 2n ** 40n]));
  assert.deepEqual(got.d, Float64Array.from([0.1]));
  assert.deepEqual(got.u32, Uint32Array.from([4000000000]));
});

test('float16: every half value converts to a number and back to its own bits; floats round to nearest even', () => {
  for (let bits = 0; bits < 0x10000; bits++) {
    const value = halfToFloat(bits);
    if (Number.isNaN(value)) assert.ok(Number.isNaN(halfToFloat(floatToHalf(value))));
    else assert.equal(floatToHalf(value), bits, `half 0x${bits.toString(16)} (${value})`);
  }
  assert.equal(floatToHalf(1 + 2 ** -11), 0x3c00); // a tie: to the even neighbour 1
  assert.equal(floatToHalf(1 + 3 * 2 ** -11), 0x3c02); // a tie: to the even neighbour 1 + 2^-9
  assert.equal(floatToHalf(1 + 2 ** -11 + 2 ** -20), 0x3c01); // above the tie
  assert.equal(floatToHalf(65519), 0x7bff);
  assert.equal(floatToHalf(65520), 0x7c00); // rounds up to infinity
  assert.equal(floatToHalf(2 ** -25), 0x0000); // tie between 0 and the least subnormal: even is 0
  assert.equal(floatToHalf(1.5 * 2 ** -25), 0x0001);
  assert.equal(floatToHalf(-1e-30), 0x8000);
});

test('the committed fixtures decode: the op types, opset and shapes that fixtures.json records', () => {
  assert.deepEqual(FIXTURES.map((f) => f.file).sort(), ['mlp.onnx', 'residual.onnx', 'separable.onnx']);
  for (const f of FIXTURES) {
    const m = readOnnxFile(fixturePath(f));
    assert.equal(m.producerName, 'pytorch');
    assert.deepEqual(m.opsetImports, [{ domain: '', version: f.opset }]);
    assert.deepEqual([...new Set(m.graph.nodes.map((n) => n.opType))].sort(), f.op_types, f.file);
    assert.deepEqual(m.graph.inputs.map((v) => [v.name, v.elemType, v.shape]), [[f.input, T.FLOAT, ['batch', 1, 28, 28]]]);
    assert.deepEqual(m.graph.outputs.map((v) => [v.name, v.elemType, v.shape]), [[f.output, T.FLOAT, ['batch', 10]]]);
    // every node reads values that exist before it: graph inputs, initializers or earlier outputs
    const known = new Set([...m.graph.inputs.map((v) => v.name), ...m.graph.initializers.map((t) => t.name), '']);
    for (const n of m.graph.nodes) {
      for (const input of n.inputs) assert.ok(known.has(input), `${f.file}: ${n.name} reads ${input}`);
      n.outputs.forEach((o) => known.add(o));
    }
    for (const t of m.graph.initializers) assert.equal(t.data.length, t.dims.reduce((a, b) => a * b, 1), t.name);
    const conv = m.graph.nodes.find((n) => n.opType === 'Conv');
    if (conv !== undefined) assert.equal(onnxAttribute(conv, 'kernel_shape', 'ints', f.file)?.length, 2);
  }
  const separable = readOnnxFile(join(ONNX_FIXTURES_DIR, 'separable.onnx'));
  const groups = separable.graph.nodes.filter((n) => n.opType === 'Conv').map((n) => onnxAttribute(n, 'group', 'int', 'separable.onnx') ?? 1);
  assert.ok(groups.some((g) => g > 1), 'a depthwise conv (group > 1)');
});

test('decode → encode → decode of each fixture gives the same model', () => {
  for (const f of FIXTURES) {
    const once = readOnnxFile(fixturePath(f));
    assert.deepEqual(decodeOnnx(encodeOnnx(once), f.file), once, f.file);
  }
});

/** mpq's MNIST test split as NCHW [N, 1, 28, 28] floats (one channel: the same bytes as NHWC). */
const testSplit = (() => {
  let cached: ReturnType<typeof loadMnistPackage>['test'] | undefined;
  return () => (cached ??= loadMnistPackage(0).test);
})();

test('onnxruntime runs each fixture: its outputs equal PyTorch\'s, its top-1 on the test split the one recorded', { skip: ORT_SKIP }, async () => {
  const digits = testSplit();
  assert.equal(digits.count, MNIST_PACKAGE_TEST);
  for (const f of FIXTURES) {
    const expected = JSON.parse(readFileSync(fixturePath(f).replace(/\.onnx$/, '.logits.json'), 'utf8')) as Record<string, number[][]> & { labels: number[] };
    const rows = expected[f.output];
    const first = await runOnnx(fixturePath(f), { [f.input]: { data: digits.images.subarray(0, rows.length * 784), dims: [rows.length, 1, 28, 28] } });
    assert.deepEqual(first[f.output].dims, [rows.length, 10]);
    assert.deepEqual(expected.labels, [...digits.labels.subarray(0, rows.length)], 'the same test digits as PyTorch saw');
    const worst = Math.max(...rows.flat().map((v, i) => Math.abs(v - first[f.output].data[i])));
    assert.ok(worst <= 1e-4, `${f.file}: max |onnxruntime − PyTorch| = ${worst}`);

    const all = (await runOnnx(fixturePath(f), { [f.input]: { data: digits.images, dims: [digits.count, 1, 28, 28] } }))[f.output].data;
    let correct = 0;
    for (let i = 0; i < digits.count; i++) {
      const row = all.subarray(i * 10, i * 10 + 10);
      if (row.indexOf(Math.max(...row)) === digits.labels[i]) correct++;
    }
    // a digit whose top two outputs tie within float error may go either way: at most one
    assert.ok(Math.abs(correct - Math.round(f.torch_test_top1 * digits.count)) <= 1, `${f.file}: onnxruntime top-1 ${correct}/${digits.count}, PyTorch ${f.torch_test_top1}`);
  }
});

test('a fixture re-encoded by mpq runs in onnxruntime with outputs identical to the original file', { skip: ORT_SKIP }, async () => {
  const digits = testSplit();
  const dir = tempDir();
  for (const f of FIXTURES) {
    const copy = join(dir, f.file);
    writeOnnxFile(copy, readOnnxFile(fixturePath(f)));
    const feed = { [f.input]: { data: digits.images.subarray(0, 32 * 784), dims: [32, 1, 28, 28] } };
    const [a, b] = [await runOnnx(fixturePath(f), feed), await runOnnx(copy, feed)];
    assert.deepEqual(b[f.output].data, a[f.output].data, f.file);
  }
});

test('onnxruntime runs opset-21 QDQ with INT4 weights and UINT4 activations as written by encodeOnnx', { skip: ORT_SKIP }, async () => {
  // y = DQ(Q(x)) · DQ(w): x quantized to UINT4 with step 0.5 (clamped at 15), w an INT4 [3, 3]
  // (9 elements: the last byte half used) with one scale per output column
  const w = Int8Array.from([-8, -1, 0, 7, 3, -5, 1, 2, -3]);
  const wScale = [0.1, 0.2, 0.3];
  const m = model(
    [
      node('qx', 'QuantizeLinear', ['x', 'xs', 'xz'], ['xq']),
      node('dqx', 'DequantizeLinear', ['xq', 'xs', 'xz'], ['xd']),
      node('dqw', 'DequantizeLinear', ['w', 'ws', 'wz'], ['wd'], { axis: { type: 'int', value: 1 } }),
      node('mm', 'MatMul', ['xd', 'wd'], ['y']),
    ],
    [
      tensor('xs', T.FLOAT, [], Float32Array.from([0.5])),
      tensor('xz', T.UINT4, [], Uint8Array.from([0])),
      tensor('w', T.INT4, [3, 3], w),
      tensor('ws', T.FLOAT, [3], Float32Array.from(wScale)),
      tensor('wz', T.INT4, [3], Int8Array.from([0, 0, 0])),
    ],
  );
  m.graph.inputs[0].shape = ['batch', 3];
  const path = join(tempDir(), 'qdq-int4.onnx');
  writeOnnxFile(path, m);
  const x = Float32Array.from([1.2, 9.0, -1, 3.3, 0.26, 7.4]);
  const y = (await runOnnx(path, { x: { data: x, dims: [2, 3] } })).y;
  const xq = Array.from(x, (v) => Math.min(15, Math.max(0, Math.round(v / 0.5))) * 0.5); // round half to even is not hit here
  for (let n = 0; n < 2; n++) {
    for (let j = 0; j < 3; j++) {
      let sum = 0;
      for (let k = 0; k < 3; k++) sum += xq[n * 3 + k] * w[k * 3 + j] * wScale[j];
      assert.ok(Math.abs(y.data[n * 3 + j] - sum) < 1e-5, `y[${n},${j}] = ${y.data[n * 3 + j]}, by hand ${sum}`);
    }
  }
});

/** The one-line UserError that decoding `bytes` gives. */
function decodeError(bytes: Uint8Array, path = '/data/model.onnx'): string {
  try {
    decodeOnnx(bytes, path);
  } catch (err) {
    assert.ok(err instanceof UserError, `a UserError, not ${(err as Error).stack}`);
    assert.ok(err.message.startsWith(`${path}: `), err.message);
    assert.ok(!err.message.includes('\n'), err.message);
    return err.message;
  }
  assert.fail('decoded without an error');
}

test('bad files: empty, JSON, random bytes, truncated, huge declared length: one line naming the file', () => {
  assert.match(decodeError(new Uint8Array()), /empty file, not an ONNX model/);
  assert.match(decodeError(Buffer.from('{"format": "layers-model", "modelTopology": {}}')), /not an ONNX model \(it is JSON text/);
  assert.match(decodeError(Buffer.from('\x7fELF\x02\x01\x01\x00')), /not an ONNX model \(it starts with bytes 7f 45 4c 46/);
  for (let seed = 0; seed < 50; seed++) {
    const random = new Prng(seed);
    assert.match(decodeError(Uint8Array.from({ length: 4096 }, () => random.int(256))), /not an ONNX model|truncated or corrupt ONNX file/);
  }
  const fixture = readFileSync(join(ONNX_FIXTURES_DIR, 'residual.onnx'));
  for (const cut of [1, 40, fixture.length >> 1, fixture.length - 3]) {
    assert.match(decodeError(fixture.subarray(0, cut)), /truncated/, `cut at ${cut}`);
  }
  // ir_version, then a graph (field 7) declaring 2^40 bytes
  const huge = Uint8Array.from([0x08, 0x08, 0x3a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20, 0x0a, 0x00]);
  assert.match(decodeError(huge), /corrupt ONNX file \(graph at byte 2 declares 1099511627776 bytes, more than a protobuf message can hold/);
  // the same inside the graph: an initializer's raw_data (field 9) declaring 2^40 bytes
  const tensor = Buffer.concat([Buffer.from([0x10, 0x01, 0x42, 0x01, 0x77]), Buffer.from([0x4a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20]), Buffer.alloc(16, 1)]);
  const graph = Buffer.concat([Buffer.from([0x2a, tensor.length]), tensor]);
  const nested = Buffer.concat([Buffer.from([0x08, 0x08, 0x3a, graph.length]), graph, Buffer.from([0x42, 0x02, 0x10, 0x0d])]);
  assert.match(decodeError(nested), /corrupt ONNX file \(invalid length encoding\)/);
});

test('bad tensors: external data, data of the wrong size, unsupported types: one line naming file and tensor', () => {
  const external = rawModelBytes([{ name: 'fc.weight', data_type: T.FLOAT, dims: [4], data_location: 1, external_data: [{ key: 'location', value: 'model.onnx.data' }] }]);
  assert.match(decodeError(external), /initializer "fc.weight" keeps its data in an external file \(model.onnx.data\), which mpq does not read; save the model as one self-contained .onnx file/);
  const short = rawModelBytes([{ name: 'w', data_type: T.FLOAT, dims: [1000000000, 1000], raw_data: new Uint8Array(8) }]);
  assert.match(decodeError(short), /initializer "w": raw_data holds 8 bytes, dims \[1000000000, 1000\] of FLOAT need 4000000000000/);
  const empty = rawModelBytes([{ name: 'w', data_type: T.INT8, dims: [3] }]);
  assert.match(decodeError(empty), /initializer "w": holds no data, dims \[3\] of INT8 need 3/);
  const strings = rawModelBytes([{ name: 's', data_type: T.STRING, dims: [1], string_data: [Buffer.from('a')] }]);
  assert.match(decodeError(strings), /initializer "s": data type STRING is not supported/);
  assert.match(decodeError(rawModelBytes([], { opset_import: [] })), /not a complete ONNX model: no opset_import/);
  assert.match(decodeError(rawModelBytes([], { graph: undefined })), /not a complete ONNX model: no graph/);
});

test('readOnnxFile / writeOnnxFile: missing file is one line; a model that cannot be encoded leaves no file', () => {
  const dir = tempDir();
  assert.throws(() => readOnnxFile(join(dir, 'none.onnx')), (err: Error) => err instanceof UserError && err.message === `${join(dir, 'none.onnx')}: no such ONNX file`);
  assert.throws(() => readOnnxFile(dir), /is a directory, not an ONNX file/);
  const out = join(dir, 'out.onnx');
  assert.throws(() => writeOnnxFile(out, model([], [tensor('w', T.FLOAT, [3], new Float32Array(2))])), /tensor "w": 2 elements, dims \[3\] hold 3/);
  assert.throws(() => writeOnnxFile(out, model([], [tensor('w', T.FLOAT16, [1], new Uint16Array(1))])), /FLOAT16 data must be a Float32Array/);
  assert.ok(!existsSync(out));
  writeFileSync(out, 'old');
  writeOnnxFile(out, everyKindModel());
  assert.deepEqual(readOnnxFile(out), decodeOnnx(encodeOnnx(everyKindModel()), out));
});

test('onnxAttribute: the value when of the asked type, undefined when absent, one line when of another type', () => {
  const n = node('c', 'Conv', [], [], { strides: { type: 'ints', value: [2, 2] }, group: { type: 'int', value: 4 } });
  assert.deepEqual(onnxAttribute(n, 'strides', 'ints', 'm.onnx'), [2, 2]);
  assert.equal(onnxAttribute(n, 'dilations', 'ints', 'm.onnx'), undefined);
  assert.throws(() => onnxAttribute(n, 'group', 'float', 'm.onnx'), (err: Error) => err instanceof UserError && err.message === 'm.onnx: node "c" (Conv): attribute group is of type int, expected float');
});
