/**
 * The CLI a newcomer meets: how `npx mpq` resolves, one flag vocabulary across commands, --help
 * with its defaults, --json everywhere.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { CLI_MAIN, REPO_ROOT, runCli, tempDir } from './support.js';

test('npx mpq runs the built CLI from node_modules/.bin, and package.json names no bin that would make npx install the project', () => {
  assert.equal(realpathSync(join(REPO_ROOT, 'node_modules/.bin/mpq')), realpathSync(CLI_MAIN));
  const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8'));
  // with a bin named mpq, npx copies the checkout and its dependencies into its cache first (≈ 20 s)
  assert.equal(pkg.bin, undefined);
});

test('search summary: every table column has a header; the whole-model BitOps and the searchable-layer budget say which is which', () => {
  const r = runCli(['search', '--bits', '6', '5', '4', '3', '2', '--wb', '3', '--ab', '4', '--cr', '12.2']);
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.split('\n');
  const header = lines.findIndex((l) => l.startsWith('layer'));
  // as many header words as the widest row has cells
  const cells = (l: string) => l.trim().split(/\s{2,}/).length;
  const rows = lines.slice(header + 2, lines.indexOf('', header));
  assert.ok(rows.length >= 3);
  assert.equal(cells(lines[header]), Math.max(...rows.map(cells)), lines[header]);
  assert.deepEqual([...new Set(rows.map((l) => l.trim().split(/\s+/)[1]))].sort(), ['fixed', 'searched']);
  assert.match(r.stdout, /^BitOps, whole model \(fixed layers included\): [\d.]+ G/m);
  assert.match(r.stdout, /^ {2}bitops +[\d.]+ G of [\d.]+ G, searchable layers \(W3A4 BitOps target\)$/m);
  assert.match(r.stdout, /^ {2}size +[\d.]+ MB of [\d.]+ MB, whole model \(compression ratio 12\.2\)$/m);
  const json = JSON.parse(runCli(['search', '--json']).stdout);
  assert.deepEqual(json.budgets.map((b: { name: string; scope: string }) => `${b.name} ${b.scope}`), ['bitops searchable layers', 'size whole model']);
});

test('search --model: an unknown model is said as such before its indicators; a known one without indicators says how to get them', () => {
  const cwd = tempDir(); // no indicators/ here: only the shipped mnist-cnn ones are found
  const oneLine = (args: string[], pattern: RegExp) => {
    const r = runCli(args, cwd);
    assert.equal(r.status, 2, r.stderr);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, pattern);
  };
  oneLine(['search', '--model', 'foo'], /^mpq: --model: unknown model 'foo': neither a zoo model \(.*resnet18.*\) nor a model file \(\.onnx, tfjs model\.json, layer-table \.json\)$/m);
  oneLine(['search', '--model', 'nope.onnx'], /unknown model 'nope\.onnx'/);
  // ImageNet models: mpq cannot pretrain them here, so the way is a file of LIMPQ's or an objective table
  oneLine(['search', '--model', 'resnet18'], /--model resnet18: no cached indicators .*no dataset to pretrain resnet18 on .*--indicators FILE .*--objective-table FILE/);
  // trainable: the commands that make them
  oneLine(['search', '--model', 'resnet20'], /`mpq train --model resnet20 --data CIFAR10_DIR --epochs 24 --checkpoint ckpt\/fp`, then `mpq pretrain --from ckpt\/fp --bits 6 5 4 3 2 --epochs 2 --data CIFAR10_DIR --out indicators\/resnet20\.json`/);
  const onnx = join(REPO_ROOT, 'test/fixtures/onnx/residual.onnx');
  oneLine(['search', '--model', onnx], new RegExp(`\`mpq pretrain --model ${onnx.replace(/[.]/g, '\\.')} --bits 6 5 4 3 2 --epochs 2 --out indicators/residual\\.json\``));
});

test('one name for weight / activation bits in every command; the old names are aliases, said so in --help', () => {
  const help = (cmd: string) => runCli([cmd, '--help']).stdout.replace(/\s+/g, ' ');
  for (const cmd of ['search', 'sweep', 'finetune', 'eval', 'quantize', 'pack', 'simulate']) {
    if (cmd === 'quantize') continue; // bits come from the NNI config there
    assert.match(help(cmd), /--weight-bits <[^>]+> /, cmd);
    assert.match(help(cmd), /--act-bits <[^>]+> /, cmd);
  }
  assert.match(help('search'), /--wb <value> alias of --weight-bits \(LIMPQ's name\) --ab <value> alias of --act-bits/);
  assert.match(help('sweep'), /--wb <values\.\.\.> alias of --weight-bits/);
  assert.match(help('simulate'), /--input-bits <bits\.\.\.> alias of --act-bits \(its old name\)/);
  // the headline and its long form pose the same search
  const short = runCli(['search', '--bits', '6', '5', '4', '3', '2', '--wb', '3', '--ab', '4', '--cr', '12.2', '--json']);
  const long = runCli(['search', '--bits', '6', '5', '4', '3', '2', '--weight-bits', '3', '--act-bits', '4', '--cr', '12.2', '--json']);
  assert.equal(short.status, 0, short.stderr);
  assert.deepEqual(JSON.parse(short.stdout).budgets, JSON.parse(long.stdout).budgets);
  assert.notDeepEqual(JSON.parse(runCli(['search', '--wb', '4', '--ab', '4', '--json']).stdout).budgets, JSON.parse(short.stdout).budgets);
  // a bad value names the flag as typed; both names at once is one line
  const bad = (args: string[], pattern: RegExp) => {
    const r = runCli(args);
    assert.equal(r.status, 2, r.stderr);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, pattern);
  };
  bad(['search', '--wb', '0'], /^mpq: --wb: must be > 0, got 0$/m);
  bad(['search', '--act-bits', '-1'], /^mpq: --act-bits: must be > 0, got -1$/m);
  bad(['search', '--weight-bits', '3', '--wb', '2'], /^mpq: --wb: alias of --weight-bits; give one of them$/m);
  // a bit-width the library refuses (a field of its setting) is said with the flag as typed too
  const from = tempDir('vocab-simulate');
  bad(['simulate', '--from', from, '--act-bits', '1'], /^mpq: --act-bits: 1 is not a bit-width in 2\.\.16$/m);
  bad(['simulate', '--from', from, '--input-bits', '1'], /^mpq: --input-bits: 1 is not a bit-width in 2\.\.16$/m);
});

test('--help shows defaults as numbers: no quoted or bracketed default in any command; training commands show the stage\'s hyperparameters', () => {
  for (const cmd of ['search', 'sweep', 'export', 'train', 'pretrain', 'finetune', 'eval', 'quantize', 'simulate', 'pack', 'export-model']) {
    const text = runCli([cmd, '--help']).stdout.replace(/\s+/g, ' ');
    assert.doesNotMatch(text, /\(default: ["[]/, cmd);
  }
  const search = runCli(['search', '--help']).stdout.replace(/\s+/g, ' ');
  assert.match(search, /--bits <bits\.\.\.> candidate bit-widths \(default: 6 5 4 3 2\)/);
  assert.match(search, /--weight-bits <value> .* \(default: 3\)/);
  assert.match(search, /--cr <value> .* \(default: 12\.2\)/);
  // the engine's own defaults per stage (train: SGD from scratch; finetune: LSQ)
  const train = runCli(['train', '--help']).stdout.replace(/\s+/g, ' ');
  assert.match(train, /--batch-size <n> batch size \(default: 64\)/);
  assert.match(train, /--lr <x> initial learning rate \(cosine decay\) \(default: 0\.05\)/);
  assert.match(train, /--weight-decay <x> .* \(default: 0\.0005\)/);
  const finetune = runCli(['finetune', '--help']).stdout.replace(/\s+/g, ' ');
  assert.match(finetune, /--lr <x> initial learning rate \(cosine decay\) \(default: 0\.01\)/);
  assert.match(finetune, /--weight-decay <x> .* \(default: 0\.0001\)/);
  // --model lists what each command takes: every zoo model and layer tables for search, the trainable ones elsewhere
  assert.match(search, /--model <name\|file> model: resnet18 \| .* \| mnist-cnn .*or a model file \(\.onnx, tfjs model\.json, layer-table \.json\)/);
  assert.match(finetune, /--model <name\|file> model: mnist-cnn \| resnet20 \| mobilenet-mini \| mobilenet-mini-cifar, or a model file with its weights \(\.onnx, tfjs model\.json\)/);
  assert.doesNotMatch(finetune, /resnet50/);
});

test('--out names a file in every command; sweep\'s folder is --out-dir, --out its alias; a folder it cannot make is one line', () => {
  const dir = tempDir('mpq-out-dir-');
  const budgets = ['--wb', '3', '4', '--ab', '4', '--cr', '12', '--quiet'];
  for (const flag of ['--out-dir', '--out']) {
    const r = runCli(['sweep', ...budgets, flag, join(dir, flag.slice(2))]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(JSON.parse(readFileSync(join(dir, flag.slice(2), 'sweep.json'), 'utf8')).points.length, 2);
  }
  assert.match(runCli(['sweep', '--help']).stdout, /--out <dir> +alias of --out-dir/);
  const both = runCli(['sweep', ...budgets, '--out', join(dir, 'a'), '--out-dir', join(dir, 'b')]);
  assert.equal(both.status, 2);
  assert.equal(both.stderr, 'mpq: --out: alias of --out-dir; give one of them\n');
  // the flag as typed, in a one-line error (here: a folder under /proc, which cannot be made)
  const proc = runCli(['sweep', ...budgets, '--out', '/proc/mpq-sweep']);
  assert.equal(proc.status, 2);
  assert.match(proc.stderr, /^mpq: --out \/proc\/mpq-sweep: cannot make the new set's folder beside it \([^)]*\)\n$/);
  // every other command's --out is a file: its help says <file>
  for (const command of ['search', 'pack', 'export', 'export-model', 'pretrain']) {
    assert.match(runCli([command, '--help']).stdout, /--out [<[]file[>\]]/, command);
  }
});

test('--json: stdout is the one JSON object in the training commands; the epoch lines go to stderr', () => {
  const dir = tempDir('mpq-json-');
  const small = ['--model', 'mnist-cnn', '--epochs', '1', '--limit', '32', '--batch-size', '16', '--no-progress', '--json'];
  const runs = {
    train: runCli(['train', ...small, '--checkpoint', join(dir, 'fp')]),
    pretrain: runCli(['pretrain', ...small, '--from', join(dir, 'fp'), '--bits', '4', '2', '--out', join(dir, 'ind.json')]),
  };
  for (const [command, r] of Object.entries(runs)) {
    assert.equal(r.status, 0, `${command}: ${r.stderr}`);
    assert.equal(r.stdout.trim().split('\n').length, 1, `${command}: ${r.stdout}`);
    assert.equal(typeof JSON.parse(r.stdout), 'object');
    assert.match(r.stderr, /epoch 1\/1/, command);
  }
});
