import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { zooLayers } from '../src/model/zoo.js';
import type { Policy } from '../src/export/policy.js';
import { initBackend } from '../src/train/backend/index.js';
import { loadIntoVariables, readCheckpoint, readCheckpointManifest, saveCheckpoint } from '../src/train/checkpoint.js';
import { loadMnistPackage, subset, type Dataset } from '../src/train/data.js';
import { extractIndicators } from '../src/train/indicators.js';
import { DEFAULT_HYPERPARAMETERS, evaluate, fullPrecisionPasses, jointPretrainPasses, trainLoop } from '../src/train/loops.js';
import { createModel, describeLayers, namedVariables } from '../src/train/models.js';
import { FULL_PRECISION, policyFromFile, randomPolicy, uniformPolicy } from '../src/train/policies.js';
import { Prng } from '../src/util/prng.js';
import { CLI_MAIN, runCli } from './support.js';

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

/** Runs the CLI and sends `signal` once stdout matches `when` (after `delayMs`). */
function runUntil(args: string[], when: RegExp, signal: NodeJS.Signals, delayMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI_MAIN, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    let sent = false;
    child.stdout.on('data', (d) => {
      stdout += d;
      if (!sent && when.test(stdout)) {
        sent = true;
        setTimeout(() => child.kill(signal), delayMs);
      }
    });
    child.on('close', (code, sig) => resolve({ code, signal: sig, stdout }));
  });
}

test('train --resume after a SIGKILL mid-epoch: no finished epoch again, and bit for bit the uninterrupted run', async (t) => {
  const args = ['train', '--model', 'mnist-cnn', '--epochs', '3', '--limit', '192', '--batch-size', '16', '--seed', '9', '--no-progress'];
  const whole = tempDir(t);
  const uninterrupted = runCli([...args, '--checkpoint', whole]);
  assert.equal(uninterrupted.status, 0, uninterrupted.stderr);

  const dir = tempDir(t);
  // epoch 1's checkpoint is saved before its line is printed; the kill follows the line at once,
  // inside epoch 2 (12 steps and a test pass: a fixed delay was too long on the native kernels)
  const killed = await runUntil([...args, '--checkpoint', dir], /train epoch 1\/3/, 'SIGKILL', 0);
  assert.equal(killed.signal, 'SIGKILL', 'killed before the run ended');
  assert.equal(readCheckpointManifest(dir).training.epochsDone, 1, 'the last complete checkpoint is epoch 1');

  // a resume with other settings than the checkpoint's is refused, naming them
  const other = runCli([...args.map((a) => (a === '192' ? '128' : a)), '--checkpoint', dir, '--resume']);
  assert.equal(other.status, 2, other.stderr);
  assert.match(other.stderr, /^mpq: --resume: .* was made with --limit 192; this run has --limit 128 \(give the same settings/);
  assert.equal(other.stderr.trim().split('\n').length, 1, other.stderr);

  const resumed = runCli([...args, '--checkpoint', dir, '--resume']);
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.doesNotMatch(resumed.stdout, /train epoch 1\/3/, 'the finished epoch is not trained again');
  assert.match(resumed.stdout, /train epoch 2\/3[^]*train epoch 3\/3/);

  const a = readCheckpointManifest(whole);
  const b = readCheckpointManifest(dir);
  assert.deepEqual(b.training, a.training);
  assert.deepEqual(b.variables, a.variables);
  assert.equal(b.weightsFile, a.weightsFile, 'the weights file names carry a hash of the bytes');
  assert.ok(readFileSync(join(dir, b.weightsFile)).equals(readFileSync(join(whole, a.weightsFile))), 'weights and optimizer state bit for bit');
});

test('--resume on a folder without a checkpoint says it starts from the beginning; another stage is refused', async (t) => {
  const hyper = { ...DEFAULT_HYPERPARAMETERS.train, epochs: 1, batchSize: 16 };
  const dir = join(tempDir(t), 'new');
  const notes: string[] = [];
  const loop = (stage: 'train' | 'finetune', meta: Record<string, unknown>) => trainLoop(createModel('mnist-cnn', { seed: 5 }), tiny, {
    stage, hyper, seed: 9, passes: fullPrecisionPasses, evalPolicy: FULL_PRECISION, checkpointDir: dir, resume: true, meta, log: (l) => notes.push(l),
  });
  await loop('train', { seed: 9, limit: 32 });
  assert.deepEqual(notes, [`resuming: ${dir} holds no checkpoint yet; starting the run from the beginning`]);
  await assert.rejects(loop('finetune', { seed: 9, limit: 32 }), /^UserError: resume: .* holds a 'train' run, not a 'finetune' one \(give another checkpoint, or overwrite instead of resume to replace it\)$/);
  await assert.rejects(loop('train', { seed: 10, limit: 32, command: 'other' }), /made with seed 9; this run has seed 10 /);
});

test('checkpoints: a changed weights file, a weightsFile outside the folder are refused; a save removes temp files of killed saves', (t) => {
  const dir = tempDir(t);
  const vars = namedVariables(createModel('mnist-cnn', { seed: 1 }));
  const header = { model: 'mnist-cnn', bits: [], training: { stage: 'train', epochsDone: 1, epochs: 1 }, meta: {} };
  const dead = spawnSync(process.execPath, ['-e', '0']).pid!; // a process that has ended
  const stale = [`weights-0123456789abcdef.bin.${dead}.1.tmp`, `model.json.${dead}.2.tmp`];
  const live = `model.json.${process.pid}.3.tmp`;
  for (const f of [...stale, live]) writeFileSync(join(dir, f), 'partial');
  saveCheckpoint(dir, header, vars);
  assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith('.tmp')), [live], 'a dead writer\'s temp files go, a live one\'s stay');

  const manifest = readCheckpointManifest(dir);
  const weights = join(dir, manifest.weightsFile);
  const bytes = readFileSync(weights);
  bytes[1000] ^= 1;
  writeFileSync(weights, bytes);
  assert.throws(() => readCheckpoint(dir), (e: Error) => e.name === 'UserError' && /weights-[0-9a-f]{16}\.bin: corrupt \(its sha256 starts [0-9a-f]{16}, the name says/.test(e.message));

  writeFileSync(join(dir, 'model.json'), JSON.stringify({ ...manifest, weightsFile: '../../../etc/passwd' }));
  assert.throws(() => readCheckpoint(dir), (e: Error) => e.name === 'UserError' && /model.json: weightsFile: expected weights-<16 hex digits/.test(e.message));
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
