import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { saveUntrainedCheckpoint } from './checkpoints.js';
import { REPO_ROOT, runCli, tempDir } from './support.js';
import { initBackend } from '../src/train/backend/index.js';

await initBackend('cpu');

const lastJson = (stdout: string) => JSON.parse(stdout.trim().split('\n').at(-1)!);

test('a fine-tuned checkpoint says what it is: eval and pack take its quantizer and bits; a contradicting flag is one line', (t) => {
  const dir = tempDir('mpq-ckpt-mode-');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const fp = join(dir, 'fp');
  saveUntrainedCheckpoint(fp, 'mnist-cnn', 4);
  const policy = join(REPO_ROOT, 'policies/mnist-cnn-w3a4-cr12.2.json');
  const ft = join(dir, 'ft');
  const small = ['--epochs', '1', '--limit', '64', '--batch-size', '32', '--no-progress'];
  const finetune = runCli(['finetune', '--model', 'mnist-cnn', '--from', fp, '--policy', policy, ...small, '--checkpoint', ft, '--json']);
  assert.equal(finetune.status, 0, finetune.stderr);
  const tuned = lastJson(finetune.stdout);
  // --json: stdout is the one JSON object (the epoch line went to stderr)
  assert.equal(finetune.stdout.trim().split('\n').length, 1, finetune.stdout);
  assert.match(finetune.stderr, /finetune epoch 1\/1/);
  // the checkpoint keeps its policy file
  assert.deepEqual(JSON.parse(readFileSync(join(ft, 'policy.json'), 'utf8')), JSON.parse(readFileSync(policy, 'utf8')));
  // no flags: the fine-tune's own bits and quantizer, said on stderr and in the JSON
  const evaluated = runCli(['eval', '--from', ft, '--limit', '64', '--json']);
  assert.equal(evaluated.status, 0, evaluated.stderr);
  const e = lastJson(evaluated.stdout);
  // which backend ran and why: the last stderr line, after the result (never ahead of an error)
  assert.match(evaluated.stderr.trim().split('\n').at(-1)!, new RegExp(`^mpq: backend: ${e.backend} \\(.+\\)$`));
  assert.equal(e.top1, tuned.top1, 'the fine-tune\'s own top-1, not full precision\'s');
  assert.equal(e.model, 'mnist-cnn');
  assert.match(e.mode, /^lsq at its policy .*mnist-cnn-w3a4-cr12\.2\.json, from the checkpoint$/);
  assert.match(evaluated.stderr, /eval: .*ft is a fine-tuned checkpoint: lsq at its policy/);
  // a quantizer the checkpoint was not fine-tuned with is refused, in one line
  const contradicting = runCli(['eval', '--from', ft, '--quantizer', 'nuq', '--limit', '64']);
  assert.equal(contradicting.status, 2);
  const lines = contradicting.stderr.trim().split('\n').filter((l) => !l.startsWith('backend: '));
  assert.deepEqual(lines.length, 1, contradicting.stderr);
  assert.match(lines[0], /^mpq: --quantizer nuq: .*ft was fine-tuned with lsq \(its meta\.quantizer\); leave --quantizer out to use it$/);
  // uniform bits it has no step sizes for are refused as before (not evaluated as something else)
  const other = runCli(['eval', '--from', ft, '--weight-bits', '5', '--limit', '64']);
  assert.equal(other.status, 2, other.stderr);
  assert.match(other.stderr, /no learned weight step size for conv2 at 5 bits/);
  // full precision on an FP checkpoint stays full precision
  const fpEval = lastJson(runCli(['eval', '--from', fp, '--limit', '64', '--json']).stdout);
  assert.equal(fpEval.mode, 'full precision');
  // pack without --policy packs at the checkpoint's own bits, and scores as it
  const packed = join(dir, 'ft.mpqp');
  const pack = runCli(['pack', '--from', ft, '--out', packed, '--json']);
  assert.equal(pack.status, 0, pack.stderr);
  assert.ok(existsSync(packed));
  const fromPacked = lastJson(runCli(['eval', '--packed', packed, '--limit', '64', '--json']).stdout);
  assert.equal(fromPacked.top1, tuned.top1);
});
