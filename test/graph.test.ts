import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { GraphBuilder, graphFromJson, graphLayers, graphToJson, samePadding, type GraphModel } from '../src/model/graph.js';
import { parseGraphJson } from '../src/model/graph-file.js';
import { fixedLayerNames, graphLayerTable } from '../src/model/graph-table.js';
import { zooGraph, zooLayers, ZOO_MODEL_NAMES } from '../src/model/zoo.js';
import { convolve } from '../src/train/layers.js';
import { createModel, describeLayers } from '../src/train/models.js';
import { Prng } from '../src/util/prng.js';
import { UserError } from '../src/util/errors.js';

await tf.setBackend('cpu');

const random = (n: number, seed: number) => {
  const rng = new Prng(seed);
  return Float32Array.from({ length: n }, () => rng.normal());
};
const maxDiff = (a: tf.Tensor, b: tf.Tensor) => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0];

test('shape rules: asymmetric pads, dilation, groups, ceil-free pooling; layer rows count weights and MACs', () => {
  const b = new GraphBuilder('g', 'test');
  b.input('x', [9, 10, 4]);
  // TF `same` at stride 2 on 9 rows: out 5, 9 → pad 1 + 1; 10 cols: out 5, pad 0 + 1 (the odd pixel after)
  assert.deepEqual(samePadding(9, 3, 2), [1, 1]);
  assert.deepEqual(samePadding(10, 3, 2), [0, 1]);
  b.add('c', { op: 'conv', filters: 6, kernel: [3, 3], strides: [2, 2], dilations: [1, 1], pads: [1, 0, 1, 1], groups: 2, bias: true }, ['x']);
  assert.deepEqual(b.shape('c'), [5, 5, 6]);
  // dilation 2, 3x3: span 5 → 5 - 5 + 1 = 1
  b.add('d', { op: 'conv', filters: 6, kernel: [3, 3], strides: [1, 1], dilations: [2, 2], pads: [0, 0, 0, 0], groups: 6, bias: false }, ['c']);
  assert.deepEqual(b.shape('d'), [1, 1, 6]);
  b.add('f', { op: 'flatten', channelsFirst: true }, ['d']);
  b.add('fc', { op: 'dense', units: 3, bias: true }, ['f']);
  const { graph } = b.build();
  const rows = graphLayers(graph);
  assert.deepEqual(rows.map((r) => [r.name, r.kind, r.params, r.macs, r.groups]), [
    ['c', 'conv', 6 * 2 * 9, 6 * 2 * 9 * 25, 2],
    ['d', 'dwconv', 6 * 9, 6 * 9, 6],
    ['fc', 'linear', 18, 18, 1],
  ]);
  assert.throws(() => b.add('c', { op: 'identity' }, ['x']), /node 'c': the name is used twice/);
  assert.throws(() => b.add('bad', { op: 'conv', filters: 5, kernel: [3, 3], strides: [1, 1], dilations: [1, 1], pads: [0, 0, 0, 0], groups: 2, bias: false }, ['x']),
    /groups 2 must divide 4 input and 5 output channels/);
  assert.throws(() => b.add('big', { op: 'maxpool', kernel: [20, 20], strides: [1, 1], pads: [0, 0, 0, 0] }, ['x']), /pool 20x20 does not fit a 9x10 input/);
  assert.throws(() => b.add('sum', { op: 'add' }, ['x', 'c']), /adds inputs of different shapes/);
  assert.throws(() => b.add('late', { op: 'identity' }, ['nowhere']), /node 'nowhere': is used as an input but not defined/);
});

test('convolve: grouped, depthwise with a multiplier, dilated and asymmetric padding equal their definitions', () => {
  const x = tf.tensor4d(random(2 * 7 * 6 * 4, 1), [2, 7, 6, 4]);
  const shape = { inChannels: 4, outChannels: 6, kernel: [3, 3] as [number, number], strides: [1, 1] as [number, number], dilations: [1, 1] as [number, number] };
  // groups 2: each half of the output channels sees its half of the inputs
  const w = tf.tensor4d(random(3 * 3 * 2 * 6, 2), [3, 3, 2, 6]);
  const grouped = convolve(x, w, { ...shape, pads: [1, 1, 1, 1], groups: 2 });
  const [x0, x1] = tf.split(x, 2, 3) as tf.Tensor4D[];
  const [w0, w1] = tf.split(w, 2, 3) as tf.Tensor4D[];
  const reference = tf.concat([tf.conv2d(x0, w0, 1, 1), tf.conv2d(x1, w1, 1, 1)], 3);
  assert.ok(maxDiff(grouped, reference) < 1e-5);
  // depthwise, multiplier 2: output channel c·2 + m reads input channel c
  const dw = tf.tensor4d(random(3 * 3 * 1 * 8, 3), [3, 3, 1, 8]);
  const depthwise = convolve(x, dw, { ...shape, outChannels: 8, pads: [0, 0, 0, 0], groups: 4 });
  const perChannel = tf.concat(tf.split(x, 4, 3).map((xc, c) => tf.conv2d(xc as tf.Tensor4D, tf.slice(dw, [0, 0, 0, 2 * c], [3, 3, 1, 2]) as tf.Tensor4D, 1, 'valid')), 3);
  assert.ok(maxDiff(depthwise, perChannel) < 1e-5);
  // dilation 2 against tfjs's own dilated convolution (forward only: it has no gradient)
  const wd = tf.tensor4d(random(3 * 3 * 4 * 6, 4), [3, 3, 4, 6]);
  const dilated = convolve(x, wd, { ...shape, dilations: [2, 2], pads: [0, 0, 0, 0], groups: 1 });
  assert.ok(maxDiff(dilated, tf.conv2d(x, wd, 1, 'valid', 'NHWC', 2)) < 1e-5);
  // asymmetric: TF `same` at stride 2 is tfjs's own 'same'
  const same = convolve(x, wd, { ...shape, strides: [2, 2], pads: [1, 0, 1, 1], groups: 1 });
  assert.deepEqual(samePadding(7, 3, 2), [1, 1]);
  assert.deepEqual(samePadding(6, 3, 2), [0, 1]);
  assert.ok(maxDiff(same, tf.conv2d(x, wd, 2, 'same')) < 1e-5);
  // and it trains: gradients flow through the dilated kernel
  const grad = tf.grad((k: tf.Tensor) => tf.sum(convolve(x, k as tf.Tensor4D, { ...shape, dilations: [2, 2], pads: [0, 0, 0, 0], groups: 1 })))(wd);
  assert.ok(tf.sum(tf.abs(grad)).dataSync()[0] > 0);
});

test('the interpreter: a graph with every op runs, weights load, pooling pads and softmax at the output', () => {
  const b = new GraphBuilder('every-op', 'test');
  b.input('x', [6, 6, 2]);
  const w = random(3 * 3 * 2 * 4, 5);
  b.add('conv', { op: 'conv', filters: 4, kernel: [3, 3], strides: [1, 1], dilations: [1, 1], pads: [1, 1, 1, 1], groups: 1, bias: true }, ['x'], { weight: w, bias: Float32Array.of(0.1, -0.2, 0.3, 0) });
  b.add('bn', { op: 'batchnorm', epsilon: 1e-3 }, ['conv'], {
    gamma: Float32Array.of(1, 2, 0.5, 1), beta: Float32Array.of(0, 0.1, 0, -0.1), mean: Float32Array.of(0.1, 0, 0, 0.2), variance: Float32Array.of(1, 4, 0.25, 1),
  });
  b.add('act', { op: 'activation', fn: 'hardswish' }, ['bn']);
  b.add('pool', { op: 'avgpool', kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], countIncludePad: false }, ['act']);
  b.add('mp', { op: 'maxpool', kernel: [2, 2], strides: [1, 1], pads: [0, 0, 1, 1] }, ['act']);
  b.add('pad', { op: 'pad', pads: [[0, 0], [0, 0], [1, 1]], value: 0 }, ['pool']);
  b.add('slice', { op: 'slice', ranges: [[0, 3, 1], [0, 3, 1], [0, 4, 1]] }, ['mp']);
  b.add('gate', { op: 'activation', fn: 'sigmoid' }, ['slice']);
  b.add('cat', { op: 'concat', axis: 2 }, ['pad', 'gate']);
  b.add('gap', { op: 'globalavgpool', keepDims: true }, ['cat']);
  b.add('flat', { op: 'flatten', channelsFirst: true }, ['gap']);
  b.add('fc', { op: 'dense', units: 3, bias: true }, ['flat']);
  b.add('prob', { op: 'activation', fn: 'softmax' }, ['fc']);
  const graphModel = b.build();
  const model = createModel(graphModel);
  assert.equal(model.numClasses, 3);
  assert.deepEqual(model.fixedLayerNames, ['conv', 'fc']);
  const x = tf.tensor4d(random(2 * 72, 6), [2, 6, 6, 2]);
  // by hand: conv + bias → BN (ε 1e-3) → hardswish
  const conv = tf.add(tf.conv2d(x, tf.tensor4d(w, [3, 3, 2, 4]), 1, 1), tf.tensor1d([0.1, -0.2, 0.3, 0]));
  const bn = tf.add(tf.mul(tf.sub(conv, [0.1, 0, 0, 0.2]), tf.div([1, 2, 0.5, 1], tf.sqrt(tf.add([1, 4, 0.25, 1], 1e-3)))), [0, 0.1, 0, -0.1]);
  const act = tf.mul(bn, tf.div(tf.relu6(tf.add(bn, 3)), 6)) as tf.Tensor4D;
  // avg pool with count_include_pad 0 is TF's 'same' average here (6 → 3, pads 1 / 1)
  const pool = tf.avgPool(tf.pad(act, [[0, 0], [1, 1], [1, 1], [0, 0]]), 3, 2, 'valid');
  const sums = tf.avgPool(tf.pad(tf.onesLike(act), [[0, 0], [1, 1], [1, 1], [0, 0]]), 3, 2, 'valid');
  const averaged = tf.div(pool, sums);
  const mp = tf.maxPool(tf.pad(act, [[0, 0], [0, 1], [0, 1], [0, 0]], -Infinity), 2, 1, 'valid');
  const cat = tf.concat([tf.pad(averaged, [[0, 0], [0, 0], [0, 0], [1, 1]]), tf.sigmoid(tf.slice(mp, [0, 0, 0, 0], [2, 3, 3, 4]))], 3);
  const features = tf.mean(cat, [1, 2]);
  const fc = model.layers.find((l) => l.name === 'fc')!;
  const expected = tf.add(tf.matMul(features, fc.weight), fc.bias!);
  assert.ok(maxDiff(model.forward(x, {}, false), expected) < 1e-5, 'logits: the softmax at the output is left out');
  // the BN after conv is switchable by conv's weight bits, and BN folding finds it
  assert.equal(model.layerBatchNorms.get('conv')?.name, 'bn');
  assert.equal(model.batchNormKey(model.batchNorms[0], { conv: { weightBits: 8, actBits: 8 } }), '8');
  // the traced layer rows are the graph's
  assert.deepEqual(describeLayers(model), graphLayers(graphModel.graph));
});

test('every zoo model is a graph whose traced layer rows are its table rows', () => {
  for (const name of ['mnist-cnn', 'resnet20', 'mobilenet-mini']) {
    assert.deepEqual(describeLayers(createModel(name)), zooLayers(name), name);
  }
  // the ImageNet zoo graphs hold their batch norms, activations, pools and adds too
  const resnet50 = zooGraph('resnet50');
  assert.equal(resnet50.nodes.filter((n) => n.op === 'batchnorm').length, 53);
  assert.equal(resnet50.nodes.filter((n) => n.op === 'add').length, 16);
  assert.equal(zooGraph('mobilenetv2').nodes.filter((n) => n.op === 'add').length, 10);
  for (const name of ZOO_MODEL_NAMES) assert.deepEqual(graphFromJson(graphToJson(zooGraph(name))), zooGraph(name), `${name} round trip`);
});

test('graph records: round trip, and edited records are one line naming the field or node', () => {
  const { graph } = createGraph();
  assert.deepEqual(parseGraphJson(JSON.parse(JSON.stringify(graphToJson(graph))), 'ckpt: graph'), graph);
  const json = graphToJson(graph);
  const edit = (f: (j: ReturnType<typeof graphToJson>) => void) => {
    const copy = JSON.parse(JSON.stringify(json));
    f(copy);
    return copy;
  };
  const expectError = (data: unknown, pattern: RegExp) => assert.throws(() => parseGraphJson(data, 'ckpt: graph'),
    (e: Error) => e instanceof UserError && !e.message.includes('\n') && pattern.test(e.message));
  expectError(edit((j) => { (j.nodes[1] as { units: unknown }).units = 'many'; }), /^ckpt: graph\.nodes\[1\]\.units: /);
  expectError(edit((j) => { (j.nodes[1] as { op: string }).op = 'lstm'; }), /^ckpt: graph\.nodes\[1\]/);
  expectError(edit((j) => { j.nodes[2].shape = [9]; }), /^ckpt: graph: node 'fc': recorded shape \[9\], its inputs make \[3\]/);
  expectError(edit((j) => { j.nodes[2].inputs = ['fc']; }), /node 'fc': is used as an input but not defined/);
  expectError(edit((j) => { (j as { format: string }).format = 'x'; }), /^ckpt: graph\.format: expected 'mpq-graph'/);
});

function createGraph(): GraphModel {
  const b = new GraphBuilder('small', 'onnx', 'nchw');
  b.input('x', [4]);
  b.add('fc1', { op: 'dense', units: 5, bias: true }, ['x']);
  b.add('fc', { op: 'dense', units: 3, bias: false }, ['fc1']);
  return b.build();
}

test('fixed layers: first and last by default, --fixed / --searchable, unknown names refused', () => {
  const graph = zooGraph('mnist-cnn');
  assert.deepEqual(fixedLayerNames(graph), ['conv1', 'fc']);
  assert.deepEqual(fixedLayerNames(graph, { fixFirstLast: false }), []);
  assert.deepEqual(fixedLayerNames(graph, { fixed: ['fc', 'conv3'] }), ['conv3', 'fc'], 'in forward order');
  assert.deepEqual(fixedLayerNames(graph, { searchable: ['conv2', 'conv3'] }), ['conv1', 'conv4', 'conv5', 'fc']);
  assert.throws(() => fixedLayerNames(graph, { fixed: ['bn1'] }), /^UserError: layers\.fixed: 'bn1' is not a conv or dense layer of mnist-cnn/);
  assert.throws(() => fixedLayerNames(graph, { searchable: ['bn1'] }), /^UserError: layers\.searchable: 'bn1' is not/);
  assert.throws(() => fixedLayerNames(graph, { fixed: ['bn1'], fixedFrom: "p.json: field 'fixed'" }), /^UserError: p\.json: field 'fixed': 'bn1' is not/);
  assert.throws(() => fixedLayerNames(graph, { fixed: ['fc'], searchable: ['conv2'] }), /layers\.fixed and layers\.searchable: give one of them/);
  const table = graphLayerTable(graph, 'mnist-cnn', { searchable: ['conv2', 'conv3'] });
  assert.deepEqual(table.layers.map((l) => l.name), ['conv2', 'conv3']);
  assert.deepEqual(table.fixed.map((l) => [l.name, l.weightBits, l.actBits]), [['conv1', 8, 8], ['conv4', 8, 8], ['conv5', 8, 8], ['fc', 8, 8]]);
  assert.throws(() => graphLayerTable(graph, 'm', { searchable: [] }), /none is left to search/);
  const model = createModel('mnist-cnn', { bits: [4], layers: { searchable: ['conv2', 'conv3'] } });
  assert.deepEqual(model.searchableLayerNames, ['conv2', 'conv3']);
  assert.deepEqual(model.batchNorms.map((bn) => [...bn.sets.keys()].join()), ['fp,8', 'fp,4', 'fp,4', 'fp,8', 'fp,8']);
});
