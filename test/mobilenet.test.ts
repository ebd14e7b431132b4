import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { zooLayerTable, zooLayers } from '../src/model/zoo.js';
import { initBackend } from '../src/train/backend/index.js';
import { loadMnistPackage, subset, type Dataset } from '../src/train/data.js';
import { QuantConv2d, lsqQuantizers } from '../src/train/layers.js';
import { DEFAULT_HYPERPARAMETERS, fullPrecisionPasses, trainLoop } from '../src/train/loops.js';
import { createModel, describeLayers, namedVariables, TRAIN_MODEL_NAMES } from '../src/train/models.js';
import { FULL_PRECISION, uniformPolicy } from '../src/train/policies.js';
import { Prng } from '../src/util/prng.js';
import { saveUntrainedCheckpoint } from './checkpoints.js';
import { runCli, tempDir } from './support.js';

const backend = await initBackend('wasm');

test('mobilenet-mini(-cifar) are trainable and their layer tables read off tfjs are the zoo tables', () => {
  for (const name of ['mobilenet-mini', 'mobilenet-mini-cifar']) {
    assert.ok((TRAIN_MODEL_NAMES as readonly string[]).includes(name));
    const fromTfjs = describeLayers(createModel(name));
    const zoo = zooLayers(name);
    assert.equal(fromTfjs.length, zoo.length);
    fromTfjs.forEach((layer, i) => {
      // every field describeLayers fills (linear layers leave out kernel, stride and groups)
      const zooFields = Object.fromEntries(Object.keys(layer).map((k) => [k, zoo[i][k as keyof typeof layer]]));
      assert.deepEqual(layer, zooFields, `${name} ${layer.name}`);
    });
    const model = createModel(name, { bits: [4, 2] });
    const table = zooLayerTable(name);
    assert.deepEqual(model.fixedLayerNames, table.fixed.map((l) => l.name));
    assert.deepEqual(model.searchableLayerNames, table.layers.map((l) => l.name));
  }
  assert.deepEqual(createModel('mobilenet-mini-cifar').inputShape, [32, 32, 3]);
});

test('a depthwise QuantConv2d at full precision: one 3x3 filter per channel, zero padding, stride', () => {
  const layer = new QuantConv2d('dw', { inChannels: 2, outChannels: 2, groups: 2, kernel: 3, stride: 1, padding: 1 }, new Prng(0), { bitsList: [4], inputSignedness: 'unsigned' });
  assert.deepEqual(layer.weight.shape, [3, 3, 1, 2], 'output channels on the last axis, as a conv weight');
  // channel 0: the centre tap 2; channel 1: every tap 1 (a 3x3 box sum)
  const w = new Float32Array(18);
  for (let t = 0; t < 9; t++) w[t * 2 + 1] = 1;
  w[4 * 2] = 2;
  layer.weight.assign(tf.tensor4d(w, [3, 3, 1, 2]));
  // 1x3x3x2 input: channel 0 = 1..9, channel 1 = 1
  const x = tf.tensor4d(Array.from({ length: 9 }, (_, i) => [i + 1, 1]).flat(), [1, 3, 3, 2]);
  const fp = { weightBits: 32, actBits: 32 };
  const y = layer.apply(x, fp, false);
  assert.deepEqual(y.shape, [1, 3, 3, 2]);
  const values = Array.from(y.dataSync());
  assert.deepEqual(values.filter((_, i) => i % 2 === 0), [2, 4, 6, 8, 10, 12, 14, 16, 18]);
  // box sums of ones with zero padding: corners see 4, edges 6, the centre 9
  assert.deepEqual(values.filter((_, i) => i % 2 === 1), [4, 6, 4, 6, 9, 6, 4, 6, 4]);
  const strided = new QuantConv2d('dw2', { inChannels: 2, outChannels: 2, groups: 2, kernel: 3, stride: 2, padding: 1 }, new Prng(0), { bitsList: [4], inputSignedness: 'unsigned' });
  assert.deepEqual(strided.apply(x, fp, false).shape, [1, 2, 2, 2]);
  // per-channel weight quantizers see the channels on the last axis
  const perChannel = new QuantConv2d('dw3', { inChannels: 5, outChannels: 5, groups: 5, kernel: 3, stride: 1, padding: 1 }, new Prng(0),
    { bitsList: [4], inputSignedness: 'unsigned', quantizers: lsqQuantizers(true) });
  const step = [...perChannel.weightQuantizer.namedState()].find(([k]) => k.startsWith('s.'))!;
  assert.equal(step[1].size, 5, `step sizes ${step[0]}`);
});

test(`mobilenet-mini trains on the ${backend} backend: loss falls, every depthwise weight moves`, async () => {
  const mnist = loadMnistPackage(0);
  const data: Dataset = { ...mnist, train: subset(mnist.train, 64), test: subset(mnist.test, 32) };
  const model = createModel('mobilenet-mini', { seed: 1 });
  const before = new Map([...namedVariables(model)].map(([k, v]) => [k, Array.from(v.dataSync())]));
  const reports = await trainLoop(model, data, {
    stage: 'train', hyper: { ...DEFAULT_HYPERPARAMETERS.train, epochs: 3, batchSize: 16, maxShift: 0 }, seed: 2,
    passes: fullPrecisionPasses, evalPolicy: FULL_PRECISION,
  });
  const losses = reports.map((r) => r.train.fp.loss);
  assert.ok(losses.every(Number.isFinite), `losses ${losses}`);
  assert.ok(losses[2] < losses[1] && losses[1] < losses[0], `training loss ${losses.map((l) => l.toFixed(3)).join(' → ')}`);
  for (const name of model.searchableLayerNames.filter((n) => n.includes('dw_conv'))) {
    const after = namedVariables(model).get(`${name}.weight`)!.dataSync();
    assert.ok(before.get(`${name}.weight`)!.some((v, i) => v !== after[i]), `${name} weights moved`);
  }
  // quantized forward at a uniform policy works through the depthwise layers
  const logits = model.forward(tf.tensor4d(data.test.images.subarray(0, 2 * 784), [2, 28, 28, 1]), uniformPolicy(model, 32), false);
  assert.deepEqual(logits.shape, [2, 10]);
});

test('mpq pretrain → search on mobilenet-mini: the indicators name the zoo table layers', (t) => {
  const dir = tempDir('mpq-mobilenet-');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // an untrained FP checkpoint is enough to check the names (training is tested above)
  const fp = join(dir, 'fp');
  saveUntrainedCheckpoint(fp, 'mobilenet-mini', 3);
  const indicators = join(dir, 'indicators.json');
  const pretrain = runCli(['pretrain', '--model', 'mobilenet-mini', '--from', fp, '--bits', '4', '2', '--epochs', '1', '--limit', '16',
    '--batch-size', '16', '--seed', '3', '--no-progress', '--out', indicators]);
  assert.equal(pretrain.status, 0, pretrain.stderr);
  const file = JSON.parse(readFileSync(indicators, 'utf8'));
  assert.deepEqual(file.layer_name, zooLayerTable('mobilenet-mini').layers.map((l) => l.name));
  assert.equal(file.meta.model, 'mobilenet-mini');
  // the model is taken from the indicators' meta
  const search = runCli(['search', '--indicators', indicators, '--bits', '4', '2', '--wb', '3', '--ab', '3', '--cr', '0', '--json']);
  assert.equal(search.status, 0, search.stderr);
  const result = JSON.parse(search.stdout);
  assert.equal(result.status, 'optimal');
  assert.deepEqual(result.layers.map((l: { name: string }) => l.name), file.layer_name);
  assert.deepEqual(result.fixed.map((l: { name: string }) => l.name), ['first_conv.0', 'fc']);
});
