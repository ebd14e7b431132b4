import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import type { Layer } from '../src/model/layer.js';
import { UserError } from '../src/util/errors.js';
import { ZOO_MODEL_NAMES, isZooModel, zooInput, zooLayerTable, zooLayers } from '../src/model/zoo.js';
import { REFERENCE_DIR } from './support.js';


const sum = (layers: Layer[], field: 'params' | 'macs'): number => layers.reduce((total, l) => total + l[field], 0);

function layer(model: string, name: string): Layer {
  const found = zooLayers(model).find((l) => l.name === name);
  assert.ok(found, `${model} has no layer ${name}`);
  return found;
}

/** A published figure rounded to `unit` (e.g. 1.81 G: unit 0.01e9) allows half a unit either way. */
function assertRounded(actual: number, published: number, unit: number, what: string): void {
  assert.ok(Math.abs(actual - published) <= unit / 2, `${what}: ${actual} is not ${published} rounded to ${unit}`);
}

test('the zoo lists its models', () => {
  assert.deepEqual(ZOO_MODEL_NAMES, [
    'resnet18',
    'resnet34',
    'resnet50',
    'resnet20',
    'mobilenetv1',
    'mobilenetv2',
    'mnist-cnn',
    'mobilenet-mini',
    'mobilenet-mini-cifar',
  ]);
  for (const name of ZOO_MODEL_NAMES) assert.ok(isZooModel(name));
  assert.equal(isZooModel('vgg16'), false);
  assert.equal(isZooModel('toString'), false);
});

// Exact weight totals are the published parameter counts minus BatchNorm's affine parameters
// (2 per channel) and the classifier bias, which LIMPQ does not count.
test('weight and MAC totals match the published figures', () => {
  const totals = Object.fromEntries(
    ZOO_MODEL_NAMES.map((m) => [m, { params: sum(zooLayers(m), 'params'), macs: sum(zooLayers(m), 'macs') }]),
  );
  // torchvision: 11,689,512 params - 2 x 4,800 BN channels - 1,000 fc bias; 1.81 GFLOPS (MACs)
  assert.equal(totals.resnet18.params, 11_678_912);
  assert.equal(totals.resnet18.macs, 1_814_073_344);
  assertRounded(totals.resnet18.macs, 1.81e9, 0.01e9, 'resnet18 MACs');
  // torchvision: 21,797,672 - 2 x 8,512 - 1,000; 3.66 GFLOPS
  assert.equal(totals.resnet34.params, 21_779_648);
  assert.equal(totals.resnet34.macs, 3_663_761_408);
  assertRounded(totals.resnet34.macs, 3.66e9, 0.01e9, 'resnet34 MACs');
  // torchvision: 25,557,032 - 2 x 26,560 - 1,000; 4.09 GFLOPS
  assert.equal(totals.resnet50.params, 25_502_912);
  assert.equal(totals.resnet50.macs, 4_089_184_256);
  assertRounded(totals.resnet50.macs, 4.09e9, 0.01e9, 'resnet50 MACs');
  // He et al. 2016: 0.27 M params (269,722 with BN and fc bias: - 2 x 688 - 10); ~41 M MACs
  assert.equal(totals.resnet20.params, 268_336);
  assert.equal(totals.resnet20.macs, 40_551_040);
  assertRounded(totals.resnet20.params, 0.27e6, 0.01e6, 'resnet20 params');
  assertRounded(totals.resnet20.macs, 41e6, 1e6, 'resnet20 MACs');
  // Howard et al. 2017: 4.2 M params (4,231,976 with BN and fc bias: - 2 x 10,944 - 1,000), 569 M mult-adds
  assert.equal(totals.mobilenetv1.params, 4_209_088);
  assert.equal(totals.mobilenetv1.macs, 568_740_352);
  assertRounded(totals.mobilenetv1.params, 4.2e6, 0.1e6, 'mobilenetv1 params');
  assertRounded(totals.mobilenetv1.macs, 569e6, 1e6, 'mobilenetv1 MACs');
  // torchvision: 3,504,872 - 2 x 17,056 - 1,000; 0.30 GFLOPS (Sandler et al. 2018: 300 M MAdds)
  assert.equal(totals.mobilenetv2.params, 3_469_760);
  assert.equal(totals.mobilenetv2.macs, 300_774_272);
  assertRounded(totals.mobilenetv2.macs, 0.3e9, 0.01e9, 'mobilenetv2 MACs');
  // 144 + 4,608 + 18,432 + 36,864 + 73,728 + 1,280
  assert.equal(totals['mnist-cnn'].params, 135_056);
  assert.equal(totals['mnist-cnn'].macs, 10_049_024);
  // first_conv 144 | stage1: dw 144, pw 512 | stage2: dw 288, pw 2,048; dw 576, pw 4,096 |
  // stage3: dw 576, pw 8,192; dw 1,152, pw 16,384 | fc 1,280
  assert.equal(totals['mobilenet-mini'].params, 35_392);
  // at 28x28: (144 + 144 + 512) x 784; at 14x14: (288 + 2,048 + 576 + 4,096) x 196;
  // at 7x7: (576 + 8,192 + 1,152 + 16,384) x 49; fc 1,280
  assert.equal(totals['mobilenet-mini'].macs, 800 * 784 + 7_008 * 196 + 26_304 * 49 + 1_280);
  // the 32x32 RGB variant: 288 stem weights (3 input channels), the same MACs at 32x32, 16x16, 8x8
  assert.equal(totals['mobilenet-mini-cifar'].params, 35_392 - 144 + 432);
  assert.equal(totals['mobilenet-mini-cifar'].macs, (432 + 144 + 512) * 1024 + 7_008 * 256 + 26_304 * 64 + 1_280);
});

test('every layer counts weights and MACs from its shape', () => {
  for (const model of ZOO_MODEL_NAMES) {
    for (const l of zooLayers(model)) {
      const [kh, kw] = l.kernel!;
      const [oh, ow] = l.outputSize!;
      assert.equal(l.params, l.outChannels! * (l.inChannels! / l.groups!) * kh * kw, `${model} ${l.name} params`);
      assert.equal(l.macs, oh * ow * l.params, `${model} ${l.name} macs`);
      assert.equal(l.kind === 'dwconv', l.groups! > 1 && l.groups === l.inChannels, `${model} ${l.name} kind`);
    }
  }
});

test('layer names, counts and order', () => {
  const expected: Record<string, { count: number; first: string; last: string }> = {
    resnet18: { count: 21, first: 'conv1', last: 'fc' },
    resnet34: { count: 37, first: 'conv1', last: 'fc' },
    resnet50: { count: 54, first: 'conv1', last: 'fc' },
    resnet20: { count: 20, first: 'conv1', last: 'fc' },
    mobilenetv1: { count: 28, first: 'first_conv.0', last: 'fc' },
    mobilenetv2: { count: 53, first: 'features.0.0', last: 'classifier.1' },
    'mnist-cnn': { count: 6, first: 'conv1', last: 'fc' },
    'mobilenet-mini': { count: 12, first: 'first_conv.0', last: 'fc' },
    'mobilenet-mini-cifar': { count: 12, first: 'first_conv.0', last: 'fc' },
  };
  for (const model of ZOO_MODEL_NAMES) {
    const names = zooLayers(model).map((l) => l.name);
    assert.equal(names.length, expected[model].count, `${model} layer count`);
    assert.equal(names[0], expected[model].first);
    assert.equal(names.at(-1), expected[model].last);
    assert.equal(new Set(names).size, names.length, `${model} names are unique`);
  }
  assert.deepEqual(
    zooLayers('resnet50').slice(0, 6).map((l) => l.name),
    ['conv1', 'layer1.0.conv1', 'layer1.0.conv2', 'layer1.0.conv3', 'layer1.0.downsample.0', 'layer1.1.conv1'],
  );
  assert.deepEqual(
    zooLayers('resnet18').filter((l) => l.name.includes('downsample')).map((l) => l.name),
    ['layer2.0.downsample.0', 'layer3.0.downsample.0', 'layer4.0.downsample.0'],
  );
  assert.deepEqual(
    zooLayers('resnet20').slice(0, 3).map((l) => l.name),
    ['conv1', 'layer1.0.conv1', 'layer1.0.conv2'],
  );
  assert.deepEqual(
    zooLayers('mobilenetv1').slice(0, 5).map((l) => l.name),
    [
      'first_conv.0',
      'features.stage1.unit1.dw_conv.conv',
      'features.stage1.unit1.pw_conv.conv',
      'features.stage2.unit1.dw_conv.conv',
      'features.stage2.unit1.pw_conv.conv',
    ],
  );
  assert.deepEqual(
    zooLayers('mobilenetv2').slice(0, 7).map((l) => l.name),
    [
      'features.0.0',
      'features.1.conv.0.0',
      'features.1.conv.1',
      'features.2.conv.0.0',
      'features.2.conv.1.0',
      'features.2.conv.2',
      'features.3.conv.0.0',
    ],
  );
  assert.deepEqual(
    zooLayers('mobilenetv2').slice(-3).map((l) => l.name),
    ['features.17.conv.2', 'features.18.0', 'classifier.1'],
  );
  assert.deepEqual(
    zooLayers('mnist-cnn').map((l) => l.name),
    ['conv1', 'conv2', 'conv3', 'conv4', 'conv5', 'fc'],
  );
});

test('resnet50 layer shapes', () => {
  assert.deepEqual(layer('resnet50', 'conv1'), {
    name: 'conv1',
    kind: 'conv',
    inChannels: 3,
    outChannels: 64,
    kernel: [7, 7],
    stride: 2,
    groups: 1,
    outputSize: [112, 112],
    params: 9_408,
    macs: 118_013_952,
  });
  // after the 3x3 stride-2 max pool
  assert.deepEqual(layer('resnet50', 'layer1.0.conv1').outputSize, [56, 56]);
  // v1.5: the stride sits on the 3x3 conv
  const conv2 = layer('resnet50', 'layer2.0.conv2');
  assert.equal(conv2.stride, 2);
  assert.deepEqual(conv2.kernel, [3, 3]);
  assert.deepEqual(conv2.outputSize, [28, 28]);
  assert.equal(conv2.macs, 115_605_504);
  assert.equal(layer('resnet50', 'layer2.0.conv1').stride, 1);
  const downsample = layer('resnet50', 'layer2.0.downsample.0');
  assert.equal(downsample.stride, 2);
  assert.equal(downsample.inChannels, 256);
  assert.equal(downsample.outChannels, 512);
  assert.deepEqual(downsample.outputSize, [28, 28]);
  assert.deepEqual(layer('resnet50', 'layer4.2.conv3').outputSize, [7, 7]);
  assert.deepEqual(layer('resnet50', 'fc'), {
    name: 'fc',
    kind: 'linear',
    inChannels: 2048,
    outChannels: 1000,
    kernel: [1, 1],
    stride: 1,
    groups: 1,
    outputSize: [1, 1],
    params: 2_048_000,
    macs: 2_048_000,
  });
});

test('resnet20, mobilenet and mnist-cnn layer shapes', () => {
  const r20 = layer('resnet20', 'layer2.0.conv1');
  assert.equal(r20.stride, 2);
  assert.equal(r20.inChannels, 16);
  assert.equal(r20.outChannels, 32);
  assert.deepEqual(r20.outputSize, [16, 16]);
  assert.deepEqual(layer('resnet20', 'layer3.2.conv2').outputSize, [8, 8]);
  assert.equal(layer('resnet20', 'fc').params, 640);
  assert.ok(zooLayers('resnet20').every((l) => !l.name.includes('downsample')), 'option-A shortcuts have no conv');

  const dw = layer('mobilenetv1', 'features.stage2.unit1.dw_conv.conv');
  assert.equal(dw.kind, 'dwconv');
  assert.equal(dw.groups, 64);
  assert.equal(dw.stride, 2);
  assert.deepEqual(dw.outputSize, [56, 56]);
  assert.equal(layer('mobilenetv1', 'features.stage2.unit2.dw_conv.conv').stride, 1);
  assert.deepEqual(layer('mobilenetv1', 'features.stage5.unit2.pw_conv.conv').outputSize, [7, 7]);
  assert.equal(layer('mobilenetv1', 'fc').inChannels, 1024);

  const expandDw = layer('mobilenetv2', 'features.2.conv.1.0');
  assert.equal(expandDw.kind, 'dwconv');
  assert.equal(expandDw.groups, 96);
  assert.deepEqual(expandDw.outputSize, [56, 56]);
  assert.equal(layer('mobilenetv2', 'features.1.conv.0.0').groups, 32);
  assert.equal(layer('mobilenetv2', 'features.18.0').inChannels, 320);
  assert.deepEqual(layer('mobilenetv2', 'features.18.0').outputSize, [7, 7]);

  // kind, in, out, groups, stride, output size
  assert.deepEqual(
    zooLayers('mobilenet-mini').map((l) => [l.name, l.kind, l.inChannels, l.outChannels, l.groups, l.stride, ...l.outputSize!]),
    [
      ['first_conv.0', 'conv', 1, 16, 1, 1, 28, 28],
      ['features.stage1.unit1.dw_conv.conv', 'dwconv', 16, 16, 16, 1, 28, 28],
      ['features.stage1.unit1.pw_conv.conv', 'conv', 16, 32, 1, 1, 28, 28],
      ['features.stage2.unit1.dw_conv.conv', 'dwconv', 32, 32, 32, 2, 14, 14],
      ['features.stage2.unit1.pw_conv.conv', 'conv', 32, 64, 1, 1, 14, 14],
      ['features.stage2.unit2.dw_conv.conv', 'dwconv', 64, 64, 64, 1, 14, 14],
      ['features.stage2.unit2.pw_conv.conv', 'conv', 64, 64, 1, 1, 14, 14],
      ['features.stage3.unit1.dw_conv.conv', 'dwconv', 64, 64, 64, 2, 7, 7],
      ['features.stage3.unit1.pw_conv.conv', 'conv', 64, 128, 1, 1, 7, 7],
      ['features.stage3.unit2.dw_conv.conv', 'dwconv', 128, 128, 128, 1, 7, 7],
      ['features.stage3.unit2.pw_conv.conv', 'conv', 128, 128, 1, 1, 7, 7],
      ['fc', 'linear', 128, 10, 1, 1, 1, 1],
    ],
  );

  assert.deepEqual(
    zooLayers('mnist-cnn').map((l) => [l.inChannels, l.outChannels, l.stride, ...l.outputSize!]),
    [
      [1, 16, 1, 28, 28],
      [16, 32, 2, 14, 14],
      [32, 64, 1, 14, 14],
      [64, 64, 2, 7, 7],
      [64, 128, 1, 7, 7],
      [128, 10, 1, 1, 1],
    ],
  );
});

test('inputs', () => {
  assert.deepEqual(zooInput('resnet50'), [3, 224, 224]);
  assert.deepEqual(zooInput('resnet20'), [3, 32, 32]);
  assert.deepEqual(zooInput('mnist-cnn'), [1, 28, 28]);
  assert.deepEqual(zooInput('mobilenet-mini'), [1, 28, 28]);
  assert.deepEqual(zooInput('mobilenet-mini-cifar'), [3, 32, 32]);
});

test('layer table: first and last layer fixed by default', () => {
  const table = zooLayerTable('resnet50');
  assert.equal(table.model, 'resnet50');
  assert.deepEqual(table.input, [3, 224, 224]);
  assert.equal(table.layers.length, 52);
  assert.equal(table.layers[0].name, 'layer1.0.conv1');
  assert.equal(table.layers.at(-1)!.name, 'layer4.2.conv3');
  assert.deepEqual(
    table.fixed.map((l) => [l.name, l.weightBits, l.actBits]),
    [
      ['conv1', 8, 8],
      ['fc', 8, 8],
    ],
  );
  assert.equal(zooLayerTable('resnet20').layers.length, 18);
  const mini = zooLayerTable('mobilenet-mini');
  assert.deepEqual(mini.fixed.map((l) => l.name), ['first_conv.0', 'fc']);
  assert.equal(mini.layers.length, 10);

  const fourBit = zooLayerTable('mnist-cnn', { fixedBits: 4 });
  assert.deepEqual(
    fourBit.fixed.map((l) => [l.name, l.weightBits, l.actBits]),
    [
      ['conv1', 4, 4],
      ['fc', 4, 4],
    ],
  );

  const all = zooLayerTable('resnet50', { fixFirstLast: false });
  assert.deepEqual(all.fixed, []);
  assert.deepEqual(all.layers, zooLayers('resnet50'));
});

test('unknown model: a UserError naming it and the known models', () => {
  assert.throws(
    () => zooLayers('vgg16'),
    (err: unknown) => {
      assert.ok(err instanceof UserError);
      assert.match(err.message, /vgg16/);
      for (const name of ZOO_MODEL_NAMES) assert.ok(err.message.includes(name), `lists ${name}`);
      return true;
    },
  );
  assert.throws(() => zooLayerTable('vgg16'), UserError);
  assert.throws(() => zooInput('vgg16'), UserError);
});

interface ReferenceArithmetic {
  fixed: { name: string; params: number; macs: number }[];
  layers: { name: string; params: number; macs: number }[];
}

const referenceFile = `${REFERENCE_DIR}/layers-reference-arithmetic.json`;

test('resnet50 agrees with the LIMPQ reference arithmetic', (t) => {
  if (!existsSync(referenceFile)) {
    t.skip(`${referenceFile} not present`);
    return;
  }
  const reference = JSON.parse(readFileSync(referenceFile, 'utf8')) as ReferenceArithmetic;
  const table = zooLayerTable('resnet50');
  assert.deepEqual(
    table.layers.map((l) => l.name),
    reference.layers.map((l) => l.name.replace(/^module\./, '')),
  );
  assert.deepEqual(
    table.fixed.map((l) => [l.name, l.params, l.macs]),
    reference.fixed.map((l) => [l.name, l.params, l.macs]),
  );
  table.layers.forEach((l, i) => {
    const ref = reference.layers[i];
    assert.equal(l.params, ref.params, `${l.name} params`);
    if (l.stride === 1) {
      assert.equal(l.macs, ref.macs, `${l.name} macs`);
    } else {
      // The reference does not floor the output size of stride-2 layers: their input is 2 x out,
      // so the unfloored size is (2 out + 2 pad - kernel) / 2 + 1 = out + 0.5 (3x3 pad 1 and 1x1
      // pad 0 alike), and it counts floor((out + 0.5)^2) output positions, e.g. 812 for 28x28.
      const [oh, ow] = l.outputSize!;
      assert.equal(ref.macs, Math.floor((oh + 0.5) * (ow + 0.5)) * l.params, `${l.name} reference macs`);
      assert.ok(ref.macs > l.macs, `${l.name}: the reference over-counts`);
    }
  });
});
