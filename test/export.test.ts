import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { EXPORT_FORMATS, exportPolicy } from '../src/export/formats.js';
import type { Policy, PolicyLayer } from '../src/export/policy.js';
import { readPolicy, writePolicy } from '../src/export/policy-file.js';
import { UserError } from '../src/util/errors.js';

const MAIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

function layer(name: string, weightBits: number, actBits: number): PolicyLayer {
  return { name, weightBits, actBits, macs: 1000, params: 100 };
}

function policy(layers: PolicyLayer[], fixed: PolicyLayer[], model = 'resnet18'): Policy {
  return { format: 'mpq-policy', version: 1, model, bits: [2, 3, 4, 5, 6], layers, fixed };
}

/** A cut-down torchvision ResNet18: the stem, one plain block, one block with a downsample conv, fc. */
const resnet18Policy = policy(
  [
    layer('layer1.0.conv1', 4, 5),
    layer('layer1.0.conv2', 3, 4),
    layer('layer2.0.conv1', 2, 3),
    layer('layer2.0.conv2', 5, 6),
    layer('layer2.0.downsample.0', 6, 4),
  ],
  [layer('conv1', 8, 8), layer('fc', 8, 8)],
);

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'mpq-export-'));
}

/** readPolicy's UserError message for a file holding `text`. */
function readError(text: string): string {
  const path = join(tempDir(), 'p.json');
  writeFileSync(path, text);
  try {
    readPolicy(path);
  } catch (err) {
    assert.ok(err instanceof UserError, `expected a UserError, got ${String(err)}`);
    assert.ok(!err.message.includes('\n'), `not one line: ${err.message}`);
    return err.message.slice(path.length + 2);
  }
  assert.fail('readPolicy accepted an invalid file');
}

// ---------------------------------------------------------------------------------------------
// policy files

test('writePolicy writes pretty JSON that readPolicy reads back unchanged', () => {
  const path = join(tempDir(), 'sub', 'p.json');
  const full: Policy = {
    ...resnet18Policy,
    objective: 1.25,
    bitops: 12.3,
    compressionRatio: 10.5,
    sizeMb: 1.1,
    constraints: { wb: 3, bops: true, cr: null, note: 'x' },
    indicators: { path: 'indicators/r18.json', sha256: 'a'.repeat(64) },
    solver: 'highs',
    seed: 0,
    command: 'mpq search',
    createdAt: '2026-01-01T00:00:00.000Z',
  };
  writePolicy(path, full);
  const text = readFileSync(path, 'utf8');
  assert.ok(text.startsWith('{\n  "format": "mpq-policy"'));
  assert.ok(text.endsWith('}\n'));
  assert.deepEqual(readPolicy(path), full);
  assert.deepEqual(readdirSync(join(path, '..')), ['p.json'], 'no temp file left behind');
});

test('writePolicy refuses a policy that would not read back', () => {
  const bad = { ...resnet18Policy, layers: [layer('a', 0, 4)] };
  assert.throws(() => writePolicy(join(tempDir(), 'p.json'), bad), (err: Error) => {
    assert.ok(!(err instanceof UserError), 'a bad policy from our own code is a bug');
    assert.match(err.message, /layers\[0\]\.weightBits: expected a bit-width in 2\.\.16 or 32 \(full precision\)/);
    return true;
  });
});

test('readPolicy names the file and the field path of a bad value', () => {
  const bad = structuredClone(resnet18Policy) as unknown as { layers: Record<string, unknown>[] };
  bad.layers[3]!.weightBits = 2.5;
  assert.equal(readError(JSON.stringify(bad)), 'layers[3].weightBits: expected a bit-width in 2..16 or 32 (full precision)');
  const path = join(tempDir(), 'x.json');
  writeFileSync(path, JSON.stringify(bad));
  assert.throws(() => readPolicy(path), { message: `${path}: layers[3].weightBits: expected a bit-width in 2..16 or 32 (full precision)` });
});

test('readPolicy reports missing, unknown, wrong-version and duplicate fields', () => {
  const { model: _model, ...noModel } = resnet18Policy;
  assert.equal(readError(JSON.stringify(noModel)), 'model: missing (expected a non-empty string)');
  assert.equal(readError(JSON.stringify({ ...resnet18Policy, modle: 'x' })), "unknown field 'modle'");
  assert.match(readError(JSON.stringify({ ...resnet18Policy, version: 2 })), /^version: expected 1/);
  assert.equal(readError(JSON.stringify({ ...resnet18Policy, format: 'other' })), "format: expected 'mpq-policy'");
  const dup = { ...resnet18Policy, fixed: [layer('layer1.0.conv1', 8, 8)] };
  assert.equal(readError(JSON.stringify(dup)), "fixed[0].name: duplicate layer name 'layer1.0.conv1'");
  assert.equal(readError('[]'), 'expected a JSON object');
  const twoProblems = { ...resnet18Policy, bits: [], layers: [] };
  assert.equal(readError(JSON.stringify(twoProblems)), 'bits: expected at least one bit-width (and 1 more problem)');
});

test('readPolicy turns missing, empty, truncated and malformed files into one-line UserErrors', () => {
  const missing = join(tempDir(), 'nope.json');
  assert.throws(() => readPolicy(missing), { name: 'UserError', message: `${missing}: no such policy file` });
  assert.throws(() => readPolicy(tempDir()), { name: 'UserError', message: /is a directory/ });
  assert.equal(readError(''), 'empty file (expected a policy JSON object)');
  const full = JSON.stringify(resnet18Policy, null, 2);
  assert.match(readError(full.slice(0, full.length / 2)), /^not valid JSON \(.+\)$/);
  assert.match(readError('{"format": "mpq-policy",\n\n oops}'), /^not valid JSON \(.+\)$/);
});

// ---------------------------------------------------------------------------------------------
// limpq-yaml

/**
 * LIMPQ's quantization_training/finetune_resnet50_w3a4_12.2compression_ratio.yaml (github.com/
 * 1hunters/LIMPQ), keys in file order, read through the search tool's index of that repository.
 */
const LIMPQ_TOP_KEYS = [
  'name', 'weight_bits', 'act_bits', 'gpu', 'output_dir', 'training_device', 'dataloader', 'resume', 'log',
  'arch', 'freeze_weights', 'pre_trained', 'quan', 'eval', 'fp_model', 'epochs', 'smoothing', 'opt', 'lr',
  'momentum', 'weight_decay', 'sched', 'min_lr', 'decay_rate', 'warmup_epochs', 'warmup_lr', 'decay_epochs',
  'cooldown_epochs', 'val_cycle',
];
const LIMPQ_DATALOADER_KEYS = ['dataset', 'num_classes', 'path', 'batch_size', 'workers', 'deterministic', 'serialized', 'val_split'];
const LIMPQ_QUANTIZER_KEYS = ['mode', 'bit', 'per_channel', 'symmetric', 'all_positive'];
/** The ResNet50 W3A4 12.2x policy, exactly as LIMPQ's YAML lists it. */
const LIMPQ_R50_WEIGHT_LINE =
  'weight_bits: [6, 3, 4, 5, 4, 4, 5, 4, 4, 5, 4, 3, 4, 3, 3, 3, 4, 4, 3, 4, 4, 3, 4, 3, 2, 3, 2, 3, 2, 3, 3, 2, 2, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2]';
const LIMPQ_R50_ACT_BITS = [
  6, 4, 6, 6, 6, 3, 4, 6, 3, 4, 5, 3, 5, 5, 6, 3, 4, 5, 3, 4, 5, 3, 4, 4, 4, 6, 5, 5, 4, 5, 5, 4, 6, 5, 3, 5, 6, 3,
  5, 6, 3, 6, 4, 4, 6, 2, 6, 4, 6, 6, 4, 6,
];

/** Parse as LIMPQ does (PyYAML safe_load is YAML 1.1). */
function parseLimpq(text: string): Record<string, any> {
  return parseYaml(text, { version: '1.1' });
}

test('limpq-yaml has the keys of LIMPQ\'s fine-tune YAML, in its order, with the policy\'s bits', () => {
  const text = exportPolicy(resnet18Policy, 'limpq-yaml', { name: 'r18-w3a4' });
  const config = parseLimpq(text);
  assert.deepEqual(Object.keys(config), LIMPQ_TOP_KEYS);
  assert.deepEqual(Object.keys(config.dataloader), LIMPQ_DATALOADER_KEYS);
  assert.deepEqual(Object.keys(config.resume), ['path', 'lean']);
  assert.deepEqual(Object.keys(config.quan), ['act', 'weight', 'excepts']);
  assert.deepEqual(Object.keys(config.quan.act), LIMPQ_QUANTIZER_KEYS);
  assert.deepEqual(Object.keys(config.quan.weight), LIMPQ_QUANTIZER_KEYS);
  assert.equal(config.quan.act.mode, 'lsq');
  assert.equal(config.quan.act.all_positive, true);
  assert.equal(config.quan.weight.all_positive, false);
  assert.equal(config.name, 'r18-w3a4');
  assert.equal(config.arch, 'resnet18');
  assert.deepEqual(config.weight_bits, [4, 3, 2, 5, 6]);
  assert.deepEqual(config.act_bits, [5, 4, 3, 6, 4]);
  assert.equal(config.resume.path, null);
  assert.equal(config.pre_trained, true);
});

test('limpq-yaml puts the fixed layers in quan.excepts with act/weight sections, stem input signed', () => {
  const config = parseLimpq(exportPolicy(resnet18Policy, 'limpq-yaml'));
  assert.deepEqual(config.quan.excepts, {
    conv1: { act: { bit: 8, all_positive: false }, weight: { bit: 8 } },
    fc: { act: { bit: 8 }, weight: { bit: 8 } },
  });
  assert.equal(config.name, 'mpq');
});

test('limpq-yaml quotes layer names PyYAML would read as booleans', () => {
  const p = policy([layer('a', 4, 4)], [layer('on', 8, 8), layer('no', 8, 8)], 'net');
  assert.deepEqual(Object.keys(parseLimpq(exportPolicy(p, 'limpq-yaml')).quan.excepts), ['on', 'no']);
});

test('limpq-yaml writes the bit lists in LIMPQ\'s flow style and names the layer order in a comment', () => {
  const layers = LIMPQ_R50_ACT_BITS.map((a, i) => layer(`l${i}`, 2, a));
  const weightBits = JSON.parse(LIMPQ_R50_WEIGHT_LINE.slice('weight_bits: '.length)) as number[];
  weightBits.forEach((w, i) => (layers[i]!.weightBits = w));
  const text = exportPolicy(policy(layers, [layer('conv1', 8, 8), layer('fc', 8, 8)], 'resnet50'), 'limpq-yaml');
  assert.ok(text.split('\n').includes(LIMPQ_R50_WEIGHT_LINE), 'weight_bits line as in LIMPQ\'s file');
  assert.deepEqual(parseLimpq(text).act_bits, LIMPQ_R50_ACT_BITS);
  assert.match(text, /^# +0 {2}l0 {2}W6A6$/m);
  assert.match(text, /^# +51 {2}l51 {2}W2A6$/m);
});

test('limpq-yaml for a model LIMPQ does not build: its dataset, classes and FP epochs from the indicators and their checkpoint; the unknown marked null', () => {
  const dir = tempDir();
  // what mpq pretrain records: the dataset in the indicators' meta, the FP checkpoint they started from
  const ckpt = join(dir, 'fp');
  mkdirSync(ckpt);
  writeFileSync(join(ckpt, 'model.json'), JSON.stringify({ format: 'mpq-checkpoint', training: { stage: 'train', epochsDone: 24, epochs: 24 }, meta: {} }));
  const indicators = join(dir, 'mnist-cnn.json');
  writeFileSync(indicators, JSON.stringify({ weight: {}, act: {}, layer_name: [], meta: { model: 'mnist-cnn', dataset: 'mnist', from: ckpt } }));
  const mnist = { ...policy([layer('conv2', 4, 5)], [layer('conv1', 8, 8), layer('fc', 8, 8)], 'mnist-cnn'), indicators: { path: indicators, sha256: '' } };
  const text = exportPolicy(mnist, 'limpq-yaml');
  const config = parseLimpq(text);
  assert.deepEqual(Object.keys(config), LIMPQ_TOP_KEYS);
  assert.deepEqual([config.dataloader.dataset, config.dataloader.num_classes, config.dataloader.path, config.epochs], ['mnist', 10, '/path/to/mnist', 24]);
  assert.match(text, /^# mnist-cnn is not a model LIMPQ's trainer builds/m);
  assert.match(text, new RegExp(`what mpq knows \\(from ${indicators}, ${ckpt}\\)`));
  assert.doesNotMatch(text, /imagenet: |1000|unknown to mpq/);
  // no indicators file: the zoo's input still says MNIST; the FP training's length is unknown
  const bare = exportPolicy(policy([layer('conv2', 4, 5)], [layer('conv1', 8, 8)], 'mnist-cnn'), 'limpq-yaml');
  assert.deepEqual([parseLimpq(bare).dataloader.dataset, parseLimpq(bare).epochs], ['mnist', null]);
  assert.match(bare, /# unknown to mpq: set it \(mpq knows no full-precision training of mnist-cnn\)\nepochs: null$/m);
  // an imported model mpq knows nothing of: every such value null, each with its comment
  const net = exportPolicy(policy([layer('a', 4, 4)], [layer('b', 8, 8)], 'net'), 'limpq-yaml');
  const c = parseLimpq(net);
  assert.deepEqual([c.dataloader.dataset, c.dataloader.num_classes, c.epochs], [null, null, null]);
  assert.equal(net.match(/# unknown to mpq: set it/g)?.length, 3);
  // LIMPQ's own models keep its template
  assert.deepEqual([parseLimpq(exportPolicy(resnet18Policy, 'limpq-yaml')).dataloader.dataset, parseLimpq(exportPolicy(resnet18Policy, 'limpq-yaml')).epochs], ['imagenet', 90]);
});

// ---------------------------------------------------------------------------------------------
// nni

/** NNI v2 QAT_Quantizer.validate_config's schema, for the keys we write. */
function assertNniEntry(entry: Record<string, unknown>): void {
  assert.ok(Array.isArray(entry.op_names) && entry.op_names.length === 1 && typeof entry.op_names[0] === 'string');
  if ('exclude' in entry) {
    assert.deepEqual(Object.keys(entry).sort(), ['exclude', 'op_names']);
    assert.equal(entry.exclude, true);
    return;
  }
  assert.deepEqual(Object.keys(entry), ['quant_types', 'quant_bits', 'op_names']);
  const types = entry.quant_types as string[];
  const bits = entry.quant_bits as Record<string, number>;
  assert.ok(types.every((t) => ['weight', 'input', 'output'].includes(t)));
  assert.deepEqual(Object.keys(bits), types);
  for (const b of Object.values(bits)) assert.ok(Number.isInteger(b) && b > 0 && b < 32);
}

test('nni is a config_list with one weight+input entry per layer, fixed layers included', () => {
  const configList = JSON.parse(exportPolicy(resnet18Policy, 'nni')) as Record<string, unknown>[];
  configList.forEach(assertNniEntry);
  assert.equal(configList.length, 7);
  assert.deepEqual(configList[0], {
    quant_types: ['weight', 'input'],
    quant_bits: { weight: 4, input: 5 },
    op_names: ['layer1.0.conv1'],
  });
  assert.deepEqual(configList[5], { quant_types: ['weight', 'input'], quant_bits: { weight: 8, input: 8 }, op_names: ['conv1'] });
});

test('nni leaves 32-bit (float) tensors out, since NNI only takes 1..31 bits', () => {
  const p = policy([layer('a', 4, 4)], [layer('stem', 8, 32), layer('head', 32, 32)], 'net');
  const configList = JSON.parse(exportPolicy(p, 'nni')) as Record<string, unknown>[];
  configList.forEach(assertNniEntry);
  assert.deepEqual(configList[1], { quant_types: ['weight'], quant_bits: { weight: 8 }, op_names: ['stem'] });
  assert.deepEqual(configList[2], { exclude: true, op_names: ['head'] });
});

// ---------------------------------------------------------------------------------------------
// hawq

test('hawq maps torchvision ResNet names to HAWQ-V3 Q_ResNet modules, in bit_config.py\'s order', () => {
  const config = JSON.parse(exportPolicy(resnet18Policy, 'hawq', { name: 'w3a4' }));
  assert.deepEqual(Object.keys(config), ['bit_config_resnet18_w3a4']);
  const bits = config.bit_config_resnet18_w3a4;
  // key order matters only for reading; compare it too, against HAWQ's own configs
  assert.deepEqual(Object.entries(bits), [
    ['quant_input', 8],
    ['quant_init_block_convbn', 8],
    ['quant_act_int32', 16],
    ['stage1.unit1.quant_act', 5],
    ['stage1.unit1.quant_convbn1', 4],
    ['stage1.unit1.quant_act1', 4],
    ['stage1.unit1.quant_convbn2', 3],
    ['stage1.unit1.quant_act_int32', 16],
    // conv1 reads its input at 3 bits, the downsample conv at 4: HAWQ shares one quantizer
    ['stage2.unit1.quant_act', 4],
    ['stage2.unit1.quant_convbn1', 2],
    ['stage2.unit1.quant_act1', 6],
    ['stage2.unit1.quant_convbn2', 5],
    ['stage2.unit1.quant_identity_convbn', 6],
    ['stage2.unit1.quant_act_int32', 16],
    ['quant_act_output', 8],
    ['quant_output', 8],
  ]);
});

test('hawq uses the bottleneck ResNets\' stem name and quant_act2 before conv3', () => {
  const p = policy(
    [layer('layer1.0.conv1', 4, 4), layer('layer1.0.conv2', 3, 5), layer('layer1.0.conv3', 2, 6)],
    [layer('conv1', 8, 8), layer('fc', 8, 8)],
    'resnet50',
  );
  const bits = JSON.parse(exportPolicy(p, 'hawq')).bit_config_resnet50_mpq;
  assert.equal(bits.quant_init_convbn, 8);
  assert.equal(bits.quant_init_block_convbn, undefined);
  assert.equal(bits['stage1.unit1.quant_act2'], 6);
  assert.equal(bits['stage1.unit1.quant_convbn3'], 2);
});

test('mpq export --json: what was written, as one object; without --out FILE it is one line naming --json', () => {
  const dir = tempDir();
  const policyPath = join(dir, 'r18.json');
  writePolicy(policyPath, resnet18Policy);
  const out = join(dir, 'r18.nni.json');
  const r = spawnSync(process.execPath, [MAIN, 'export', policyPath, '--format', 'nni', '--out', out, '--json'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { policy: policyPath, format: 'nni', out, replaced: false, bytes: readFileSync(out).length });
  const again = spawnSync(process.execPath, [MAIN, 'export', policyPath, '--format', 'nni', '--out', out, '--json'], { encoding: 'utf8' });
  assert.equal(JSON.parse(again.stdout).replaced, true);
  const bad = spawnSync(process.execPath, [MAIN, 'export', policyPath, '--format', 'nni', '--json'], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.equal(bad.stderr, 'mpq: --json: give --out FILE (stdout carries the JSON object)\n');
});

test('hawq keeps the layer names of models HAWQ has no module map for', () => {
  const p = policy(
    [layer('features.stage1.unit1.dw_conv.conv', 4, 5)],
    [layer('first_conv.0', 8, 8), layer('fc', 8, 8)],
    'mobilenetv1',
  );
  assert.deepEqual(JSON.parse(exportPolicy(p, 'hawq')), {
    bit_config_mobilenetv1_mpq: {
      'first_conv.0.quant_act': 8,
      'first_conv.0': 8,
      'fc.quant_act': 8,
      fc: 8,
      'features.stage1.unit1.dw_conv.conv.quant_act': 5,
      'features.stage1.unit1.dw_conv.conv': 4,
    },
  });
});

// ---------------------------------------------------------------------------------------------
// mpq export

function runMpq(args: string[]) {
  return spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8' });
}

test('mpq export prints to stdout, or writes --out atomically; the run is named after the policy file', () => {
  const dir = tempDir();
  const policyPath = join(dir, 'r18-w3a4.json');
  writePolicy(policyPath, resnet18Policy);
  const printed = runMpq(['export', policyPath, '--format', 'hawq']);
  assert.equal(printed.status, 0, printed.stderr);
  assert.equal(printed.stdout, exportPolicy(resnet18Policy, 'hawq', { name: 'r18-w3a4' }));
  const outPath = join(dir, 'out', 'r18.yaml');
  const run = runMpq(['export', policyPath, '--format', 'limpq-yaml', '--out', outPath]);
  assert.equal(run.status, 0, run.stderr);
  assert.equal(run.stdout, '');
  assert.equal(readFileSync(outPath, 'utf8'), exportPolicy(resnet18Policy, 'limpq-yaml', { name: 'r18-w3a4' }));
  assert.deepEqual(readdirSync(join(dir, 'out')), ['r18.yaml']);
});

test('mpq export: an unknown format is one line listing the formats, exit 2', () => {
  const policyPath = join(tempDir(), 'p.json');
  writePolicy(policyPath, resnet18Policy);
  const run = runMpq(['export', policyPath, '--format', 'onnx']);
  assert.equal(run.status, 2);
  assert.equal(run.stdout, '');
  const lines = run.stderr.trim().split('\n');
  assert.equal(lines.length, 1, run.stderr);
  for (const format of EXPORT_FORMATS) assert.ok(lines[0]!.includes(format), lines[0]);
});

test('mpq export: a bad policy file is one line naming it, exit 2', () => {
  const policyPath = join(tempDir(), 'p.json');
  writeFileSync(policyPath, '{"format": "mpq-policy", "version": 1');
  const run = runMpq(['export', policyPath, '--format', 'nni']);
  assert.equal(run.status, 2);
  assert.match(run.stderr, new RegExp(`^mpq: ${policyPath.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: not valid JSON \\(.+\\)\\n$`));
});

test('mpq export refuses a policy edited to weightBits 99 in every format, writing nothing', () => {
  const dir = tempDir();
  const policyPath = join(dir, 'edited.json');
  const edited = structuredClone(resnet18Policy);
  edited.layers[2]!.weightBits = 99;
  writeFileSync(policyPath, JSON.stringify(edited));
  for (const format of EXPORT_FORMATS) {
    const run = runMpq(['export', policyPath, '--format', format, '--out', join(dir, `out-${format}`)]);
    assert.equal(run.status, 2, run.stderr);
    assert.equal(run.stderr, `mpq: ${policyPath}: layers[2].weightBits: expected a bit-width in 2..16 or 32 (full precision)\n`);
    assert.deepEqual(readdirSync(dir), ['edited.json'], 'nothing written');
  }
});
