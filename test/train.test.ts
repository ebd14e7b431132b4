import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { zooLayers } from '../src/model/zoo.js';
import type { Policy } from '../src/export/policy.js';
import { initBackend } from '../src/train/backend/index.js';
import { loadIntoVariables, readCheckpoint, saveCheckpoint } from '../src/train/checkpoint.js';
import { loadMnistPackage, subset, type Dataset } from '../src/train/data.js';
import { extractIndicators } from '../src/train/indicators.js';
import { DEFAULT_HYPERPARAMETERS, evaluate, fullPrecisionPasses, jointPretrainPasses, trainLoop } from '../src/train/loops.js';
import { createModel, describeLayers, namedVariables } from '../src/train/models.js';
import { FULL_PRECISION, policyFromFile, randomPolicy, uniformPolicy } from '../src/train/policies.js';
import { Prng } from '../src/util/prng.js';

await initBackend('wasm');

const mnist = loadMnistPackage(0);
/** 32 training and 32 test digits: enough to exercise every code path quickly */
const tiny: Dataset = { ...mnist, train: subset(mnist.train, 32), test: subset(mnist.test, 32) };

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'mpq-train-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function snapshot(vars: Map<string, tf.Variable>): Map<string, number[]> {
  return new Map([...vars].map(([k, v]) => [k, Array.from(v.dataSync())]));
}

test('layer tables read off the tfjs models equal the zoo (names, params, MACs)', () => {
  for (const name of ['mnist-cnn', 'resnet20']) {
    const fromTfjs = describeLayers(createModel(name)).map(({ name: n, params, macs }) => ({ name: n, params, macs }));
    const fromZoo = zooLayers(name).map(({ name: n, params, macs }) => ({ name: n, params, macs }));
    assert.deepEqual(fromTfjs, fromZoo, name);
  }
});

test('mnist-cnn: fixed first/last layers, searchable middle; forward at FP and at a policy', () => {
  const model = createModel('mnist-cnn', { bits: [4, 2] });
  assert.deepEqual(model.fixedLayerNames, ['conv1', 'fc']);
  assert.deepEqual(model.searchableLayerNames, ['conv2', 'conv3', 'conv4', 'conv5']);
  const x = tf.tensor4d(tiny.train.images.subarray(0, 2 * 784), [2, 28, 28, 1]);
  const fp = model.forward(x, FULL_PRECISION, false);
  assert.deepEqual(fp.shape, [2, 10]);
  // training-mode forward at 2 bits initialises the step sizes from data; the result differs from FP
  const q = model.forward(x, uniformPolicy(model, 2), true);
  const conv3 = model.layers.find((l) => l.name === 'conv3')!;
  assert.equal((conv3.weightQuantizer as unknown as { isInitialised(b: number): boolean }).isInitialised(2), true);
  assert.ok(Math.max(...Array.from(tf.sub(q, fp).abs().dataSync())) > 1e-3);
  assert.throws(() => model.forward(x, uniformPolicy(model, 3), false), /no step size for 3 bits/);
});

test('switchable batch norm: a pass at 4 bits moves only the 4-bit statistics', () => {
  const model = createModel('mnist-cnn', { bits: [4, 2] });
  const bn2 = model.batchNorms[1];
  const before = snapshot(bn2.namedState());
  const x = tf.tensor4d(tiny.train.images.subarray(0, 4 * 784), [4, 28, 28, 1]);
  model.forward(x, uniformPolicy(model, 4), true);
  const after = snapshot(bn2.namedState());
  const changed = [...after].filter(([k, v]) => v.some((e, i) => e !== before.get(k)![i])).map(([k]) => k).sort();
  assert.deepEqual(changed, ['bn2.bns.4.running_mean', 'bn2.bns.4.running_var']);
});

test('policies: uniform, seeded random (candidates only, first/last at 8), and policy files', () => {
  const model = createModel('mnist-cnn', { bits: [6, 4, 2] });
  const u = uniformPolicy(model, 4);
  assert.deepEqual(u.conv2, { weightBits: 4, actBits: 4 });
  assert.deepEqual(u.fc, { weightBits: 8, actBits: 8 });
  const r1 = randomPolicy(model, new Prng(3));
  assert.deepEqual(r1, randomPolicy(model, new Prng(3)));
  for (const n of model.searchableLayerNames) {
    assert.ok([6, 4, 2].includes(r1[n].weightBits) && [6, 4, 2].includes(r1[n].actBits));
  }
  assert.deepEqual(r1.conv1, { weightBits: 8, actBits: 8 });
  const layer = (name: string, w: number, a: number) => ({ name, weightBits: w, actBits: a, macs: 0, params: 0 });
  const file: Policy = {
    format: 'mpq-policy', version: 1, model: 'mnist-cnn', bits: [6, 4, 2],
    layers: [layer('conv2', 6, 4), layer('conv3', 4, 4), layer('conv4', 2, 6), layer('conv5', 4, 2)],
    fixed: [layer('conv1', 8, 8), layer('fc', 8, 8)],
  };
  assert.deepEqual(policyFromFile(model, file, 'p.json').conv4, { weightBits: 2, actBits: 6 });
  assert.throws(() => policyFromFile(model, { ...file, model: 'resnet20' }, 'p.json'), /p.json: policy is for model 'resnet20'/);
  assert.throws(() => policyFromFile(model, { ...file, layers: file.layers.slice(1) }, 'p.json'), /field 'layers'/);
  assert.throws(() => policyFromFile(model, { ...file, fixed: [layer('conv1', 4, 4)] }, 'p.json'), /field 'fixed'/);
});

test('checkpoints round-trip; BN sets and step sizes missing from an FP checkpoint are filled in', (t) => {
  const dir = tempDir(t);
  const fp = createModel('mnist-cnn', { seed: 1 });
  const fpVars = namedVariables(fp);
  fpVars.get('bn3.bns.fp.weight')!.assign(tf.fill([64], 0.5));
  saveCheckpoint(dir, { model: 'mnist-cnn', bits: [], training: { stage: 'train', epochsDone: 1, epochs: 1 }, meta: {} }, fpVars);
  saveCheckpoint(dir, { model: 'mnist-cnn', bits: [], training: { stage: 'train', epochsDone: 1, epochs: 1 }, meta: {} }, fpVars);
  assert.equal(readdirSync(dir).filter((f) => f.endsWith('.bin')).length, 1, 'older weight files are removed');

  const quant = createModel('mnist-cnn', { bits: [4], seed: 2 });
  const checkpoint = readCheckpoint(dir);
  loadIntoVariables(dir, checkpoint, namedVariables(quant));
  const qVars = namedVariables(quant);
  assert.deepEqual(Array.from(qVars.get('conv2.weight')!.dataSync()), Array.from(fpVars.get('conv2.weight')!.dataSync()));
  assert.deepEqual(Array.from(qVars.get('bn3.bns.4.weight')!.dataSync()), new Array(64).fill(0.5));
  assert.equal(qVars.get('conv2.quan_w_fn.s_init.4')!.dataSync()[0], 0, 'step sizes still to be initialised from data');

  checkpoint.tensors.delete('conv3.weight');
  assert.throws(() => loadIntoVariables(dir, checkpoint, namedVariables(quant)), /no variable 'conv3.weight'/);
  assert.throws(() => readCheckpoint(join(dir, 'nope')), (e: Error) => e.name === 'UserError' && /nope: no model.json/.test(e.message));
});

test('FP training loop: an interrupted run resumed from its checkpoint ends where an uninterrupted one does', async (t) => {
  const hyper = { ...DEFAULT_HYPERPARAMETERS.train, epochs: 2, batchSize: 16 };
  const run = async (checkpointDir: string, interruptAfterFirstEpoch: boolean, resume: boolean) => {
    const model = createModel('mnist-cnn', { seed: 5 });
    await trainLoop(model, tiny, {
      stage: 'train', hyper, seed: 9, passes: fullPrecisionPasses, evalPolicy: FULL_PRECISION, checkpointDir, resume,
      onEpoch: (r) => {
        assert.ok(Number.isFinite(r.train.fp.loss) && r.testTop1 >= 0 && r.testTop1 <= 1);
        if (interruptAfterFirstEpoch && r.epoch === 1) throw new Error('interrupted');
      },
    }).catch((e: Error) => assert.equal(e.message, 'interrupted'));
    return model;
  };
  const whole = await run(tempDir(t), false, false);
  const dir = tempDir(t);
  await run(dir, true, false);
  assert.equal(readCheckpoint(dir).manifest.training.epochsDone, 1);
  const resumed = await run(dir, false, true);
  const a = namedVariables(whole).get('conv4.weight')!.dataSync();
  const b = namedVariables(resumed).get('conv4.weight')!.dataSync();
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) < 1e-5, `conv4.weight[${i}]`);
});

test('joint pretraining: uniform passes per bit-width plus one mixed pass; indicators per layer per bits', async () => {
  const model = createModel('mnist-cnn', { bits: [4, 2], seed: 1 });
  const passes = jointPretrainPasses(model)(new Prng(0));
  assert.deepEqual(passes.map((p) => p.label), ['w4a4', 'w2a2', 'mixed']);
  const reports = await trainLoop(model, tiny, {
    stage: 'pretrain', hyper: { ...DEFAULT_HYPERPARAMETERS.pretrain, epochs: 1, batchSize: 16 }, seed: 1,
    passes: jointPretrainPasses(model), evalPolicy: uniformPolicy(model, 4),
  });
  assert.deepEqual(Object.keys(reports[0].train), ['w4a4', 'w2a2', 'mixed']);
  const indicators = extractIndicators(model, { model: 'mnist-cnn', bits: [4, 2], seed: 1 });
  assert.deepEqual(indicators.layer_name, ['conv2', 'conv3', 'conv4', 'conv5']);
  for (const layer of indicators.layer_name) {
    for (const side of [indicators.weight, indicators.act]) {
      assert.deepEqual(Object.keys(side[layer]).sort(), ['2', '4']);
      assert.ok(side[layer]['2'] > 0 && side[layer]['4'] > 0);
    }
    // a coarser grid needs a larger step
    assert.ok(indicators.weight[layer]['2'] > indicators.weight[layer]['4'], layer);
  }
  assert.equal(indicators.meta.seed, 1);
  const top1 = evaluate(model, tiny.test, uniformPolicy(model, 4)).top1;
  assert.ok(top1 >= 0 && top1 <= 1);
});
