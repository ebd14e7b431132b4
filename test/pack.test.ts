import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { readPacked } from '../src/export/packed.js';
import { readPolicy } from '../src/export/policy-file.js';
import { formatPackedSize, inputQuantizersOf, loadPackedModel, packedSize, packModel } from '../src/simulate/packed-model.js';
import { disposeModel } from '../src/train/models.js';
import { simulatedModel, type SimulateContext } from '../src/simulate/simulate.js';
import { CLIP_LIMIT, samplePerClass } from '../src/simulate/calibrate.js';
import { initBackend } from '../src/train/backend/index.js';
import { readCheckpoint } from '../src/train/checkpoint.js';
import { loadMnistPackage, subset } from '../src/train/data.js';
import { evaluate } from '../src/train/loops.js';
import { createModel, type BitsPolicy, type QuantModel } from '../src/train/models.js';
import { policyBits, policyFromFile } from '../src/train/policies.js';
import { planQuantization, type QuantizeRequest } from '../src/train/quantization-plan.js';
import { finetuneAtPolicy, loadWeights } from '../src/train/run.js';
import { saveUntrainedCheckpoint } from './checkpoints.js';
import { REPO_ROOT, runCli, tempDir } from './support.js';

await initBackend('wasm');
const mnist = loadMnistPackage(0);
const SHIPPED_POLICY = join(REPO_ROOT, 'policies/mnist-cnn-w3a4-cr12.2.json');
const batch = tf.tensor4d(subset(mnist.test, 32).images, [32, 28, 28, 1]);

/** mnist-cnn at the shipped W3A4 policy, LSQ step sizes initialised by one training batch. */
function lsqModelAtShippedPolicy(): { model: QuantModel; policy: BitsPolicy } {
  const file = readPolicy(SHIPPED_POLICY);
  const model = createModel('mnist-cnn', { bits: policyBits(file), seed: 4 });
  const policy = policyFromFile(model, file, SHIPPED_POLICY);
  tf.tidy(() => {
    model.forward(tf.tensor4d(subset(mnist.train, 64).images, [64, 28, 28, 1]), policy, true);
  });
  return { model, policy };
}

function logits(model: QuantModel, policy: BitsPolicy): Float32Array {
  return tf.tidy(() => model.forward(batch, policy, false).dataSync() as Float32Array);
}

test('pack → load: the loaded tfjs model gives the fake-quantized model\'s outputs exactly; repacking gives the same bytes', () => {
  const { model, policy } = lsqModelAtShippedPolicy();
  const meta = { note: 'round trip' };
  const bytes = packModel(model, policy, { kind: 'lsq' }, meta);
  const loaded = loadPackedModel(readPacked(bytes, 'a.mpqp'), 'a.mpqp');
  assert.deepEqual(loaded.policy, policy);
  assert.deepEqual(logits(loaded.model, loaded.policy), logits(model, policy));
  // codes, scales and float state come back bit for bit: packing the loaded model is the same file
  assert.deepEqual(packModel(loaded.model, loaded.policy, { kind: 'lsq' }, meta), bytes);
  disposeModel(model);
  disposeModel(loaded.model);
});

test('packed size for the shipped W3A4 policy: codes = FP32 weights / compression ratio, float32 state counted by hand, the compressed file smaller than its payload', () => {
  const { model, policy } = lsqModelAtShippedPolicy();
  const bytes = packModel(model, policy, { kind: 'lsq' });
  const size = packedSize(bytes, readPacked(bytes));
  const file = readPolicy(SHIPPED_POLICY);
  const params = [...file.layers, ...file.fixed].reduce((s, l) => s + l.params, 0);
  assert.equal(size.weightParams, params);
  assert.equal(size.fp32WeightBytes, 4 * params);
  assert.ok(Math.abs(size.compressionRatio - file.compressionRatio!) < 1e-9, `${size.compressionRatio} vs the search's ${file.compressionRatio}`);
  // every layer's params · bits is a multiple of 8 here: the codes take exactly FP32 / CR
  assert.equal(size.codeBytes, Math.round((4 * params) / file.compressionRatio!));
  // float32: 5 batch norms × 4 vectors × (16+32+64+64+128) channels, the fc bias, each layer's
  // input step s.<bits> and its s_init.<bits> flag
  assert.equal(size.floatBytes, 4 * (4 * 304 + 10 + 6 * 2));
  assert.equal(size.payloadBytes, size.codeBytes + size.floatBytes + size.indexBytes);
  assert.ok(size.indexBytes > 0 && size.indexBytes < 0.05 * size.targetBytes, `index ${size.indexBytes} bytes`);
  assert.equal(size.fileBytes, bytes.length);
  assert.ok(size.fileBytes < size.payloadBytes, `${size.fileBytes} bytes compressed, ${size.payloadBytes} uncompressed`);
  assert.equal(size.deviationPercent, 100 * (size.fileBytes / size.targetBytes - 1));
  assert.equal(size.withinTolerance, Math.abs(size.deviationPercent) <= 5);
  assert.equal(size.tolerancePercent, 5);
  assert.equal(size.deviationBytes, Math.round(size.fileBytes - size.targetBytes));
  const side = size.deviationBytes > 0 ? 'over' : 'under';
  assert.match(formatPackedSize('w.mpqp', size), new RegExp(`^w\\.mpqp: ${size.fileBytes} bytes, zlib of a ${size.payloadBytes}-byte payload = codes ${size.codeBytes} \\+ float32 ${size.floatBytes} \\+ index ${size.indexBytes}; `
    + `FP32 weights ${size.fp32WeightBytes} bytes / compression ratio ${size.compressionRatio.toFixed(2)} = ${Math.round(size.targetBytes)} bytes; `
    + `file ${Math.abs(size.deviationBytes).toLocaleString('en-US')} bytes \\(${Math.abs(size.deviationPercent).toFixed(1)}%\\) ${side} it, `
    + `${size.withinTolerance ? 'within 5%' : `more than 5% ${side}`}$`));
  // the same report, out of tolerance on either side: the side and the distance, not only "not within"
  const at = (fileBytes: number) => packedSize(new Uint8Array(fileBytes), readPacked(bytes));
  assert.match(formatPackedSize('w.mpqp', at(2 * Math.round(size.targetBytes))), /file [\d,]+ bytes \(100\.0%\) over it, more than 5% over$/);
  const small = at(Math.round(0.5 * size.targetBytes));
  assert.equal(small.withinTolerance, false);
  assert.equal(small.deviationBytes, Math.round(small.fileBytes - size.targetBytes));
  assert.ok(small.deviationBytes < 0);
  assert.match(formatPackedSize('w.mpqp', small), new RegExp(`file ${Math.abs(small.deviationBytes).toLocaleString('en-US')} bytes \\(50\\.0%\\) under it, more than 5% under$`));
  disposeModel(model);
});

test('a simulated (min-max, per-channel, merged, KL-calibrated) model packs and loads back to the same outputs', (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  saveUntrainedCheckpoint(dir, 'mnist-cnn', 9);
  const checkpoint = readCheckpoint(dir);
  const ctx: SimulateContext = {
    source: 'mnist-cnn', from: dir, checkpoint, calibSet: samplePerClass(mnist.train, 2, 10, 1), groupSize: 8, calibEpoch: 1, batchSize: 10,
  };
  const setting = { quantType: 'channel', weightBits: 4, inputBits: 6, inputSigned: false, calib: 'kl', mergeBn: true, excludeFirstConv: true } as const;
  const { model, policy } = simulatedModel(ctx, setting);
  const bytes = packModel(model, policy, { kind: 'minmax', inputMode: 'calibrated', inputSigned: false });
  const packed = readPacked(bytes);
  // per-channel scales; the excluded first conv stays float32
  assert.equal(packed.layers.find((l) => l.name === 'conv2')!.scales.length, 32);
  assert.ok(packed.floats.some((f) => f.name === 'conv1.weight'));
  assert.ok(!packed.layers.some((l) => l.name === 'conv1'));
  const loaded = loadPackedModel(packed, 'sim.mpqp');
  assert.deepEqual(logits(loaded.model, loaded.policy), logits(model, policy));
  disposeModel(model);
  disposeModel(loaded.model);
});

test('loadPackedModel: a packed file that does not fit its model is a one-line error', () => {
  const { model, policy } = lsqModelAtShippedPolicy();
  const packed = readPacked(packModel(model, policy, { kind: 'lsq' }));
  const conv3Bits = packed.layers.find((l) => l.name === 'conv3')!.bits;
  const fails: Array<[string, () => void, RegExp]> = [
    ['format', () => loadPackedModel({ ...packed, meta: { ...packed.meta, format: 'x' } }, 'p'), /^p: meta\.format is "x", not a packed model/],
    ['inputs', () => loadPackedModel({ ...packed, meta: { ...packed.meta, inputs: { kind: 'dorefa' } } }, 'p'), /meta\.inputs names no input quantizer/],
    ['float', () => loadPackedModel({ ...packed, floats: [{ name: 'conv9.bias', shape: [1], values: new Float32Array(1) }] }, 'p'), /float tensor 'conv9\.bias' is not a variable of mnist-cnn/],
    ['codes', () => loadPackedModel({ ...packed, layers: packed.layers.filter((l) => l.name !== 'conv3') }, 'p'), /layer 'conv3' is quantized by the policy but has no codes/],
    ['bits', () => loadPackedModel({ ...packed, meta: { ...packed.meta, policy: { ...(packed.meta.policy as object), conv3: [conv3Bits + 1, 4] } } }, 'p'),
      new RegExp(`layer 'conv3' holds ${conv3Bits}-bit codes, the policy says ${conv3Bits + 1}`)],
  ];
  for (const [name, fn, message] of fails) assert.throws(fn, (err: Error) => err.name === 'UserError' && message.test(err.message) && !err.message.includes('\n'), name);
  disposeModel(model);
});

test('mpq pack and mpq eval --packed: the packed model scores what the checkpoint scores; its size report adds up; ncnn table and TensorRT cache', async (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // checkpoints made in process: an FP one, and one fine-tuned at the policy (tiny: 200 digits, 1 epoch)
  const fp = join(dir, 'fp');
  saveUntrainedCheckpoint(fp, 'mnist-cnn', 3);
  const ft = join(dir, 'ft');
  await finetuneAtPolicy({ model: 'mnist-cnn', from: fp, policyPath: SHIPPED_POLICY, epochs: 1, seed: 1, limit: 200, batchSize: 50, backend: 'wasm', checkpoint: ft, progress: false, log: () => {} });
  const policyFile = readPolicy(SHIPPED_POLICY);
  const model = createModel('mnist-cnn', { bits: policyBits(policyFile) });
  const policy = policyFromFile(model, policyFile, SHIPPED_POLICY);
  loadWeights(model, ft);
  const expected = evaluate(model, subset(mnist.test, 64), policy);
  disposeModel(model);

  const out = join(dir, 'm.mpqp');
  const ncnn = join(dir, 'm.table');
  const trt = join(dir, 'm.cache');
  const pack = runCli(['pack', '--model', 'mnist-cnn', '--from', ft, '--policy', SHIPPED_POLICY, '--out', out,
    '--ncnn-table', ncnn, '--trt-cache', trt, '--num-sample', '2', '--json']);
  assert.equal(pack.status, 0, pack.stderr);
  const report = JSON.parse(pack.stdout);
  assert.equal(report.file_bytes, readFileSync(out).length);
  assert.deepEqual(report.written, [out, ncnn, trt]);
  // the compressed file against its uncompressed payload, and the payload's parts
  assert.equal(report.payload_bytes, report.code_bytes + report.float_bytes + report.index_bytes);
  assert.equal(report.payload_bytes, new DataView(readFileSync(out).buffer).getUint32(8, true));
  assert.ok(report.file_bytes < report.payload_bytes, `${report.file_bytes} vs ${report.payload_bytes}`);
  assert.ok(Math.abs(report.target_bytes - report.fp32_weight_bytes / report.compression_ratio) < 1e-6);
  assert.ok(Math.abs(report.deviation_percent - 100 * (report.file_bytes / report.target_bytes - 1)) < 1e-9);
  assert.equal(report.within_tolerance, Math.abs(report.deviation_percent) <= report.tolerance_percent);
  // what the tables' thresholds clip, per layer input: KL (the default) keeps within the limit
  assert.equal(report.calib, 'kl');
  assert.deepEqual(Object.keys(report.clipped), ['conv1', 'conv2', 'conv3', 'conv4', 'conv5', 'fc']);
  for (const share of Object.values(report.clipped) as number[]) assert.ok(share >= 0 && share <= CLIP_LIMIT, `${share}`);
  assert.equal(report.warning, undefined);

  const packed = runCli(['eval', '--packed', out, '--limit', '64', '--json']);
  assert.equal(packed.status, 0, packed.stderr);
  assert.deepEqual(JSON.parse(packed.stdout).top1, expected.top1, 'the packed model scores what the fake-quantized model scores');
  assert.deepEqual(JSON.parse(packed.stdout).loss, expected.loss);
  assert.equal(JSON.parse(packed.stdout).count, 64);

  // ncnn: a weight line per layer (one scale per output channel), then an input line per layer
  const table = readFileSync(ncnn, 'utf8').split('\n');
  const names = ['conv1', 'conv2', 'conv3', 'conv4', 'conv5', 'fc'];
  const channels = [16, 32, 64, 64, 128, 10];
  assert.equal(table.length, 2 * names.length + 1);
  names.forEach((name, i) => {
    const fields = table[i]!.trimEnd().split(' ');
    assert.equal(fields[0], `${name}_param_0`);
    assert.equal(fields.length, 1 + channels[i]!);
    assert.match(table[names.length + i]!, new RegExp(`^${name} \\d+\\.\\d{6} $`));
  });
  const cache = readFileSync(trt, 'utf8').split('\n');
  assert.equal(cache[0], 'TRT-8601-EntropyCalibration2');
  names.forEach((name, i) => assert.match(cache[i + 1]!, new RegExp(`^${name}: [0-9a-f]{8}$`)));
  // the same threshold in both: ncnn's 127/T and TensorRT's T/127
  const ncnnScale = Number(table[names.length + 1]!.split(' ')[1]);
  const hex = cache[2]!.split(': ')[1]!;
  const trtScale = new DataView(Uint32Array.of(parseInt(hex, 16)).buffer).getFloat32(0, true);
  assert.ok(Math.abs(ncnnScale * trtScale - 1) < 1e-5, `${ncnnScale} · ${trtScale}`);

  const cut = join(dir, 'cut.mpqp');
  writeFileSync(cut, readFileSync(out).subarray(0, 100));
  const fails: Array<[string[], RegExp]> = [
    [['eval', '--packed', cut], /cut\.mpqp: corrupt compressed payload \(unexpected end of file\)/],
    [['pack', '--model', 'mnist-cnn', '--from', fp, '--policy', SHIPPED_POLICY, '--out', join(dir, 'x.mpqp')], /no learned weight step size for conv1 at 8 bits/],
    [['eval', '--packed', join(dir, 'garbage')], /garbage: no such packed model file/],
    [['eval', '--packed', ncnn], /m\.table: not an mpq packed model/],
    [['eval', '--packed', out, '--model', 'mnist-cnn'], /--model: not with --packed/],
  ];
  for (const [args, message] of fails) {
    const r = runCli(args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    const errors = r.stderr.trim().split('\n');
    assert.equal(errors.length, 1, r.stderr);
    assert.match(errors[0]!, message);
  }
});

test('per-channel weight steps: finetune restarts a per-tensor checkpoint\'s steps from data; eval and pack follow the checkpoint; resuming per-tensor is refused', async (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const fp = join(dir, 'fp');
  saveUntrainedCheckpoint(fp, 'mnist-cnn', 3);
  const run = { model: 'mnist-cnn', policyPath: SHIPPED_POLICY, epochs: 1, seed: 1, limit: 100, batchSize: 50, backend: 'wasm' as const, progress: false, log: () => {} };
  const perTensor = join(dir, 'pt');
  await finetuneAtPolicy({ ...run, from: fp, checkpoint: perTensor });
  const perChannel = join(dir, 'pc');
  const result = await finetuneAtPolicy({ ...run, from: perTensor, checkpoint: perChannel, perChannelWeights: true });
  assert.equal(result.quantization.weight_steps, 'per-channel');

  const saved = readCheckpoint(perChannel);
  const shapeOf = (name: string) => saved.tensors.get(name)?.shape;
  const policyFile = readPolicy(SHIPPED_POLICY);
  const conv3 = policyFile.layers.find((l) => l.name === 'conv3')!;
  assert.deepEqual(shapeOf(`conv3.quan_w_fn.s.${conv3.weightBits}`), [64], 'a step per output channel of conv3');
  assert.deepEqual(shapeOf(`conv3.quan_a_fn.s.${conv3.actBits}`), [], 'activation steps stay per tensor');
  const steps = saved.tensors.get(`conv3.quan_w_fn.s.${conv3.weightBits}`)!.dataSync();
  assert.ok(new Set(steps).size > 1, 'the channels learned steps of their own');
  assert.equal(saved.manifest.meta.weight_steps, 'per-channel');
  for (const tensor of saved.tensors.values()) tensor.dispose();

  const evaluated = runCli(['eval', '--model', 'mnist-cnn', '--from', perChannel, '--policy', SHIPPED_POLICY, '--limit', '100', '--json']);
  assert.equal(evaluated.status, 0, evaluated.stderr);
  assert.equal(JSON.parse(evaluated.stdout).top1, result.test.top1, 'eval rebuilds the per-channel model and reproduces the finetune');
  const named = runCli(['eval', '--model', 'mnist-cnn', '--from', perChannel, '--policy', SHIPPED_POLICY, '--limit', '100', '--quantizer', 'lsq', '--json']);
  assert.equal(named.status, 0, named.stderr);
  assert.equal(JSON.parse(named.stdout).top1, result.test.top1, 'with --quantizer lsq named, too');
  const out = join(dir, 'pc.mpqp');
  const pack = runCli(['pack', '--model', 'mnist-cnn', '--from', perChannel, '--policy', SHIPPED_POLICY, '--out', out, '--json']);
  assert.equal(pack.status, 0, pack.stderr);
  const packed = runCli(['eval', '--packed', out, '--limit', '100', '--json']);
  assert.equal(packed.status, 0, packed.stderr);
  assert.equal(JSON.parse(packed.stdout).top1, result.test.top1, 'the packed per-channel codes score what the checkpoint scores');
  assert.equal(readPacked(readFileSync(out), out).layers.find((l) => l.name === 'conv3')!.scales.length, 64);

  const resumed = runCli(['finetune', '--model', 'mnist-cnn', '--from', fp, '--policy', SHIPPED_POLICY, '--epochs', '2', '--limit', '100',
    '--checkpoint', perChannel, '--resume', '--no-progress', '--backend', 'wasm']);
  assert.equal(resumed.status, 2, resumed.stderr);
  // refused before the shapes are compared: the checkpoint records per-channel steps, this run has none
  assert.match(resumed.stderr, /^mpq: --resume: .* was made with .*--per-channel-weights "per-channel".*; this run has .*--per-channel-weights \(none\)/);
  assert.doesNotMatch(resumed.stderr, /\n\s+at /);
});

test('every quantizer with an integer form packs: pack → load gives the fake-quantized outputs exactly, and repacks to the same bytes', () => {
  const train = tf.tensor4d(subset(mnist.train, 64).images, [64, 28, 28, 1]);
  const cases: Array<[string, QuantizeRequest]> = [
    ['lsq (policy)', { quantizer: { name: 'lsq' }, policyPath: SHIPPED_POLICY }],
    ['lsq per-channel', { quantizer: { name: 'lsq' }, weightBits: 3, perChannelWeights: true }],
    ['nuq', { quantizer: { name: 'nuq' }, weightBits: 3 }],
    ['nuq split buckets, activations', { quantizer: { name: 'nuq', nuq: { buckets: { type: 'split', size: 100 } } }, weightBits: 2, actBits: 6 }],
    ['nuq channel buckets', { quantizer: { name: 'nuq', nuq: { buckets: { type: 'channel' } } }, weightBits: 2 }],
    ['qat (batch norm folded)', { quantizer: { name: 'qat' }, policyPath: SHIPPED_POLICY }],
    ['dorefa', { quantizer: { name: 'dorefa' }, weightBits: 3 }],
    ['naive', { quantizer: { name: 'naive' }, weightBits: 8 }],
  ];
  for (const [name, request] of cases) {
    const plan = planQuantization(request)!;
    const model = createModel('mnist-cnn', { bits: plan.bits, quantizers: plan.quantizers, perChannelWeights: plan.perChannelWeights, seed: 6 });
    const policy = plan.attach(model);
    // one training forward: steps, codebooks, ranges and running scales start from data
    tf.tidy(() => {
      model.forward(train, policy, true);
    });
    const inputs = inputQuantizersOf(request.quantizer!.name);
    const bytes = packModel(model, policy, inputs);
    const packed = readPacked(bytes, 'q.mpqp');
    assert.equal(packed.layers.length, Object.values(policy).filter((b) => b.weightBits < 32).length, name);
    const loaded = loadPackedModel(packed, 'q.mpqp');
    assert.deepEqual(loaded.policy, policy, name);
    assert.deepEqual(logits(loaded.model, loaded.policy), logits(model, policy), name);
    assert.deepEqual(packModel(loaded.model, loaded.policy, inputs), bytes, `${name}: repacked`);
    disposeModel(model);
    disposeModel(loaded.model);
  }
  train.dispose();
});

test('mpq pack follows the checkpoint\'s quantizer: NUQ (split buckets, from its meta) and QAT packs score through eval --packed what the checkpoints score', (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const fp = join(dir, 'fp');
  saveUntrainedCheckpoint(fp, 'mnist-cnn', 3);
  const tiny = ['--model', 'mnist-cnn', '--limit', '64', '--batch-size', '32', '--seed', '2', '--no-progress', '--backend', 'wasm'];
  const runs: Array<[string, string[], string[]]> = [
    ['nuq', ['--quantizer', 'nuq', '--nuq-buckets', 'split', '--nuq-bucket-size', '500'], ['--weight-bits', '3']],
    ['qat', ['--quantizer', 'qat'], ['--policy', SHIPPED_POLICY]],
  ];
  for (const [name, quantizer, bits] of runs) {
    const ft = join(dir, name);
    const trained = runCli(['finetune', ...tiny, '--epochs', '1', '--from', fp, ...quantizer, ...bits, '--checkpoint', ft]);
    assert.equal(trained.status, 0, trained.stderr);
    const fromCheckpoint = runCli(['eval', '--model', 'mnist-cnn', '--from', ft, ...quantizer, ...bits, '--limit', '64', '--backend', 'wasm', '--json']);
    assert.equal(fromCheckpoint.status, 0, fromCheckpoint.stderr);
    const out = join(dir, `${name}.mpqp`);
    // no --quantizer: pack reads it (and NUQ's buckets) from the checkpoint
    const pack = runCli(['pack', '--model', 'mnist-cnn', '--from', ft, ...bits, '--out', out, '--backend', 'wasm', '--json']);
    assert.equal(pack.status, 0, pack.stderr);
    assert.equal(JSON.parse(pack.stdout).quantizer, name);
    const packed = readPacked(readFileSync(out), out);
    assert.ok(packed.layers.every((l) => l.codebook && l.scales.length === 0), `${name}: codebook forms, no scales`);
    const evaluated = runCli(['eval', '--packed', out, '--limit', '64', '--backend', 'wasm', '--json']);
    assert.equal(evaluated.status, 0, evaluated.stderr);
    const [expected, got] = [JSON.parse(fromCheckpoint.stdout), JSON.parse(evaluated.stdout)];
    assert.equal(got.top1, expected.top1, `${name}: top-1`);
    assert.equal(got.loss, expected.loss, `${name}: loss`);
  }
});
