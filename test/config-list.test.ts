import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportPolicy } from '../src/export/formats.js';
import { readPolicy } from '../src/export/policy-file.js';
import { configListBits, parseConfigList, readConfigList, resolveConfigList, type ConfigLayer } from '../src/train/config-list.js';
import { REPO_ROOT } from './support.js';

/** mnist-cnn as a config list sees it: conv1 takes the image, every other layer a ReLU's output. */
const MNIST_LAYERS: ConfigLayer[] = [
  { name: 'conv1', kind: 'conv', reluInput: false, fixed: true },
  ...['conv2', 'conv3', 'conv4', 'conv5'].map((name) => ({ name, kind: 'conv' as const, reluInput: true, fixed: false })),
  { name: 'fc', kind: 'linear', reluInput: true, fixed: true },
];
const OPTIONS = { source: 'c.json', model: 'mnist-cnn', fixedBits: 8 };

function rejects(data: unknown, quantizer: Parameters<typeof parseConfigList>[2], message: string): void {
  assert.throws(() => parseConfigList(data, 'c.json', quantizer), (err: Error) => {
    assert.equal(err.name, 'UserError');
    assert.equal(err.message, message);
    return true;
  });
}

test('config list schema: one-line errors naming the entry and field', () => {
  rejects({ quant_types: ['weight'] }, 'qat', 'c.json: config_list: expected a JSON array of config entries (an NNI config_list)');
  rejects([], 'qat', 'c.json: config_list: expected at least one config entry');
  rejects([{ quant_types: ['weight'], quant_bits: 40, op_types: ['Conv2d'] }], 'qat', 'c.json: config_list[0].quant_bits: expected an integer bit-width in 2..16');
  rejects([{ quant_types: ['weight'], quant_bits: { weight: 'x' }, op_types: ['Conv2d'] }], 'qat',
    'c.json: config_list[0].quant_bits.weight: expected an integer bit-width in 2..16');
  rejects([{ quant_types: ['weight'], quant_bits: [4], op_types: ['Conv2d'] }], 'qat',
    'c.json: config_list[0].quant_bits: expected an integer bit-width or an object {weight, input, output: bits}');
  rejects([{ quant_types: ['weight', 'input'], quant_bits: { weight: 4 }, op_types: ['Conv2d'] }], 'qat',
    "c.json: config_list[0].quant_bits: no bits for quant type 'input'");
  rejects([{ quant_types: ['weight'], quant_bits: { weight: 4, output: 4 }, op_types: ['Conv2d'] }], 'qat',
    "c.json: config_list[0].quant_bits.output: 'output' is not in quant_types");
  rejects([{ quant_types: ['weight'], quant_bits: 8, op_types: ['Conv2d'] }, { quant_types: ['wieght'], quant_bits: 4, op_names: ['conv2'] }], 'qat',
    "c.json: config_list[1].quant_types[0]: expected one of 'weight', 'input', 'output'");
  rejects([{ quant_types: ['weight'], quant_bits: 4, op_types: ['BatchNorm2d'] }], 'qat',
    "c.json: config_list[0].op_types[0]: 'BatchNorm2d' is not an op type mpq quantizes (Conv2d, Conv2D, Linear, Dense, ReLU, default)");
  rejects([{ quant_types: ['weight'], quant_bits: 4 }], 'qat', 'c.json: config_list[0]: give op_types or op_names (the ops this entry applies to)');
  rejects([{ q_bits: 8, op_types: ['default'] }], 'qat', "c.json: config_list[0]: unknown field 'q_bits' (and 2 more problems)");
  rejects([{ exclude: true, quant_bits: 4, op_names: ['conv1'] }], 'qat', 'c.json: config_list[0].quant_bits: not used in an entry with exclude: true');
  rejects([{ quant_types: ['weight'], quant_bits: 4, quant_start_step: -1, op_types: ['Conv2d'] }], 'qat',
    'c.json: config_list[0].quant_start_step: expected an integer >= 0');
});

test('config list: what each quantizer takes, and which op types a quant type applies to', () => {
  rejects([{ quant_types: ['weight'], quant_bits: 4, op_types: ['Conv2d'] }], 'naive', 'c.json: config_list[0].quant_bits: naive quantizes weights to 8 bits only, got 4');
  rejects([{ quant_types: ['weight', 'input'], quant_bits: 4, op_types: ['Conv2d'] }], 'dorefa',
    "c.json: config_list[0].quant_types[1]: 'input' is not quantized by dorefa (it takes: weight)");
  // quant_start_step: the delay wraps every quantizer, not QAT's alone
  for (const quantizer of ['lsq', 'nuq', 'qat', 'dorefa'] as const) {
    assert.equal(parseConfigList([{ quant_types: ['weight'], quant_bits: 4, quant_start_step: 10, op_types: ['Conv2d'] }], 'c.json', quantizer)[0]!.quant_start_step, 10);
  }
  rejects([{ quant_types: ['weight'], quant_bits: { weight: 12 }, op_types: ['Conv2d'] }], 'nuq', 'c.json: config_list[0].quant_bits.weight: nuq takes 2..8 weight bits or 32, got 12');
  rejects([{ quant_types: ['output'], quant_bits: 4, op_types: ['Conv2d'] }], 'qat',
    "c.json: config_list[0].quant_types[0]: 'output' applies to op_types ['ReLU'] alone (a layer's output is the next layer's input: quantize its 'input')");
  rejects([{ quant_types: ['weight'], quant_bits: 4, op_types: ['ReLU'] }], 'qat',
    "c.json: config_list[0].quant_types[0]: 'weight' needs a Conv2d, Linear or default op type (a ReLU has only an output)");
  // naive's whole configuration can be nothing but its op types
  assert.equal(parseConfigList([{ quant_types: ['weight'], quant_bits: 8, op_types: ['default'] }], 'c.json', 'naive').length, 1);
});

test('config list on mnist-cnn: exclude, ReLU outputs become the next layers\' inputs, start steps per site', () => {
  const entries = parseConfigList([
    { quant_types: ['weight'], quant_bits: { weight: 4 }, op_types: ['Conv2d'] },
    { exclude: true, op_names: ['conv1'] },
    { quant_types: ['output'], quant_bits: 8, quant_start_step: 100, op_types: ['ReLU'] },
  ], 'c.json', 'qat');
  assert.deepEqual(configListBits(entries), [8, 4]);
  const conv = { weight: { bits: 4, startStep: 0 }, input: { bits: 8, startStep: 100 } };
  assert.deepEqual(resolveConfigList(entries, MNIST_LAYERS, OPTIONS), {
    conv2: conv, conv3: conv, conv4: conv, conv5: conv,
    // Linear is not Conv2d: fc keeps its weights, its input is a (pooled) ReLU output
    fc: { input: { bits: 8, startStep: 100 } },
  });
});

test('config list: the last matching entry wins whole (NNI select_config), even without an input type', () => {
  const entries = parseConfigList([
    { quant_types: ['weight', 'input'], quant_bits: 8, op_types: ['default'] },
    { quant_types: ['weight', 'input'], quant_bits: { weight: 4, input: 6 }, op_names: ['conv2', 'conv3', 'conv4', 'conv5'] },
    { quant_types: ['weight'], quant_bits: 2, op_names: ['conv3'] },
  ], 'c.json', 'lsq');
  const resolved = resolveConfigList(entries, MNIST_LAYERS, OPTIONS);
  assert.deepEqual(resolved.conv1, { weight: { bits: 8, startStep: 0 }, input: { bits: 8, startStep: 0 } });
  assert.deepEqual(resolved.conv2, { weight: { bits: 4, startStep: 0 }, input: { bits: 6, startStep: 0 } });
  assert.deepEqual(resolved.conv3, { weight: { bits: 2, startStep: 0 } });
  assert.deepEqual(resolved.fc, { weight: { bits: 8, startStep: 0 }, input: { bits: 8, startStep: 0 } });
});

test('config list against the model: unknown op names, first/last layers only at 8 bits, nothing selected', () => {
  const resolveError = (data: unknown, message: string) => assert.throws(
    () => resolveConfigList(parseConfigList(data, 'c.json', 'qat'), MNIST_LAYERS, OPTIONS), { message });
  resolveError([{ quant_types: ['weight'], quant_bits: 4, op_names: ['conv2', 'conv9'] }],
    "c.json: config_list[0].op_names[1]: 'conv9' is not a quantized layer of mnist-cnn (conv1, conv2, conv3, conv4, conv5, fc)");
  resolveError([{ quant_types: ['weight'], quant_bits: 4, op_types: ['Conv2d'] }],
    'c.json: config_list[0].quant_bits: conv1 is a first/last layer of mnist-cnn, which mpq runs at 8 bits or not at all, not 4 (exclude it or give it 8)');
  resolveError([{ quant_types: ['weight', 'input'], quant_bits: { weight: 8, input: 4 }, op_names: ['fc'] }],
    'c.json: config_list[0].quant_bits.input: fc is a first/last layer of mnist-cnn, which mpq runs at 8 bits or not at all, not 4 (exclude it or give it 8)');
  resolveError([{ exclude: true, op_types: ['default'] }], 'c.json: the config list quantizes nothing in mnist-cnn');
});

test('the NNI config_list mpq export writes is one mpq quantize reads back: same bits per layer', (t) => {
  const policy = readPolicy(join(REPO_ROOT, 'policies/mnist-cnn-w3a4-cr12.2.json'));
  const dir = mkdtempSync(join(tmpdir(), 'mpq-config-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'config_list.json');
  writeFileSync(path, exportPolicy(policy, 'nni'));
  const resolved = resolveConfigList(readConfigList(path, 'lsq'), MNIST_LAYERS, { ...OPTIONS, source: path });
  for (const l of [...policy.layers, ...policy.fixed]) {
    assert.deepEqual([resolved[l.name]?.weight?.bits, resolved[l.name]?.input?.bits], [l.weightBits, l.actBits], l.name);
  }
  assert.throws(() => readConfigList(join(dir, 'missing.json'), 'qat'), { message: `${join(dir, 'missing.json')}: no such NNI config list file` });
});
