import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { Layer, LayerTable } from '../src/model/layer.js';
import { readTfjsLayerTable, tfjsGraph, tfjsLayerTable } from '../src/model/tfjs-import.js';
import { runCli, tempDir } from './support.js';

await tf.setBackend('cpu');

const dir = tempDir('mpq-tfjs-');
test.after(() => rmSync(dir, { recursive: true, force: true }));

/** Writes `json` as `<dir>/<name>` and returns the path. */
function writeJson(name: string, json: unknown): string {
  const path = join(dir, name);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, JSON.stringify(json));
  return path;
}

const allLayers = (t: LayerTable): Layer[] => (t.fixed.length ? [t.fixed[0], ...t.layers, t.fixed[1]] : t.layers);
const summary = (t: LayerTable) => allLayers(t).map((l) => [l.name, l.kind, l.params, l.macs]);

// --- hand-written model.json files, hand-computed arithmetic ---

const sequential = (layers: unknown[]) => ({ modelTopology: { class_name: 'Sequential', config: { name: 's', layers } } });
const conv = (name: string, filters: number, k: number, extra: Record<string, unknown> = {}) =>
  ({ class_name: 'Conv2D', config: { name, filters, kernel_size: [k, k], ...extra } });
const digitsLayers = () => [
  conv('c1', 8, 3, { batch_input_shape: [null, 28, 28, 1] }), // valid: 26x26x8, 72 weights
  { class_name: 'MaxPooling2D', config: { name: 'pool', pool_size: [2, 2] } }, // 13x13
  { class_name: 'Activation', config: { name: 'relu', activation: 'relu' } },
  conv('c2', 16, 3, { strides: [2, 2], padding: 'same' }), // ceil(13/2) = 7: 7x7x16, 3*3*8*16 = 1152
  conv('c3', 32, 3, { padding: 'valid' }), // 5x5x32, 3*3*16*32 = 4608
  { class_name: 'Flatten', config: { name: 'flat' } }, // 800
  { class_name: 'Dense', config: { name: 'fc', units: 10 } },
];

test('Sequential conv/pool/dense: shapes, weights and MACs by hand; first and last fixed at 8 bits', () => {
  const path = writeJson('digits/model.json', sequential(digitsLayers()));
  const t = readTfjsLayerTable(path);
  assert.equal(t.model, 'digits', 'a model.json is named after its directory');
  assert.deepEqual(t.input, [1, 28, 28]);
  assert.deepEqual(summary(t), [
    ['c1', 'conv', 72, 72 * 26 * 26],
    ['c2', 'conv', 1152, 1152 * 7 * 7],
    ['c3', 'conv', 4608, 4608 * 5 * 5],
    ['fc', 'linear', 8000, 8000],
  ]);
  assert.deepEqual(t.fixed.map((l) => [l.name, l.weightBits, l.actBits]), [['c1', 8, 8], ['fc', 8, 8]]);
  assert.deepEqual(t.layers[0], {
    name: 'c2', kind: 'conv', inChannels: 8, outChannels: 16, kernel: [3, 3], stride: 2, groups: 1, outputSize: [7, 7], params: 1152, macs: 56_448,
  });
  // converter layout (modelTopology.model_config), another file name, every layer searchable
  const converted = writeJson('converted.json', { modelTopology: { keras_version: '2.15', model_config: sequential(digitsLayers()).modelTopology } });
  const all = readTfjsLayerTable(converted, { fixFirstLast: false });
  assert.equal(all.model, 'converted');
  assert.deepEqual(all.fixed, []);
  assert.deepEqual(all.layers.map((l) => l.name), ['c1', 'c2', 'c3', 'fc']);
});

/** input 8x8x4 → a (3x3 same) → BN → ReLU → b (3x3 same) → Add(b, input) → c (1x1, stride 2) → GAP → fc 3 */
function residualModel(inbound: (...names: string[]) => unknown): unknown {
  const layer = (class_name: string, config: Record<string, unknown>, ...from: string[]) =>
    ({ class_name, name: config.name, config, inbound_nodes: from.length ? [inbound(...from)] : [] });
  return {
    modelTopology: {
      class_name: 'Functional',
      config: {
        name: 'res',
        layers: [
          layer('InputLayer', { name: 'in', batch_input_shape: [null, 8, 8, 4] }),
          layer('Conv2D', { name: 'a', filters: 4, kernel_size: 3, padding: 'same' }, 'in'),
          layer('BatchNormalization', { name: 'bn' }, 'a'),
          layer('ReLU', { name: 'relu' }, 'bn'),
          layer('Conv2D', { name: 'b', filters: 4, kernel_size: 3, padding: 'same' }, 'relu'),
          layer('Add', { name: 'add' }, 'b', 'in'),
          layer('Conv2D', { name: 'c', filters: 8, kernel_size: 1, strides: 2 }, 'add'),
          layer('GlobalAveragePooling2D', { name: 'gap' }, 'c'),
          layer('Dense', { name: 'fc', units: 3 }, 'gap'),
        ],
        input_layers: [['in', 0, 0]],
        output_layers: [['fc', 0, 0]],
      },
    },
  };
}

test('functional model with a residual Add: Keras 2 and Keras 3 node formats give the same table', () => {
  const keras2 = tfjsLayerTable(residualModel((...names) => names.map((n) => [n, 0, 0, {}])), 'res.json');
  const keras3 = tfjsLayerTable(residualModel((...names) => {
    const tensors = names.map((n) => ({ class_name: '__keras_tensor__', config: { shape: [null], keras_history: [n, 0, 0] } }));
    return { args: tensors.length === 1 ? tensors : [tensors], kwargs: {} };
  }), 'res.json');
  assert.deepEqual(keras3, keras2);
  assert.deepEqual(summary(keras2), [
    ['a', 'conv', 144, 144 * 64],
    ['b', 'conv', 144, 144 * 64],
    ['c', 'conv', 32, 32 * 16], // 1x1 stride 2 'valid': 4x4
    ['fc', 'linear', 24, 24],
  ]);
  assert.deepEqual(keras2.input, [4, 8, 8]);
});

test('depthwise (multiplier 2) and separable convs: groups = channels, two rows per separable conv', () => {
  const t = tfjsLayerTable(sequential([
    conv('stem', 8, 3, { strides: 2, padding: 'same', batch_input_shape: [null, 16, 16, 3] }), // 8x8x8, 216
    { class_name: 'DepthwiseConv2D', config: { name: 'dw', kernel_size: 3, padding: 'same', depth_multiplier: 2 } }, // 8x8x16, 144
    { class_name: 'SeparableConv2D', config: { name: 'sep', filters: 32, kernel_size: 3, strides: 2 } }, // valid: 3x3
    { class_name: 'GlobalAveragePooling2D', config: { name: 'gap' } },
    { class_name: 'Dense', config: { name: 'fc', units: 10 } },
  ]), 'mobile.json');
  assert.deepEqual(summary(t), [
    ['stem', 'conv', 216, 216 * 64],
    ['dw', 'dwconv', 144, 144 * 64],
    ['sep/depthwise', 'dwconv', 144, 144 * 9],
    ['sep/pointwise', 'conv', 512, 512 * 9],
    ['fc', 'linear', 320, 320],
  ]);
  const dw = t.layers[0];
  assert.deepEqual([dw.inChannels, dw.outChannels, dw.groups, dw.stride], [8, 16, 8, 1]);
  const pw = t.layers[2];
  assert.deepEqual([pw.inChannels, pw.outChannels, pw.groups, pw.stride, pw.outputSize], [16, 32, 1, 1, [3, 3]]);
});

test('bad files: one-line errors naming the file, the layer and the field', () => {
  const expectError = (json: unknown, pattern: RegExp) => assert.throws(
    () => tfjsLayerTable(json, 'm.json'),
    (e: Error) => e.name === 'UserError' && !e.message.includes('\n') && pattern.test(e.message),
  );
  const withLayer = (layer: unknown) => sequential([...digitsLayers().slice(0, 5), layer, ...digitsLayers().slice(5)]);
  expectError(withLayer({ class_name: 'LSTM', config: { name: 'rnn', units: 4 } }), /^m\.json: layer 'rnn' \(LSTM\): class 'LSTM' is not supported/);
  expectError(sequential([conv('c1', 8, 3, { filters: '8', batch_input_shape: [null, 28, 28, 1] })]), /^m\.json: layer 'c1' \(Conv2D\): config\.filters: /);
  expectError(sequential([conv('c1', 8, 3, { padding: 'causal', batch_input_shape: [null, 28, 28, 1] })]), /config\.padding: expected 'valid' or 'same'/);
  expectError(sequential([conv('c1', 8, 3, { batch_input_shape: [null, null, null, 1] })]), /layer 'c1': input shape \[null, null, null, 1\] has unknown dimensions/);
  expectError(sequential([conv('c1', 8, 3)]), /layer 'c1': no batch_input_shape/);
  expectError(sequential([conv('c1', 8, 30, { batch_input_shape: [null, 28, 28, 1] }), ...digitsLayers().slice(1)]), /layer 'c1' \(Conv2D\): kernel 30x30 does not fit a 28x28 input/);
  expectError({ modelTopology: { class_name: 'Graph', config: { layers: [] } } }, /modelTopology\.class_name: 'Graph' is not a LayersModel/);
  expectError({ modelTopology: { class_name: 'Sequential' } }, /^m\.json: modelTopology\.config: /);
  expectError({ format: 'graph-model', modelTopology: { node: [] } }, /^m\.json: a tfjs graph model .* export a LayersModel/);
  expectError(sequential([digitsLayers()[0], digitsLayers()[6]]), /2 quantizable layer\(s\).*\(layers\.searchable NAME… or layers\.fixFirstLast=false\)$/);
  expectError({ ...sequential(digitsLayers()), weightsManifest: [{ paths: ['w.bin'], weights: [{ name: 'c2/kernel', shape: [3, 3, 4, 16], dtype: 'float32' }] }] },
    /weightsManifest: 'c2\/kernel' has shape \[3, 3, 4, 16\], but the layer's input makes it \[3, 3, 8, 16\]/);
  const res = residualModel((...names) => names.map((n) => [n, 0, 0, {}])) as { modelTopology: { config: { layers: Array<{ name: string; inbound_nodes: unknown[] }> } } };
  res.modelTopology.config.layers[5].inbound_nodes = [[['b', 0, 0, {}], ['c', 0, 0, {}]]];
  expectError(res, /layer '(add|c)' depends on itself/);
  const add = residualModel((...names) => names.map((n) => [n, 0, 0, {}])) as typeof res;
  add.modelTopology.config.layers[5].inbound_nodes = [[['b', 0, 0, {}], ['nope', 0, 0, {}]]];
  expectError(add, /layer 'nope' is used as an input but not defined/);
});

// --- genuine tfjs output: models built with tfjs, saved through tf.io.withSaveHandler ---

/** model.json and weights.bin as tfjs's file handlers write them (model.json + one weight shard). */
async function saveLikeTfjs(model: tf.LayersModel, subdir: string): Promise<string> {
  let artifacts: tf.io.ModelArtifacts | undefined;
  await model.save(tf.io.withSaveHandler(async (a) => {
    artifacts = a;
    return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
  }));
  const a = artifacts!;
  const path = writeJson(join(subdir, 'model.json'), {
    modelTopology: a.modelTopology, format: a.format, generatedBy: a.generatedBy, convertedBy: a.convertedBy,
    weightsManifest: [{ paths: ['weights.bin'], weights: a.weightSpecs }],
  });
  writeFileSync(join(dir, subdir, 'weights.bin'), new Uint8Array(a.weightData as ArrayBuffer));
  return path;
}

/** Kernel weights of a tfjs layer (biases, BN and the like are not quantized weights). */
function kernelWeights(layer: tf.layers.Layer): number {
  return layer.weights.filter((w) => /kernel$/.test(w.originalName)).reduce((n, w) => n + w.shape.reduce((a, b) => a! * b!, 1)!, 0);
}

/** Checks the imported table against the tfjs model itself: weight counts per layer and in total, MACs from tfjs's output shapes. */
function assertMatchesTfjs(t: LayerTable, model: tf.LayersModel): void {
  const rows = allLayers(t);
  const byLayer = new Map<string, Layer[]>();
  for (const row of rows) {
    const layerName = row.name.replace(/\/(depthwise|pointwise)$/, '');
    byLayer.set(layerName, [...(byLayer.get(layerName) ?? []), row]);
  }
  let otherWeights = 0;
  for (const layer of model.layers) {
    const mine = byLayer.get(layer.name) ?? [];
    assert.equal(mine.reduce((n, r) => n + r.params, 0), kernelWeights(layer), `${layer.name} weights`);
    otherWeights += layer.countParams() - kernelWeights(layer);
    const out = layer.outputShape as number[];
    for (const row of mine) {
      const positions = out.slice(1, -1).reduce((a, b) => a * b, 1);
      assert.equal(row.macs, row.params * positions, `${row.name} MACs`);
    }
  }
  assert.equal(rows.reduce((n, r) => n + r.params, 0) + otherWeights, model.countParams());
}

function tfjsDigitsModel(): tf.Sequential {
  const m = tf.sequential({ name: 'digits' });
  m.add(tf.layers.conv2d({ name: 'stem', inputShape: [27, 27, 1], filters: 8, kernelSize: 3, padding: 'same', useBias: false }));
  m.add(tf.layers.batchNormalization({ name: 'stem_bn' }));
  m.add(tf.layers.reLU({ name: 'stem_relu' }));
  // odd sizes: 'same' with stride 2 rounds up (27 → 14)
  m.add(tf.layers.depthwiseConv2d({ name: 'dw1', kernelSize: 3, strides: 2, padding: 'same', depthMultiplier: 2 }));
  m.add(tf.layers.conv2d({ name: 'pw1', filters: 24, kernelSize: 1 }));
  m.add(tf.layers.maxPooling2d({ name: 'pool', poolSize: 3, strides: 2 }));
  m.add(tf.layers.separableConv2d({ name: 'sep', filters: 32, kernelSize: 3, padding: 'same' }));
  m.add(tf.layers.zeroPadding2d({ name: 'pad', padding: [[1, 0], [0, 1]] }));
  m.add(tf.layers.conv2d({ name: 'c3', filters: 16, kernelSize: 3, strides: 2 }));
  m.add(tf.layers.flatten({ name: 'flat' }));
  m.add(tf.layers.dropout({ name: 'drop', rate: 0.1 }));
  m.add(tf.layers.dense({ name: 'fc', units: 10, activation: 'softmax' }));
  return m;
}

test('a Sequential model saved by tfjs: weight counts and MACs agree with tfjs (countParams, output shapes)', async () => {
  const model = tfjsDigitsModel();
  const t = readTfjsLayerTable(await saveLikeTfjs(model, 'tfjs-seq'));
  assert.equal(t.model, 'tfjs-seq');
  assert.deepEqual(allLayers(t).map((l) => l.name), ['stem', 'dw1', 'pw1', 'sep/depthwise', 'sep/pointwise', 'c3', 'fc']);
  assertMatchesTfjs(t, model);
  model.dispose();
});

test('a functional model saved by tfjs (residual Add, Concatenate, average pooling) agrees with tfjs', async () => {
  const input = tf.input({ shape: [12, 12, 3], name: 'image' });
  const stem = tf.layers.conv2d({ name: 'stem', filters: 8, kernelSize: 3, padding: 'same', activation: 'relu' }).apply(input) as tf.SymbolicTensor;
  const branch = tf.layers.conv2d({ name: 'branch', filters: 8, kernelSize: 3, padding: 'same' }).apply(stem) as tf.SymbolicTensor;
  const sum = tf.layers.add({ name: 'sum' }).apply([stem, branch]) as tf.SymbolicTensor;
  const side = tf.layers.conv2d({ name: 'side', filters: 4, kernelSize: 1 }).apply(sum) as tf.SymbolicTensor;
  const both = tf.layers.concatenate({ name: 'cat' }).apply([sum, side]) as tf.SymbolicTensor;
  const pooled = tf.layers.averagePooling2d({ name: 'avg', poolSize: 2 }).apply(both) as tf.SymbolicTensor;
  const gap = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(pooled) as tf.SymbolicTensor;
  const out = tf.layers.dense({ name: 'fc', units: 5 }).apply(gap) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: out, name: 'residual' });
  const t = readTfjsLayerTable(await saveLikeTfjs(model, 'tfjs-functional'));
  assert.deepEqual(allLayers(t).map((l) => l.name), ['stem', 'branch', 'side', 'fc']);
  assert.equal(t.layers.find((l) => l.name === 'side')!.inChannels, 8);
  assert.equal(t.fixed[1].inChannels, 12, 'fc sees the 8 + 4 concatenated channels');
  assertMatchesTfjs(t, model);
  model.dispose();
});

test('mpq search --model model.json: the imported table is searched; unsupported layers fail in one line', async () => {
  const model = tfjsDigitsModel();
  const path = await saveLikeTfjs(model, 'cli/digits-net');
  model.dispose();
  const searchable = ['dw1', 'pw1', 'sep/depthwise', 'sep/pointwise', 'c3'];
  const steps = (k: number) => ({ '4': 0.04 * k, '2': 0.2 * k });
  const indicators = writeJson('cli/indicators.json', {
    weight: Object.fromEntries(searchable.map((n, i) => [n, steps(i + 1)])),
    act: Object.fromEntries(searchable.map((n, i) => [n, steps(5 - i)])),
    layer_name: searchable,
  });
  const r = runCli(['search', '--model', path, '--indicators', indicators, '--bits', '4', '2', '--wb', '3', '--ab', '3', '--cr', '0', '--json']);
  assert.equal(r.status, 0, r.stderr);
  const o = JSON.parse(r.stdout);
  assert.equal(o.status, 'optimal');
  assert.deepEqual(o.layers.map((l: { name: string }) => l.name), searchable);
  assert.deepEqual(o.fixed.map((l: { name: string }) => l.name), ['stem', 'fc']);

  const bad = writeJson('cli/bad/model.json', sequential([...digitsLayers().slice(0, 5), { class_name: 'Conv3D', config: { name: 'vol', filters: 2 } }]));
  const e = runCli(['search', '--model', bad, '--indicators', indicators]);
  assert.equal(e.status, 2);
  assert.equal(e.stderr.trim().split('\n').length, 1, e.stderr);
  assert.match(e.stderr, /model\.json: layer 'vol' \(Conv3D\): class 'Conv3D' is not supported/);
});

// --- with weights: the imported graph computes what tfjs computes ---

test('a tfjs model trained by tfjs and saved with its weights: mpq\'s logits equal model.predict', async () => {
  const { loadMnistPackage } = await import('../src/train/data.js');
  const { createModel } = await import('../src/train/models.js');
  const mnist = loadMnistPackage(0);
  const input = tf.input({ shape: [28, 28, 1], name: 'digits' });
  const stem = tf.layers.conv2d({ name: 'stem', filters: 8, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu' }).apply(input) as tf.SymbolicTensor;
  const bn = tf.layers.batchNormalization({ name: 'stem_bn' }).apply(stem) as tf.SymbolicTensor;
  const dw = tf.layers.depthwiseConv2d({ name: 'dw', kernelSize: 3, padding: 'same', depthMultiplier: 2, activation: 'relu6' }).apply(bn) as tf.SymbolicTensor;
  const pw = tf.layers.conv2d({ name: 'pw', filters: 16, kernelSize: 1 }).apply(dw) as tf.SymbolicTensor;
  const sum = tf.layers.add({ name: 'sum' }).apply([pw, dw]) as tf.SymbolicTensor;
  const sep = tf.layers.separableConv2d({ name: 'sep', filters: 8, kernelSize: 3, strides: 2, padding: 'same', activation: 'tanh' }).apply(sum) as tf.SymbolicTensor;
  const side = tf.layers.maxPooling2d({ name: 'side', poolSize: 3, strides: 2, padding: 'same' }).apply(sum) as tf.SymbolicTensor;
  const both = tf.layers.concatenate({ name: 'cat' }).apply([sep, side]) as tf.SymbolicTensor;
  const padded = tf.layers.zeroPadding2d({ name: 'pad', padding: [[1, 0], [0, 1]] }).apply(both) as tf.SymbolicTensor;
  const avg = tf.layers.averagePooling2d({ name: 'avg', poolSize: 3, strides: 2, padding: 'same' }).apply(padded) as tf.SymbolicTensor;
  const flat = tf.layers.flatten({ name: 'flat' }).apply(avg) as tf.SymbolicTensor;
  const drop = tf.layers.dropout({ name: 'drop', rate: 0.2 }).apply(flat) as tf.SymbolicTensor;
  const out = tf.layers.dense({ name: 'fc', units: 10, activation: 'softmax' }).apply(drop) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: out, name: 'trained' });
  model.compile({ optimizer: tf.train.adam(0.01), loss: 'sparseCategoricalCrossentropy' });
  const n = 256;
  const x = tf.tensor4d(mnist.train.images.subarray(0, n * 784), [n, 28, 28, 1]);
  const y = tf.tensor1d(Array.from(mnist.train.labels.subarray(0, n)), 'float32');
  await model.fit(x, y, { epochs: 2, batchSize: 32, verbose: 0 });
  const path = await saveLikeTfjs(model, 'trained');
  const imported = tfjsGraph(JSON.parse(readFileSync(path, 'utf8')), path, { weightsDir: dirname(path) });
  const ours = createModel(imported);
  const test = tf.tensor4d(mnist.test.images.subarray(0, 64 * 784), [64, 28, 28, 1]);
  const expected = model.predict(test) as tf.Tensor;
  const got = tf.softmax(ours.forward(test, {}, false));
  const diff = tf.max(tf.abs(tf.sub(got, expected))).dataSync()[0];
  assert.ok(diff < 1e-5, `max abs diff ${diff}`);
  // the moving statistics it learned are the batch norm's, with Keras's ε
  const bnNode = imported.graph.nodes.find((node) => node.name === 'stem_bn')!;
  assert.equal(bnNode.op === 'batchnorm' && bnNode.epsilon, 1e-3);
  // a shard of the wrong size, and a missing one, are one line naming the file
  const shard = join(dir, 'trained', 'weights.bin');
  const bytes = readFileSync(shard);
  writeFileSync(shard, bytes.subarray(0, bytes.length - 4));
  assert.throws(() => tfjsGraph(JSON.parse(readFileSync(path, 'utf8')), path, { weightsDir: dirname(path) }),
    /weight shards of group 0 \(weights\.bin\) hold \d+ bytes, the manifest needs \d+/);
  rmSync(shard);
  assert.throws(() => tfjsGraph(JSON.parse(readFileSync(path, 'utf8')), path, { weightsDir: dirname(path) }),
    /weight shard .*weights\.bin is missing/);
  model.dispose();
});

test('duplicate layer names and weights outside the model directory are refused', () => {
  const dup = sequential([...digitsLayers().slice(0, 3), conv('c1', 16, 3), ...digitsLayers().slice(3)]);
  assert.throws(() => tfjsLayerTable(dup, 'dup.json'), /^UserError: dup\.json: layer 'c1' \(Conv2D\): the name is used twice/);
  const functional = residualModel((...names) => names.map((n) => [n, 0, 0, {}])) as { modelTopology: { config: { layers: Array<{ name: string; config: { name: string } }> } } };
  functional.modelTopology.config.layers[4].name = 'a';
  functional.modelTopology.config.layers[4].config.name = 'a';
  assert.throws(() => tfjsLayerTable(functional, 'f.json'), /layer 'a' is defined twice/);
  const outside = writeJson('escape/model.json', { ...sequential(digitsLayers()), weightsManifest: [{ paths: ['../../secret.bin'], weights: [] }] });
  assert.throws(() => readTfjsLayerTable(outside) && tfjsGraph(JSON.parse(JSON.stringify({ ...sequential(digitsLayers()), weightsManifest: [{ paths: ['../../secret.bin'], weights: [] }] })), outside, { weightsDir: dirname(outside) }),
    /'\.\.\/\.\.\/secret\.bin' is outside the model's directory/);
});
