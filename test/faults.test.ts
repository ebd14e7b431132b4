import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, watch } from 'node:fs';
import { join } from 'node:path';
import { readPacked } from '../src/export/packed.js';
import { readIndicators } from '../src/indicators/indicators.js';
import { readCheckpoint, readCheckpointManifest, disposeCheckpoint } from '../src/train/checkpoint.js';
import { CLI_MAIN, REPO_ROOT, runCli, tempDir, writeTinySearchInputs } from './support.js';

// Issue 19's faults: SIGKILL and SIGINT while train, pretrain, finetune, sweep --out and pack write
// leave the previous complete file or the new complete one, never a torn one; SIGINT leaves no temp
// file either (the write in progress finishes first, then exit 130); after a SIGKILL the next run
// removes the killed writer's temp files, and --resume continues from the last complete checkpoint.
// The signal is sent the moment a temp file of the writer appears, to land inside the write.

const POLICY = join(REPO_ROOT, 'policies/mnist-cnn-w3a4-cr12.2.json');
const TINY = ['--model', 'mnist-cnn', '--limit', '32', '--batch-size', '32', '--seed', '2', '--no-progress'];

interface Watched {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  /** the signal was sent (a temp file appeared while armed) */
  sent: boolean;
}

/** Runs the CLI; sends `signal` when a file appears in `dir` for which `trigger(name)` holds (default: a temp file). */
function runWatched(args: string[], dir: string, signal: NodeJS.Signals, trigger: (name: string) => boolean = (name) => name.endsWith('.tmp')): Promise<Watched> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI_MAIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    let sent = false;
    child.stderr.on('data', (d) => (stderr += d));
    const watcher = watch(dir, (_event, name) => {
      if (!sent && name && trigger(name)) {
        sent = true;
        child.kill(signal);
      }
    });
    child.on('close', (code, sig) => {
      watcher.close();
      resolve({ code, signal: sig, stderr, sent });
    });
  });
}

const temps = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('.tmp'));

/**
 * SIGINT: the write in progress finishes and no temp file is left; exit 130 with one line, or, when
 * the signal comes as the run ends, exit 0 or the signal itself after the last write.
 */
function interruptedCleanly(r: Watched, dir: string): void {
  assert.ok(r.code === 130 || r.code === 0 || r.signal === 'SIGINT', `exit ${r.code} / ${r.signal}: ${r.stderr}`);
  if (r.code === 130) assert.match(r.stderr, /^mpq: interrupted \(SIGINT\)\n$/m);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  assert.deepEqual(temps(dir), [], 'no temp file after SIGINT');
}

/** The checkpoint in `dir` is complete: its manifest parses and its weights match their hash. */
function completeCheckpoint(dir: string): number {
  disposeCheckpoint(readCheckpoint(dir));
  return readCheckpointManifest(dir).training.epochsDone;
}

/**
 * Arms on a temp file of a checkpoint save after the first: a weights file other than the first one
 * seen (fs.watch reports events in order, but late under load).
 */
function laterSave(): (temp: string) => boolean {
  let first: string | undefined;
  return (temp) => {
    if (!temp.startsWith('weights-') || !temp.endsWith('.tmp')) return false;
    const file = temp.replace(/\.\d+\.\d+\.tmp$/, '');
    first ??= file;
    return file !== first;
  };
}

const work = tempDir('mpq-faults-');
const fp = join(work, 'fp');
const ft = join(work, 'ft');

test('train: SIGKILL in the second save leaves the first or second checkpoint whole; --resume cleans up and finishes; SIGINT finishes the save', async () => {
  mkdirSync(fp);
  const args = ['train', ...TINY, '--epochs', '5', '--checkpoint', fp];
  // armed once the first checkpoint exists: the kill lands in the save of epoch 2
  const killed = await runWatched(args, fp, 'SIGKILL', laterSave());
  assert.equal(killed.signal, 'SIGKILL', 'killed during the run (epochs 3 to 5 were still to come)');
  assert.ok(completeCheckpoint(fp) >= 1, 'the previous or the new checkpoint, whole');

  const resumed = runCli([...args, '--resume']);
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.equal(completeCheckpoint(fp), 5);
  assert.deepEqual(temps(fp), [], 'the killed save\'s temp files are gone');
  assert.equal(readdirSync(fp).filter((f) => f.endsWith('.bin')).length, 1);

  const dir = join(work, 'fp-int');
  mkdirSync(dir);
  const interrupted = await runWatched(['train', ...TINY, '--epochs', '5', '--checkpoint', dir], dir, 'SIGINT', laterSave());
  interruptedCleanly(interrupted, dir);
  // the save the interrupt fell in is finished (under load the signal may also come later)
  assert.ok(completeCheckpoint(dir) >= 2);
});

test('finetune: SIGKILL and SIGINT in a checkpoint save; --resume after the kill finishes the run', async () => {
  mkdirSync(ft);
  const args = ['finetune', ...TINY, '--epochs', '5', '--from', fp, '--policy', POLICY, '--checkpoint', ft];
  const killed = await runWatched(args, ft, 'SIGKILL', laterSave());
  assert.equal(killed.signal, 'SIGKILL');
  assert.ok(completeCheckpoint(ft) >= 1);
  const resumed = runCli([...args, '--resume']);
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.equal(completeCheckpoint(ft), 5);
  assert.deepEqual(temps(ft), []);

  const dir = join(work, 'ft-int');
  mkdirSync(dir);
  const interrupted = await runWatched(['finetune', ...TINY, '--epochs', '5', '--from', fp, '--policy', POLICY, '--checkpoint', dir], dir, 'SIGINT', laterSave());
  interruptedCleanly(interrupted, dir);
  assert.ok(completeCheckpoint(dir) >= 2);
});

test('pretrain: SIGKILL or SIGINT while the indicators are written leaves the previous file or the new one, whole', async () => {
  const dir = join(work, 'indicators');
  mkdirSync(dir);
  const out = join(dir, 'mnist-cnn.json');
  copyFileSync(join(REPO_ROOT, 'indicators/mnist-cnn.json'), out);
  const previous = readFileSync(out, 'utf8');
  for (const signal of ['SIGKILL', 'SIGINT'] as const) {
    const r = await runWatched(['pretrain', ...TINY, '--epochs', '1', '--from', fp, '--bits', '4', '2', '--out', out, '--overwrite'], dir, signal);
    const now = readFileSync(out, 'utf8');
    assert.ok(now === previous || readIndicators(out).layerNames.length === 4, `${signal}: torn indicators file`);
    // the SIGINT run also removed any temp file the killed one left: its write cleans up first
    if (signal === 'SIGINT') interruptedCleanly(r, dir);
  }
});

test('pack: SIGKILL or SIGINT while the packed file is written leaves the previous file or the new one, whole', async () => {
  const dir = join(work, 'packed');
  mkdirSync(dir);
  const out = join(dir, 'w3a4.mpqp');
  const first = runCli(['pack', '--model', 'mnist-cnn', '--from', ft, '--policy', POLICY, '--out', out]);
  assert.equal(first.status, 0, first.stderr);
  const previous = readFileSync(out);
  for (const signal of ['SIGKILL', 'SIGINT'] as const) {
    const r = await runWatched(['pack', '--model', 'mnist-cnn', '--from', ft, '--policy', POLICY, '--out', out, '--overwrite'], dir, signal);
    const now = readFileSync(out);
    assert.ok(now.equals(previous) || readPacked(now, out).layers.length === 6, `${signal}: torn packed file`);
    if (signal === 'SIGINT') interruptedCleanly(r, dir);
  }
});

test('sweep --out: SIGKILL or SIGINT while the new set is written leaves the old set whole; the next sweep cleans up', async () => {
  const { model, indicators } = writeTinySearchInputs(work);
  const out = join(work, 'sweep');
  const args = ['sweep', '--model', model, '--indicators', indicators, '--wb', '2', '3', '4', '--ab', '3', '4', '--cr', '0', '6', '--out', out];
  const first = runCli(args);
  assert.equal(first.status, 0, first.stderr);
  const whole = () => {
    const sweep = JSON.parse(readFileSync(join(out, 'sweep.json'), 'utf8'));
    assert.equal(sweep.points.length, 12);
    assert.equal(readFileSync(join(out, 'sweep.csv'), 'utf8').trim().split('\n').length, 13);
    assert.match(readFileSync(join(out, 'pareto.svg'), 'utf8'), /<\/svg>\s*$/);
  };
  whole();
  // the sweep writes its set into a fresh .sweep.<stamp>.partial folder beside --out, then swaps it in
  for (const signal of ['SIGKILL', 'SIGINT'] as const) {
    const r = await runWatched(args, work, signal, (name) => name.startsWith('.sweep.') && name.endsWith('.partial'));
    assert.ok(r.sent, 'the signal came while the set was written');
    whole();
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  }
  assert.equal(runCli(args).status, 0);
  whole();
  assert.deepEqual(readdirSync(work).filter((f) => f.endsWith('.partial')), [], 'what the killed runs left is cleaned');
});
