import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { graphLayers } from '../src/model/graph.js';
import { readOnnxModel, scopeModulePath } from '../src/model/onnx-import.js';
import { decodeOnnx, encodeOnnx, type OnnxModel } from '../src/model/onnx/proto.js';
import { loadMnistPackage } from '../src/train/data.js';
import { createModel } from '../src/train/models.js';
import { UserError } from '../src/util/errors.js';
import { ONNX_FIXTURES_DIR, ORT_SKIP, runOnnx } from './onnxruntime.js';
import { runCli, tempDir } from './support.js';

await tf.setBackend('cpu');

const mnist = loadMnistPackage(0);
const fixture = (name: string) => join(ONNX_FIXTURES_DIR, `${name}.onnx`);
const FIXTURES = JSON.parse(readFileSync(join(ONNX_FIXTURES_DIR, 'fixtures.json'), 'utf8')) as {
  fixtures: Array<{ file: string; torch_test_top1: number; output: string }>;
};

test('scope names are PyTorch module paths', () => {
  assert.equal(scopeModulePath('/layer1/layer1.0/conv1/Conv'), 'layer1.0.conv1');
  assert.equal(scopeModulePath('/features/features.1/conv/conv.0/conv.0.0/Conv'), 'features.1.conv.0.0');
  assert.equal(scopeModulePath('/stem/stem.0/stem.0.0/Conv'), 'stem.0.0');
  assert.equal(scopeModulePath('/conv1/Conv'), 'conv1');
  assert.equal(scopeModulePath('/Relu'), undefined);
  assert.equal(scopeModulePath('Conv_3'), undefined);
});

test('the PyTorch fixtures import with their module names, shapes and weight counts', () => {
  const residual = readOnnxModel(fixture('residual'));
  assert.equal(residual.graph.name, 'residual');
  assert.deepEqual(graphLayers(residual.graph).map((l) => [l.name, l.params]), [
    ['stem.0', 8 * 9], ['block1.conv1.0', 8 * 8 * 9], ['block1.conv2.0', 8 * 8 * 9], ['block2.conv1.0', 16 * 8 * 9],
    ['block2.conv2.0', 16 * 16 * 9], ['block2.shortcut.0', 16 * 8], ['block3.conv1.0', 16 * 16 * 9], ['block3.conv2.0', 16 * 16 * 9], ['fc', 160],
  ]);
  assert.equal(residual.graph.nodes.filter((n) => n.op === 'batchnorm').length, 8, 'batch norms kept as nodes');
  // the separable net's batch norms were folded by the exporter: weights renamed onnx::Conv_*, names from the scopes
  const separable = readOnnxModel(fixture('separable'));
  const rows = graphLayers(separable.graph);
  assert.deepEqual(rows.map((l) => [l.name, l.kind]), [
    ['stem.0.0', 'conv'], ['branch_a.0.0', 'dwconv'], ['branch_a.2.0', 'conv'], ['branch_b.0.0', 'conv'], ['unit.0.0', 'dwconv'], ['unit.2.0', 'conv'], ['fc', 'linear'],
  ]);
  assert.equal(separable.graph.nodes.find((n) => n.op === 'concat')!.shape.at(-1), 32);
  assert.equal(separable.graph.nodes.at(-1)!.op, 'activation', 'the softmax at the output is a node');
  // MatMul + Add became one dense layer with a bias, named after its weight
  const mlp = readOnnxModel(fixture('mlp'));
  assert.deepEqual(graphLayers(mlp.graph).map((l) => [l.name, l.params]), [['fc1', 784 * 64], ['fc2', 64 * 32], ['w3', 32 * 32], ['fc4', 320]]);
  assert.deepEqual(mlp.weights!.get('w3.bias')!.length, 32);
});

test('mpq\'s forward of every imported fixture equals onnxruntime\'s on 64 test digits (max abs diff ≤ 1e-4)', { skip: ORT_SKIP }, async () => {
  const n = 64;
  const images = mnist.test.images.subarray(0, n * 784);
  for (const { file, output, torch_test_top1: torchTop1 } of FIXTURES.fixtures) {
    const path = join(ONNX_FIXTURES_DIR, file);
    const model = createModel(readOnnxModel(path));
    const logits = model.forward(tf.tensor4d(images, [n, 28, 28, 1]), {}, false);
    const ours = file.startsWith('separable') ? tf.softmax(logits) : logits;
    const ref = (await runOnnx(path, { input: { data: Float32Array.from(images), dims: [n, 1, 28, 28] } }))[output];
    const diff = tf.max(tf.abs(tf.sub(ours, tf.tensor(ref.data, ref.dims)))).dataSync()[0];
    assert.ok(diff <= 1e-4, `${file}: max abs diff ${diff}`);
    // and the whole test split scores as PyTorch scored it (the images are the same, the split is mpq's)
    const all = createModel(readOnnxModel(path));
    let correct = 0;
    for (let start = 0; start < mnist.test.count; start += 500) {
      const count = Math.min(500, mnist.test.count - start);
      const pred = tf.argMax(all.forward(tf.tensor4d(mnist.test.images.subarray(start * 784, (start + count) * 784), [count, 28, 28, 1]), {}, false), 1).dataSync();
      for (let i = 0; i < count; i++) if (pred[i] === mnist.test.labels[start + i]) correct++;
    }
    assert.ok(Math.abs(correct / mnist.test.count - torchTop1) <= 0.0005 + 1e-9, `${file}: top-1 ${correct / mnist.test.count} vs PyTorch ${torchTop1}`);
  }
});

/** A one-Conv model with an extra node, hand-built through the encoder. */
function tinyModel(extra: (m: OnnxModel) => void): Uint8Array {
  const m = decodeOnnx(readFileSync(fixture('mlp')), 'mlp.onnx');
  extra(m);
  return encodeOnnx(m);
}

test('bad ONNX files: one line naming the file and the node, exit 2, nothing written', (t) => {
  const dir = tempDir('mpq-onnx-bad-');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const write = (name: string, bytes: Uint8Array | string) => {
    const path = join(dir, name);
    writeFileSync(path, bytes);
    return path;
  };
  const expectError = (path: string, pattern: RegExp) => assert.throws(() => readOnnxModel(path),
    (e: Error) => e instanceof UserError && !e.message.includes('\n') && e.message.startsWith(path) && pattern.test(e.message));
  const unknownOp = write('lstm.onnx', tinyModel((m) => { m.graph.nodes[2].opType = 'LSTM'; }));
  expectError(unknownOp, /node '\/Relu' \(LSTM\): op 'LSTM' is not supported/);
  expectError(write('dangling.onnx', tinyModel((m) => { m.graph.nodes[2].inputs = ['nowhere']; })), /node '\/Relu' \(Relu\): input 'nowhere' is produced by no node.*dangling/);
  expectError(write('cycle.onnx', tinyModel((m) => {
    // Relu reads Tanh's output, which depends on Relu through fc2, Sigmoid, MatMul
    m.graph.nodes[2].inputs = ['/Tanh_output_0'];
  })), /depends on its own output \(a cycle\)/);
  // two nodes of one module path would be two layers of one name (one indicator entry for both): refused
  // (a layer is named by its weight, else its node's scope: here two anonymous weights under one scope)
  expectError(write('duplicate.onnx', tinyModel((m) => {
    for (const [node, weight] of [[1, 'onnx::Gemm_a'], [4, 'onnx::Gemm_b']] as const) {
      m.graph.initializers.find((t) => t.name === m.graph.nodes[node].inputs[1])!.name = weight;
      m.graph.nodes[node].inputs[1] = weight;
      m.graph.nodes[node].name = '/fc1/Gemm';
    }
  })), /'fc1'.*the name is used twice/);
  expectError(write('opset.onnx', tinyModel((m) => { m.opsetImports = [{ domain: '', version: 9 }]; })), /opset 9 is not supported \(mpq reads opsets 11 to 21/);
  const bytes = readFileSync(fixture('residual'));
  expectError(write('truncated.onnx', bytes.subarray(0, bytes.length - 1000)), /./);
  expectError(write('json.onnx', '{"modelTopology": {}}'), /./);
  // through the CLI: exit 2, one line, no output file
  const out = join(dir, 'out');
  const r = runCli(['pretrain', '--model', unknownOp, '--bits', '4', '2', '--epochs', '1', '--limit', '8', '--out', join(out, 'ind.json'), '--no-progress']);
  assert.equal(r.status, 2, r.stderr);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /op 'LSTM' is not supported/);
  assert.equal(existsSync(out), false);
  const s = runCli(['search', '--model', unknownOp, '--indicators', join(dir, 'none.json')]);
  assert.equal(s.status, 2);
  assert.equal(readdirSync(dir).filter((f) => f.endsWith('.tmp')).length, 0);
});

test('an imported model through the whole pipeline: pretrain → search → finetune → pack → eval --packed', (t) => {
  const dir = tempDir('mpq-onnx-pipeline-');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const model = fixture('residual');
  const indicators = join(dir, 'indicators.json');
  const small = ['--epochs', '1', '--limit', '64', '--batch-size', '32', '--no-progress', '--seed', '1'];
  // no --from: the imported weights are the starting point
  const pretrain = runCli(['pretrain', '--model', model, '--bits', '4', '3', '2', ...small, '--out', indicators]);
  assert.equal(pretrain.status, 0, pretrain.stderr);
  const ind = JSON.parse(readFileSync(indicators, 'utf8'));
  assert.deepEqual(ind.layer_name, ['block1.conv1.0', 'block1.conv2.0', 'block2.conv1.0', 'block2.conv2.0', 'block2.shortcut.0', 'block3.conv1.0', 'block3.conv2.0']);
  assert.equal(ind.meta.model, model);
  // the search reads the model from the indicators' meta
  const policy = join(dir, 'policy.json');
  const search = runCli(['search', '--indicators', indicators, '--bits', '4', '3', '2', '--wb', '3', '--ab', '4', '--cr', '8', '--out', policy, '--json']);
  assert.equal(search.status, 0, search.stderr);
  const found = JSON.parse(search.stdout);
  assert.equal(found.status, 'optimal');
  assert.equal(found.model, 'residual');
  const ft = join(dir, 'ft');
  const finetune = runCli(['finetune', '--model', model, '--policy', policy, ...small, '--checkpoint', ft, '--json']);
  assert.equal(finetune.status, 0, finetune.stderr);
  const tuned = JSON.parse(finetune.stdout.trim().split('\n').at(-1)!);
  // the checkpoint records the graph: eval and pack need no --model
  const evaluated = runCli(['eval', '--from', ft, '--policy', policy, '--limit', '64', '--json']);
  assert.equal(evaluated.status, 0, evaluated.stderr);
  assert.equal(JSON.parse(evaluated.stdout).top1, tuned.top1);
  const packed = join(dir, 'residual.mpqp');
  const pack = runCli(['pack', '--from', ft, '--policy', policy, '--out', packed, '--json']);
  assert.equal(pack.status, 0, pack.stderr);
  const fromPacked = runCli(['eval', '--packed', packed, '--limit', '64', '--json']);
  assert.equal(fromPacked.status, 0, fromPacked.stderr);
  assert.equal(JSON.parse(fromPacked.stdout).top1, tuned.top1, 'the packed model scores as the checkpoint');
  assert.equal(JSON.parse(fromPacked.stdout).model, 'residual');
});
