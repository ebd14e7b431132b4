import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const MAIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'main.js');

function mpq(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function assertUserError(r: ReturnType<typeof mpq>, pattern: RegExp): void {
  assert.equal(r.code, 2, r.stderr);
  // the error is the first line of stderr (the backend is said in a command's result, not before its errors)
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], pattern);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
}

test('training commands: bad input is one line naming the flag or file, exit 2', () => {
  assertUserError(mpq(['train', '--model', 'mnist-cnn', '--epochs', 'two', '--checkpoint', '/tmp/x']), /--epochs/);
  assertUserError(mpq(['train', '--model', 'vgg', '--epochs', '1', '--checkpoint', '/tmp/x']), /--model: unknown model 'vgg'/);
  assertUserError(mpq(['train', '--model', 'mnist-cnn', '--epochs', '1', '--checkpoint', '/tmp/x', '--backend', 'gpu']), /--backend: 'gpu'/);
  assertUserError(mpq(['eval', '--model', 'mnist-cnn', '--from', '/nonexistent/ck']), /--from \/nonexistent\/ck: no model.json/);
  assertUserError(mpq(['pretrain', '--model', 'mnist-cnn', '--from', '/nonexistent', '--bits', '4', 'x', '--epochs', '1']), /--bits: 'x'/);
  assertUserError(mpq(['finetune', '--model', 'mnist-cnn', '--from', '/nonexistent', '--policy', 'p.json', '--epochs', '1', '--resume']), /--resume: needs --checkpoint/);
  assertUserError(mpq(['finetune', '--model', 'mnist-cnn', '--from', '/nonexistent', '--weight-bits', '4', '--epochs', '1', '--quantizer', 'nuq', '--per-channel-weights']),
    /--per-channel-weights: LSQ step sizes only, not --quantizer nuq/);
});

test('train → pretrain → finetune → eval on 32 digits', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mpq-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const fp = join(dir, 'fp');
  const common = ['--model', 'mnist-cnn', '--epochs', '1', '--limit', '32', '--batch-size', '16', '--seed', '3', '--no-progress'];

  const train = mpq(['train', ...common, '--checkpoint', fp]);
  assert.equal(train.code, 0, train.stderr);
  assert.match(train.stdout, /; backend \w+; checkpoint /);
  // on stderr only which backend ran and why, after the result (never a line before an error)
  assert.match(train.stderr, /^mpq: backend: \w+ \(.+\)\n$/);
  assert.match(train.stdout, /train epoch 1\/1: test top1 [\d.]+%/);
  assert.ok(existsSync(join(fp, 'model.json')));
  // --json: the same run (one seed) as one object on the last line
  const again = mpq(['train', ...common, '--checkpoint', fp, '--overwrite', '--json']);
  assert.equal(again.code, 0, again.stderr);
  const trained = JSON.parse(again.stdout.trim().split('\n').at(-1)!);
  assert.deepEqual([trained.model, trained.checkpoint, trained.count, trained.epochs, trained.seed], ['mnist-cnn', fp, 32, 1, 3]);
  assert.equal(`${(100 * trained.top1).toFixed(2)}%`, /final test top1 ([\d.]+%)/.exec(train.stdout)![1]);

  const indicatorsPath = join(dir, 'indicators.json');
  const pretrain = mpq(['pretrain', ...common, '--from', fp, '--bits', '4', '2', '--out', indicatorsPath, '--json']);
  assert.equal(pretrain.code, 0, pretrain.stderr);
  const pretrained = JSON.parse(pretrain.stdout.trim().split('\n').at(-1)!);
  assert.deepEqual([pretrained.out, pretrained.from, pretrained.bits, pretrained.layers], [indicatorsPath, fp, [4, 2], 4]);
  assert.deepEqual(Object.keys(pretrained.test_top1_uniform).sort(), ['2', '4']);
  const indicators = JSON.parse(readFileSync(indicatorsPath, 'utf8'));
  assert.deepEqual(indicators.layer_name, ['conv2', 'conv3', 'conv4', 'conv5']);
  assert.deepEqual(Object.keys(indicators.weight.conv3).sort(), ['2', '4']);
  assert.equal(indicators.meta.seed, 3);
  assert.deepEqual(indicators.meta.bits, [4, 2]);
  assert.match(indicators.meta.command, /^mpq pretrain --model mnist-cnn/);

  const layer = (name: string, w: number, a: number) => ({ name, weightBits: w, actBits: a, macs: 0, params: 0 });
  const policyPath = join(dir, 'policy.json');
  writeFileSync(policyPath, JSON.stringify({
    format: 'mpq-policy', version: 1, model: 'mnist-cnn', bits: [4, 2],
    layers: [layer('conv2', 4, 4), layer('conv3', 2, 4), layer('conv4', 4, 2), layer('conv5', 2, 2)],
    fixed: [layer('conv1', 8, 8), layer('fc', 8, 8)],
  }));
  const finetuned = join(dir, 'q');
  const finetune = mpq(['finetune', ...common, '--from', fp, '--policy', policyPath, '--checkpoint', finetuned, '--json']);
  assert.equal(finetune.code, 0, finetune.stderr);
  const summary = JSON.parse(finetune.stdout.trim().split('\n').at(-1)!);
  assert.ok(summary.top1 >= 0 && summary.top1 <= 1);
  assert.deepEqual(summary.layers.find((l: { name: string }) => l.name === 'conv3'), { name: 'conv3', weight_bits: 2, act_bits: 4 });

  const evaluated = mpq(['eval', '--model', 'mnist-cnn', '--from', finetuned, '--policy', policyPath, '--limit', '32', '--json']);
  assert.equal(evaluated.code, 0, evaluated.stderr);
  assert.equal(JSON.parse(evaluated.stdout).top1, summary.top1, 'eval reproduces the finetune result');
  // the FP checkpoint has no learned step sizes: evaluating it at a policy is refused
  assertUserError(mpq(['eval', '--model', 'mnist-cnn', '--from', fp, '--policy', policyPath, '--limit', '32']), /no learned weight step size/);
});
