import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { forwardWeights, qdqLayers } from '../src/export/model-export.js';
import { graphToLayersModel } from '../src/export/tfjs-model.js';
import { graphToOnnx, type ExportOpset } from '../src/export/onnx-model.js';
import { readPolicy, writePolicy } from '../src/export/policy-file.js';
import { graphLayerTable } from '../src/model/graph-table.js';
import { GraphBuilder, graphLayers, type Graph, type GraphModel, type NodeSpec, type Pads2d } from '../src/model/graph.js';
import { readOnnxModel } from '../src/model/onnx-import.js';
import { readTfjsModel } from '../src/model/tfjs-import.js';
import { ONNX_DATA_TYPE as T, readOnnxFile, writeOnnxFile, type OnnxModel } from '../src/model/onnx/proto.js';
import { zooGraph } from '../src/model/zoo.js';
import { initBackend } from '../src/train/backend/index.js';
import { checkpointModel, readCheckpointManifest, savedPerChannelWeightSteps } from '../src/train/checkpoint.js';
import { loadMnistPackage } from '../src/train/data.js';
import { createModel, disposeModel, type BitsPolicy, type QuantModel } from '../src/train/models.js';
import { policyBits, policyFromFile } from '../src/train/policies.js';
import { loadWeights } from '../src/train/run.js';
import { saveUntrainedCheckpoint } from './checkpoints.js';
import { ONNX_FIXTURES_DIR, ORT_SKIP, runOnnx } from './onnxruntime.js';
import { compareQdq, type QdqComparison } from './qdq-check.js';
import { REPO_ROOT, runCli, tempDir } from './support.js';
import { Prng } from '../src/util/prng.js';

await initBackend('wasm');
const mnist = loadMnistPackage(0);
const dir = tempDir('mpq-export-model-');
test.after(() => rmSync(dir, { recursive: true, force: true }));

const SHIPPED_POLICY = join(REPO_ROOT, 'policies/mnist-cnn-w3a4-cr12.2.json');
const fixture = (name: string) => join(ONNX_FIXTURES_DIR, `${name}.onnx`);
const SMALL = ['--epochs', '1', '--limit', '256', '--batch-size', '64', '--no-progress', '--seed', '1'];

/** A fine-tune at `policy` (CLI), from `from` or the model file's own weights; returns the checkpoint. */
function finetune(name: string, args: string[]): string {
  const out = join(dir, name);
  const r = runCli(['finetune', ...args, ...SMALL, '--checkpoint', out]);
  assert.equal(r.status, 0, r.stderr);
  return out;
}

/** `mpq export-model` (CLI); returns its JSON summary. */
function exportModel(args: string[]): { file_bytes: number; compression_ratio: number; fp32_weight_bytes: number; storage: string[] } {
  const r = runCli(['export-model', ...args, '--json']);
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

/** A policy file for `graph`: each searchable layer's [weight, act] bits from `bits`, in turn. */
function policyFor(graph: Graph, path: string, bits: Array<[number, number]>): string {
  const table = graphLayerTable(graph, graph.name);
  const layers = table.layers.map((l, i) => ({ name: l.name, weightBits: bits[i % bits.length][0], actBits: bits[i % bits.length][1], macs: l.macs, params: l.params }));
  writePolicy(path, {
    format: 'mpq-policy', version: 1, model: graph.name, bits: [...new Set(bits.flat())].sort((a, b) => b - a), layers,
    fixed: table.fixed.map((l) => ({ name: l.name, weightBits: 8, actBits: 8, macs: l.macs, params: l.params })),
  });
  return path;
}

/** The fine-tuned model at its policy, as `mpq eval` builds it. */
function modelAtPolicy(checkpoint: string, policyPath: string): { model: QuantModel; policy: BitsPolicy } {
  const file = readPolicy(policyPath);
  const model = createModel(checkpointModel(checkpoint), {
    bits: policyBits(file), perChannelWeights: savedPerChannelWeightSteps(readCheckpointManifest(checkpoint)), layers: { fixed: file.fixed.map((l) => l.name) },
  });
  loadWeights(model, checkpoint);
  return { model, policy: policyFromFile(model, file, policyPath) };
}

/** onnxruntime against mpq on the whole test split (2,000 digits): see test/qdq-check.ts. */
function assertSameModel(t: { diagnostic(m: string): void }, label: string, results: QdqComparison[], opsets: ExportOpset[]): void {
  results.forEach((r, i) => {
    const what = `${label} opset ${opsets[i]}`;
    t.diagnostic(`${what}: max abs logit diff ${r.maxAbsDiff.toExponential(2)} on ${r.images - r.tieImages.length} images; `
      + `${r.tieImages.length} images cross a rounding tie (logit diff ≤ ${r.tieMaxAbsDiff.toExponential(2)}); top-1 equal on ${r.sameTop1}/${r.images}`);
    assert.deepEqual(r.unexplained, [], what);
    assert.ok(r.maxAbsDiff <= 1e-4, `${what}: max abs diff ${r.maxAbsDiff}`);
    assert.ok(r.tieImages.length <= r.images / 100, `${what}: ${r.tieImages.length} digits at rounding ties`);
    assert.equal(r.sameTop1, r.images, `${what}: top-1 differs`);
  });
}

const initializer = (m: OnnxModel, name: string) => m.graph.initializers.find((t) => t.name === name)!;
const rows = (g: Graph) => graphLayers(g).map((l) => [l.name, l.kind, l.params, l.macs]);

test('full precision: onnxruntime gives mpq\'s logits for mnist-cnn, mobilenet-mini and the imported fixtures at opsets 13 and 21, and each export imports back to its layer table', { skip: ORT_SKIP }, async () => {
  const n = 64;
  const images = mnist.test.images.subarray(0, n * 784);
  const sources = [
    ...['mnist-cnn', 'mobilenet-mini'].map((name) => createModel(name, { seed: 5 })),
    ...['residual', 'separable', 'mlp'].map((name) => createModel(readOnnxModel(fixture(name)))),
  ];
  for (const model of sources) {
    const input = model.graph.nodes[0];
    const softmax = model.graph.nodes.at(-1)!.op === 'activation';
    const ours = tf.tidy(() => {
      const logits = model.forward(tf.tensor4d(images, [n, 28, 28, 1]), {}, false);
      return (softmax ? tf.softmax(logits) : logits).dataSync();
    });
    for (const opset of [13, 21] as const) {
      const path = join(dir, `${model.name}-fp${opset}.onnx`);
      writeOnnxFile(path, graphToOnnx(model.graph, forwardWeights(model, {}), { opset }));
      const out = await runOnnx(path, { [input.name]: { data: Float32Array.from(images), dims: input.shape.length === 3 ? [n, 1, 28, 28] : [n, 784] } });
      const [theirs] = Object.values(out);
      const diff = Math.max(...Array.from(ours, (v, i) => Math.abs(v - theirs.data[i])));
      assert.ok(diff <= 1e-4, `${model.name} opset ${opset}: max abs diff ${diff}`);
      assert.deepEqual(rows(readOnnxModel(path).graph), rows(model.graph), `${model.name} opset ${opset}: layer table after re-import`);
    }
    // hard-swish is x · HardSigmoid(x) below opset 14: the importer reads it back as one activation
    if (model.name === 'separable') {
      const ops = readOnnxFile(join(dir, 'separable-fp13.onnx')).graph.nodes.map((nd) => nd.opType);
      assert.ok(ops.includes('HardSigmoid') && !ops.includes('HardSwish'));
      assert.ok(readOnnxFile(join(dir, 'separable-fp21.onnx')).graph.nodes.some((nd) => nd.opType === 'HardSwish'));
      const hardSwishes = (g: Graph) => g.nodes.filter((nd) => nd.op === 'activation' && nd.fn === 'hardswish').length;
      assert.equal(hardSwishes(readOnnxModel(join(dir, 'separable-fp13.onnx')).graph), hardSwishes(model.graph));
    }
    disposeModel(model);
  }
});

// the fine-tuned checkpoints the QDQ tests export (tiny budgets: the proof is equality, not accuracy)
const fp = join(dir, 'mnist-fp');
saveUntrainedCheckpoint(fp, 'mnist-cnn', 3);

/** mnist-cnn fine-tuned at the shipped policy (once, for every test that needs it). */
const shippedFinetune = (() => {
  let ft: string | undefined;
  return () => (ft ??= finetune('mnist-ft', ['--from', fp, '--policy', SHIPPED_POLICY]));
})();

test('the shipped W3A4 policy of mnist-cnn as QDQ: onnxruntime gives the fake-quantized model\'s logits on the test split at opsets 13 and 21; INT4 weights at 21; re-imported with the same layers and bits', { skip: ORT_SKIP }, async (t) => {
  const ft = shippedFinetune();
  const paths = { 13: join(dir, 'mnist-13.onnx'), 21: join(dir, 'mnist-21.onnx') };
  const sizes = { 13: exportModel(['--from', ft, '--policy', SHIPPED_POLICY, '--out', paths[13]]), 21: exportModel(['--from', ft, '--policy', SHIPPED_POLICY, '--out', paths[21], '--opset', '21']) };
  t.diagnostic(`mnist-cnn W3A4: opset 13 ${sizes[13].file_bytes} bytes, opset 21 ${sizes[21].file_bytes} bytes; FP32 weights ${sizes[13].fp32_weight_bytes} bytes / CR ${sizes[13].compression_ratio.toFixed(2)}`);
  assert.ok(sizes[21].file_bytes < sizes[13].file_bytes * 0.6, 'INT4 weights take half the bytes of INT8');
  assert.equal(sizes[13].compression_ratio, readPolicy(SHIPPED_POLICY).compressionRatio);
  // an earlier export is not replaced without --overwrite
  const again = runCli(['export-model', '--from', ft, '--policy', SHIPPED_POLICY, '--out', paths[21], '--opset', '21']);
  assert.equal(again.status, 2);
  assert.match(again.stderr, /^mpq: --out .*: already exists \(a previous run's output\); give --overwrite to replace it\n$/);
  const line = runCli(['export-model', '--from', ft, '--policy', SHIPPED_POLICY, '--out', paths[21], '--opset', '21', '--overwrite']);
  assert.equal(line.stdout, `${paths[21]}: ${sizes[21].file_bytes} bytes, ${(sizes[21].file_bytes / 540224).toFixed(2)}x FP32 weights (540224 bytes); `
    + `FP32 weights / compression ratio 15.01 = 35984 bytes, the file ${(sizes[21].file_bytes / 35984).toFixed(2)}x that\n`);
  // without --policy, the fine-tune is written at the policy it kept: the same file; --full-precision writes it in FP
  const kept = runCli(['export-model', '--from', ft, '--out', join(dir, 'mnist-kept.onnx')]);
  assert.equal(kept.status, 0, kept.stderr);
  assert.match(kept.stderr, /is a fine-tuned checkpoint: at /);
  assert.deepEqual(readFileSync(join(dir, 'mnist-kept.onnx')), readFileSync(paths[13]));
  const fp32 = exportModel(['--from', ft, '--full-precision', '--out', join(dir, 'mnist-fp.onnx')]);
  assert.ok(fp32.file_bytes > 500_000 && !readOnnxFile(join(dir, 'mnist-fp.onnx')).graph.nodes.some((nd) => nd.opType === 'QuantizeLinear'), 'full precision');
  // the integer weights: 2- and 4-bit layers INT4 at opset 21, INT8 at 13, the codes in the b-bit range either way
  for (const opset of [13, 21] as const) {
    const m = readOnnxFile(paths[opset]);
    assert.equal(m.opsetImports[0].version, opset);
    for (const [layer, bits] of [['conv1', 8], ['conv2', 4], ['conv3', 2], ['fc', 8]] as const) {
      const w = initializer(m, `${layer}.weight_quantized`);
      assert.equal(w.dataType, opset === 21 && bits <= 4 ? T.INT4 : T.INT8, `${layer} at opset ${opset}`);
      assert.ok(Array.from(w.data as Int8Array).every((q) => q >= -(2 ** (bits - 1)) && q < 2 ** (bits - 1)), `${layer} codes within ${bits} bits`);
      assert.equal(initializer(m, `${layer}.weight_scale`).dims.length, 0, 'one scale per tensor');
    }
    // conv2's 5-bit unsigned input: a Clip to [0, 31 steps] before QuantizeLinear; conv1's 8-bit signed input needs none
    const clip = m.graph.nodes.find((nd) => nd.name === 'conv2.input/Clip')!;
    const step = (initializer(m, 'conv2.input_scale').data as Float32Array)[0];
    assert.equal((initializer(m, clip.inputs[2]).data as Float32Array)[0], Math.fround(31 * step));
    assert.ok(!m.graph.nodes.some((nd) => nd.name === 'conv1.input/Clip'));
    assert.equal(initializer(m, 'conv1.input_zero_point').dataType, T.INT8);
    // mpq's importer reads it back: the zoo's layer table, the policy's bits
    const back = readOnnxModel(paths[opset]);
    assert.deepEqual(rows(back.graph), rows(zooGraph('mnist-cnn')));
    const policy = readPolicy(SHIPPED_POLICY);
    assert.deepEqual(back.qdqBits, Object.fromEntries([...policy.fixed, ...policy.layers].map((l) => [l.name, { weightBits: l.weightBits, actBits: l.actBits }])));
  }
  const { model, policy } = modelAtPolicy(ft, SHIPPED_POLICY);
  assertSameModel(t, 'mnist-cnn W3A4', await compareQdq([paths[13], paths[21]], model, policy, mnist.test.images, mnist.test.count), [13, 21]);
  disposeModel(model);
});

test('a per-channel fine-tune: one scale per output channel (axis 0) and onnxruntime gives its logits', { skip: ORT_SKIP }, async (t) => {
  const ft = finetune('mnist-ft-channels', ['--from', fp, '--policy', SHIPPED_POLICY, '--per-channel-weights']);
  const path = join(dir, 'mnist-channels-21.onnx');
  const summary = exportModel(['--from', ft, '--policy', SHIPPED_POLICY, '--out', path, '--opset', '21']);
  assert.ok(summary.storage.includes('conv3 W2 in INT4 per channel A6 in UINT8'), summary.storage.join('; '));
  const m = readOnnxFile(path);
  assert.deepEqual(initializer(m, 'conv3.weight_scale').dims, [64]);
  assert.deepEqual(m.graph.nodes.find((nd) => nd.name === 'conv3.weight/DequantizeLinear')!.attributes.axis, { type: 'int', value: 0 });
  const { model, policy } = modelAtPolicy(ft, SHIPPED_POLICY);
  assertSameModel(t, 'mnist-cnn per channel', await compareQdq([path], model, policy, mnist.test.images, mnist.test.count), [21]);
  disposeModel(model);
});

test('mobilenet-mini (depthwise) at mixed bits: 4-bit activations in UINT4 at opset 21, narrower ones clipped in UINT8', { skip: ORT_SKIP }, async (t) => {
  const mobileFp = join(dir, 'mobile-fp');
  saveUntrainedCheckpoint(mobileFp, 'mobilenet-mini', 3);
  const policyPath = policyFor(zooGraph('mobilenet-mini'), join(dir, 'mobile-policy.json'), [[4, 4], [3, 3], [2, 6], [6, 2], [5, 5]]);
  const ft = finetune('mobile-ft', ['--from', mobileFp, '--policy', policyPath]);
  const paths = [13, 21].map((opset) => {
    const path = join(dir, `mobile-${opset}.onnx`);
    exportModel(['--from', ft, '--policy', policyPath, '--out', path, '--opset', String(opset)]);
    return path;
  });
  const m = readOnnxFile(paths[1]);
  // the first searchable layer (depthwise, W4A4): a 4-bit grid is UINT4's whole range, so no Clip
  const dw = 'features.stage1.unit1.dw_conv.conv';
  assert.equal(initializer(m, `${dw}.input_zero_point`).dataType, T.UINT4);
  assert.ok(!m.graph.nodes.some((nd) => nd.name === `${dw}.input/Clip`));
  assert.deepEqual(m.graph.nodes.find((nd) => nd.name === dw)!.attributes.group, { type: 'int', value: 16 });
  // the next (pointwise, W3A3): a Clip to 3 bits, and so 8-bit storage (onnxruntime fails on a Clip before a 4-bit QuantizeLinear)
  const pw = 'features.stage1.unit1.pw_conv.conv';
  assert.equal(initializer(m, `${pw}.input_zero_point`).dataType, T.UINT8);
  assert.ok(m.graph.nodes.some((nd) => nd.name === `${pw}.input/Clip`));
  assert.equal(initializer(m, `${pw}.weight_quantized`).dataType, T.INT4);
  const back = readOnnxModel(paths[1]);
  assert.deepEqual(rows(back.graph), rows(zooGraph('mobilenet-mini')));
  const file = readPolicy(policyPath);
  for (const l of file.layers) assert.deepEqual(back.qdqBits![l.name], { weightBits: l.weightBits, actBits: l.actBits }, l.name);
  const { model, policy } = modelAtPolicy(ft, policyPath);
  assertSameModel(t, 'mobilenet-mini', await compareQdq(paths, model, policy, mnist.test.images, mnist.test.count), [13, 21]);
  disposeModel(model);
});

test('a model imported from ONNX (the PyTorch residual fixture), fine-tuned and exported back as QDQ', { skip: ORT_SKIP }, async (t) => {
  const imported = readOnnxModel(fixture('residual'));
  const policyPath = policyFor(imported.graph, join(dir, 'residual-policy.json'), [[3, 4], [2, 3], [4, 4], [2, 5]]);
  const ft = finetune('residual-ft', ['--model', fixture('residual'), '--policy', policyPath]);
  const paths = [13, 21].map((opset) => {
    const path = join(dir, `residual-${opset}.onnx`);
    exportModel(['--from', ft, '--policy', policyPath, '--out', path, '--opset', String(opset)]);
    return path;
  });
  for (const path of paths) {
    const back = readOnnxModel(path);
    assert.deepEqual(rows(back.graph), rows(imported.graph));
    const file = readPolicy(policyPath);
    for (const l of [...file.layers, ...file.fixed]) assert.deepEqual(back.qdqBits![l.name], { weightBits: l.weightBits, actBits: l.actBits }, l.name);
  }
  const { model, policy } = modelAtPolicy(ft, policyPath);
  assertSameModel(t, 'residual', await compareQdq(paths, model, policy, mnist.test.images, mnist.test.count), [13, 21]);
  disposeModel(model);
});

test('bad input: a policy for another model, a checkpoint without the policy\'s step sizes, an unsupported opset: one line, exit 2, no file', () => {
  const out = join(dir, 'bad');
  // a QAT fine-tune's checkpoint says so in its meta (its ranges and folded batch norm are not LSQ steps)
  const qat = join(dir, 'qat-ft');
  cpSync(fp, qat, { recursive: true });
  const manifest = JSON.parse(readFileSync(join(qat, 'model.json'), 'utf8'));
  writeFileSync(join(qat, 'model.json'), JSON.stringify({ ...manifest, meta: { ...manifest.meta, quantizer: 'qat' } }));
  const mobilePolicy = policyFor(zooGraph('mobilenet-mini'), join(dir, 'bad-mobile-policy.json'), [[4, 4]]);
  const cases: Array<[string[], RegExp]> = [
    [['--from', fp, '--policy', mobilePolicy], /policy is for model 'mobilenet-mini', not 'mnist-cnn'/],
    [['--from', fp, '--policy', SHIPPED_POLICY], /no learned weight step size for conv1 at 8 bits \(finetune at this policy first\)/],
    [['--from', fp, '--policy', SHIPPED_POLICY, '--opset', '17'], /--opset: 17 is not supported \(mpq writes opsets 13 and 21\)/],
    [['--from', fp, '--format', 'tfjs', '--opset', '13'], /--opset: ONNX exports only/],
    [['--model', 'mnist-cnn'], /--from: mnist-cnn has no weights of its own/],
    [['--model', fixture('residual'), '--policy', SHIPPED_POLICY], /--policy: needs --from DIR/],
    [['--from', fp, '--format', 'tfjs', '--fake-quant'], /--fake-quant: needs --policy/],
    [['--from', qat, '--policy', SHIPPED_POLICY], /fine-tuned with --quantizer qat; export-model writes LSQ fine-tunes/],
    [['--from', join(dir, 'nowhere')], /--from .*nowhere: no model.json/],
    [['--model', fixture('separable'), '--format', 'tfjs'], /node 'stem\/stem.1\/HardSwish' \(hardswish\): hard-swish has no tfjs Keras activation/],
  ];
  for (const [args, pattern] of cases) {
    const r = runCli(['export-model', ...args, '--out', join(out, args.includes('tfjs') ? 'model' : 'model.onnx')]);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, pattern);
  }
  assert.equal(existsSync(out), false, 'nothing written');
  assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith('.tmp')), []);
});

/** tfjs's own loader on the files an export wrote. */
async function loadTfjs(modelDir: string): Promise<tf.LayersModel> {
  const json = JSON.parse(readFileSync(join(modelDir, 'model.json'), 'utf8'));
  assert.deepEqual(json.weightsManifest[0].paths, ['weights.bin']);
  const bin = readFileSync(join(modelDir, 'weights.bin'));
  return tf.loadLayersModel(tf.io.fromMemory({
    modelTopology: json.modelTopology, weightSpecs: json.weightsManifest[0].weights, weightData: bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength),
  }));
}

test('tfjs LayersModel: tfjs loads the files and its predict equals mpq\'s logits, in full precision and with the policy\'s fake-quantized weights', async () => {
  const n = 64;
  const x = tf.tensor4d(mnist.test.images.subarray(0, n * 784), [n, 28, 28, 1]);
  const maxDiff = (a: tf.Tensor, b: tf.Tensor) => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
  // full precision, from a checkpoint (mnist-cnn: 'same' and explicit pads) and from the imported fixtures' own weights
  for (const [name, args] of [['mnist-cnn', ['--from', fp]], ['residual', ['--model', fixture('residual')]], ['mlp', ['--model', fixture('mlp')]]] as const) {
    const out = join(dir, `tfjs-${name}`);
    exportModel([...args, '--out', out]);
    const loaded = await loadTfjs(out);
    const source = name === 'mnist-cnn' ? 'mnist-cnn' : readOnnxModel(fixture(name));
    const model = createModel(source, {});
    if (name === 'mnist-cnn') loadWeights(model, fp);
    const input = model.graph.nodes[0].shape.length === 1 ? tf.reshape(x, [n, 784]) : x;
    const diff = maxDiff(loaded.predict(input) as tf.Tensor, model.forward(x, {}, false));
    assert.ok(diff <= 1e-5, `${name}: max abs diff ${diff}`);
    // and mpq's own tfjs importer reads it back: the same layer table and logits
    const back = readTfjsModel(join(out, 'model.json'), { weights: true });
    assert.deepEqual(rows(back.graph), rows(model.graph), `${name}: layer table after re-import`);
    const reimported = createModel(back);
    assert.ok(maxDiff(reimported.forward(x, {}, false), model.forward(x, {}, false)) <= 1e-5, `${name}: logits after re-import`);
    disposeModel(reimported);
    loaded.dispose();
    disposeModel(model);
  }
  // the depthwise net with every layer's class checked
  const mobile = createModel('mobilenet-mini', { seed: 2 });
  const built = graphToLayersModel(mobile.graph, forwardWeights(mobile, {}));
  assert.equal(built.layers.filter((l) => l.getClassName() === 'DepthwiseConv2D').length, 5);
  assert.ok(maxDiff(built.predict(x) as tf.Tensor, mobile.forward(x, {}, false)) <= 1e-5);
  built.dispose();
  disposeModel(mobile);
  // --fake-quant: the W3A4 fine-tune's quantized weights, float activations = mpq's forward with weights quantized only
  const ft = shippedFinetune();
  const out = join(dir, 'tfjs-fake-quant', 'model.json');
  exportModel(['--from', ft, '--policy', SHIPPED_POLICY, '--fake-quant', '--out', out]);
  const loaded = await loadTfjs(join(dir, 'tfjs-fake-quant'));
  const { model, policy } = modelAtPolicy(ft, SHIPPED_POLICY);
  const weightsOnly = Object.fromEntries(Object.entries(policy).map(([name, b]) => [name, { ...b, actBits: 32 }]));
  const diff = maxDiff(loaded.predict(x) as tf.Tensor, model.forward(x, weightsOnly, false));
  assert.ok(diff <= 1e-5, `fake-quant: max abs diff ${diff}`);
  assert.ok(maxDiff(model.forward(x, weightsOnly, false), model.forward(x, {}, false)) > 1e-3, 'the weights are quantized');
  const r = runCli(['export-model', '--from', ft, '--policy', SHIPPED_POLICY, '--out', join(dir, 'tfjs-no-flag')]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /add --fake-quant/);
  loaded.dispose();
  disposeModel(model);
});

test('re-import of a QDQ export: weight bits from the file\'s metadata, checked against the codes; without it, the narrowest range that holds them', () => {
  const path = join(dir, 'mnist-reimport.onnx');
  exportModel(['--from', shippedFinetune(), '--policy', SHIPPED_POLICY, '--out', path, '--opset', '21']);
  const m = readOnnxFile(path);
  assert.deepEqual(m.metadataProps?.map((e) => e.key), ['mpq.weight_bits']);
  const rewrite = (name: string, edit: (model: OnnxModel) => void) => {
    const copy = readOnnxFile(path);
    edit(copy);
    const out = join(dir, name);
    writeOnnxFile(out, copy);
    return out;
  };
  // without metadata: the 2-bit layers' codes span [-2, 1], so 2 bits; activations are read from the graph as before
  const bare = readOnnxModel(rewrite('bare.onnx', (c) => { delete c.metadataProps; }));
  const codes = (layer: string) => Array.from(initializer(m, `${layer}.weight_quantized`).data as Int8Array);
  for (const [layer, bits] of Object.entries(bare.qdqBits!)) {
    const [lo, hi] = [Math.min(...codes(layer)), Math.max(...codes(layer))];
    assert.ok(lo >= -(2 ** (bits.weightBits - 1)) && hi < 2 ** (bits.weightBits - 1) && (lo < -(2 ** (bits.weightBits - 2)) || hi >= 2 ** (bits.weightBits - 2)), `${layer}: ${bits.weightBits} bits for [${lo}, ${hi}]`);
  }
  assert.equal(bare.qdqBits!.conv2.actBits, 5);
  // metadata that the codes contradict is one line naming the layer
  const wrong = rewrite('wrong.onnx', (c) => { c.metadataProps = [{ key: 'mpq.weight_bits', value: '{"conv2": 2}' }]; });
  assert.throws(() => readOnnxModel(wrong), (e: Error) => !e.message.includes('\n') && /node 'conv2' \(Conv\): metadata 'mpq.weight_bits' gives conv2 2 bits, its weight codes reach \[-?\d+, \d+\]/.test(e.message));
});

/** Batch-norm statistics that are not the identity, so that a mix-up of γ, β, μ, σ² shows. */
function batchNormWeights(channels: number, rng: Prng): Record<string, Float32Array> {
  const v = (f: () => number) => Float32Array.from({ length: channels }, f);
  return { gamma: v(() => 0.5 + rng.next()), beta: v(() => rng.normal() * 0.2), mean: v(() => rng.normal() * 0.2), variance: v(() => 0.5 + rng.next()) };
}

/** A k×k conv with a bias. */
const conv = (filters: number, k: number, pads: Pads2d, groups = 1, strides: [number, number] = [1, 1]): NodeSpec =>
  ({ op: 'conv', filters, kernel: [k, k], strides, dilations: [1, 1], pads, groups, bias: true });

/** Every op the ONNX writer has a form for, in one small graph (grouped conv, pools with pads, concat, pad, slice, reshape, dense on images and sequences, …). */
function everyOpGraph(): GraphModel {
  const rng = new Prng(11);
  const b = new GraphBuilder('every-op', 'test');
  b.input('input', [8, 8, 3]);
  b.add('c1', conv(4, 3, [1, 1, 1, 1]), ['input']);
  b.add('bn1', { op: 'batchnorm', epsilon: 1e-3 }, ['c1'], batchNormWeights(4, rng));
  b.add('a1', { op: 'activation', fn: 'leakyrelu', alpha: 0.1 }, ['bn1']);
  b.add('p1', { op: 'avgpool', kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], countIncludePad: false }, ['a1']);
  b.add('c2', conv(6, 1, [0, 0, 0, 0], 2), ['a1']);
  b.add('m2', { op: 'maxpool', kernel: [2, 2], strides: [2, 2], pads: [0, 0, 0, 0] }, ['c2']);
  b.add('m3', { op: 'maxpool', kernel: [3, 3], strides: [1, 1], pads: [1, 1, 1, 1] }, ['m2']);
  b.add('cat', { op: 'concat', axis: 2 }, ['p1', 'm3']);
  b.add('g', { op: 'activation', fn: 'gelu' }, ['cat']);
  b.add('pd', { op: 'pad', pads: [[1, 0], [0, 1], [0, 0]], value: 0.5 }, ['g']);
  b.add('sl', { op: 'slice', ranges: [[1, 5, 1], [0, 4, 1], [0, 10, 2]] }, ['pd']);
  b.add('dw', conv(10, 3, [1, 1, 1, 1], 5), ['sl']);
  b.add('sw', { op: 'activation', fn: 'swish' }, ['dw']);
  b.add('hs', { op: 'activation', fn: 'hardswish' }, ['sw']);
  b.add('px', { op: 'dense', units: 8, bias: true }, ['hs']);
  b.add('ap', { op: 'avgpool', kernel: [2, 2], strides: [2, 2], pads: [0, 0, 0, 0], countIncludePad: true }, ['px']);
  b.add('fl', { op: 'flatten', channelsFirst: false }, ['ap']);
  b.add('rs', { op: 'reshape', target: [4, 8] }, ['fl']);
  b.add('mm', { op: 'dense', units: 6, bias: true }, ['rs']);
  b.add('th', { op: 'activation', fn: 'tanh' }, ['mm']);
  b.add('fl2', { op: 'flatten', channelsFirst: false }, ['th']);
  b.add('fc', { op: 'dense', units: 5, bias: true }, ['fl2']);
  b.add('out', { op: 'activation', fn: 'softmax' }, ['fc']);
  return b.build();
}

/** The ops Keras has too: 'same' and explicit pads, residual add, depthwise, global max pool kept 4-D, channels-first flatten. */
function kerasOpsGraph(): GraphModel {
  const rng = new Prng(12);
  const b = new GraphBuilder('keras-ops', 'test');
  b.input('input', [8, 8, 3]);
  b.add('c1', conv(4, 3, [0, 0, 1, 1], 1, [2, 2]), ['input']);
  b.add('bn1', { op: 'batchnorm', epsilon: 1e-5 }, ['c1'], batchNormWeights(4, rng));
  b.add('r6', { op: 'activation', fn: 'relu6' }, ['bn1']);
  b.add('c2', conv(4, 3, [1, 1, 1, 1]), ['r6']);
  b.add('c3', conv(4, 3, [2, 2, 2, 2]), ['c2']);
  b.add('p3', { op: 'maxpool', kernel: [3, 3], strides: [1, 1], pads: [0, 0, 0, 0] }, ['c3']);
  b.add('add', { op: 'add' }, ['p3', 'r6']);
  b.add('hsig', { op: 'activation', fn: 'hardsigmoid', alpha: 0.2, beta: 0.5 }, ['add']);
  b.add('dw', conv(8, 3, [0, 0, 0, 0], 4), ['hsig']);
  b.add('clip', { op: 'activation', fn: 'clip', min: 0, max: 2 }, ['dw']);
  b.add('gmp', { op: 'globalmaxpool', keepDims: true }, ['clip']);
  b.add('fgmp', { op: 'flatten', channelsFirst: true }, ['gmp']);
  b.add('fl', { op: 'flatten', channelsFirst: true }, ['clip']);
  b.add('cat', { op: 'concat', axis: 0 }, ['fl', 'fgmp']);
  b.add('d1', { op: 'dense', units: 8, bias: true }, ['cat']);
  b.add('elu', { op: 'activation', fn: 'elu' }, ['d1']);
  b.add('sig', { op: 'activation', fn: 'sigmoid' }, ['elu']);
  b.add('d2', { op: 'dense', units: 3, bias: true }, ['sig']);
  return b.build();
}

test('every op the writers know: onnxruntime (FP at opsets 13 and 21, QDQ per channel) and tfjs reproduce mpq\'s forward on random inputs', { skip: ORT_SKIP }, async (t) => {
  const n = 16;
  const rng = new Prng(5);
  const images = Float32Array.from({ length: n * 8 * 8 * 3 }, () => rng.normal());
  const x = tf.tensor4d(images, [n, 8, 8, 3]);
  const nchw = Float32Array.from(tf.transpose(x, [0, 3, 1, 2]).dataSync() as Float32Array);
  for (const source of [everyOpGraph(), kerasOpsGraph()]) {
    const model = createModel(source, { seed: 3 });
    const softmax = model.graph.nodes.at(-1)!.op === 'activation';
    const ours = tf.tidy(() => {
      const logits = model.forward(x, {}, false);
      return (softmax ? tf.softmax(logits) : logits).dataSync();
    });
    for (const opset of [13, 21] as const) {
      const path = join(dir, `${model.name}-${opset}.onnx`);
      writeOnnxFile(path, graphToOnnx(model.graph, forwardWeights(model, {}), { opset }));
      const [theirs] = Object.values(await runOnnx(path, { input: { data: nchw, dims: [n, 3, 8, 8] } }));
      const diff = Math.max(...Array.from(ours, (v, i) => Math.abs(v - theirs.data[i])));
      assert.ok(diff <= 1e-4, `${model.name} opset ${opset}: max abs diff ${diff}`);
    }
    disposeModel(model);
  }
  // QDQ with per-channel steps: Conv (grouped, depthwise), a 1x1-conv dense on an image, MatMul on a sequence (channels on axis 1), Gemm
  const quantized = createModel(everyOpGraph(), { seed: 3, bits: [4], perChannelWeights: true, layers: { fixFirstLast: false } });
  const policy = Object.fromEntries(quantized.layers.map((l) => [l.name, { weightBits: 4, actBits: 4 }]));
  tf.tidy(() => { quantized.forward(x, policy, true); });
  const path = join(dir, 'every-op-qdq.onnx');
  writeOnnxFile(path, graphToOnnx(quantized.graph, forwardWeights(quantized, policy), { opset: 21, quantization: qdqLayers(quantized, policy) }));
  assert.deepEqual(readOnnxFile(path).graph.nodes.find((nd) => nd.name === 'mm.weight/DequantizeLinear')!.attributes.axis, { type: 'int', value: 1 });
  const [qdq] = await compareQdq([path], quantized, policy, images, n);
  assertSameModel(t, 'every-op QDQ', [qdq], [21]);
  disposeModel(quantized);
  // tfjs: the graph Keras can say, and one line for the one it cannot
  const keras = createModel(kerasOpsGraph(), { seed: 3 });
  const built = graphToLayersModel(keras.graph, forwardWeights(keras, {}));
  assert.ok(tf.tidy(() => tf.max(tf.abs(tf.sub(built.predict(x) as tf.Tensor, keras.forward(x, {}, false)))).dataSync()[0]) <= 1e-5);
  assert.deepEqual(built.layers.map((l) => l.getClassName()).filter((c) => ['ZeroPadding2D', 'DepthwiseConv2D', 'Permute', 'Reshape'].includes(c)).sort(),
    ['DepthwiseConv2D', 'Permute', 'Reshape', 'ZeroPadding2D'], 'c3\'s pads of 2, the depthwise conv, the channels-first flatten, the 4-D global pool');
  built.dispose();
  disposeModel(keras);
  const every = createModel(everyOpGraph(), { seed: 3 });
  assert.throws(() => graphToLayersModel(every.graph, forwardWeights(every, {})), /^UserError: every-op: node 'p1' \(avgpool\): pads \[1, 1, 1, 1\] are neither 'valid' nor Keras's 'same' \(an average without the pads\)$/);
  disposeModel(every);
});
