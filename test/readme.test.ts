/**
 * The README's commands run as written: every ```sh block, in order, in a scratch copy of the
 * checkout, with training shrunk by these rules (so the README and this test cannot drift apart):
 * - `npm ci` and `npm test` are skipped (this test runs inside them), and so are system package
 *   installs (`sudo apt-get install`); `npx mpq` is the built CLI;
 * - `--epochs N` becomes `--epochs 1`; train, pretrain, finetune, quantize, eval, simulate and
 *   the RL searcher take at most 256 images (`--limit 256`, or the README's when smaller);
 *   `simulate` and `pack` calibrate on 2 images per class (`--num-sample 2`);
 * - LIMPQ's .pkl, which a user downloads (the README says from where), is taken from the
 *   reference data beside the checkout when it is there; else that command is skipped, saying so.
 * A command that exits non-zero fails the test, with its stderr; so does a file a later command
 * reads that an earlier one did not write.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { CLI_MAIN, HAS_REFERENCE, REFERENCE_DIR, REPO_ROOT, tempDir } from './support.js';

/** The shell commands of every ```sh block: continuation lines joined, comments dropped, `&&` split. */
export function readmeCommands(markdown: string): string[][] {
  const blocks = [...markdown.matchAll(/^```sh\n([\s\S]*?)^```/gm)].map((m) => m[1]);
  return blocks.map((block) => block
    .replace(/\s*\\\n\s*/g, ' ')
    .split('\n')
    .map((line) => line.replace(/(^|\s)#.*$/, '').trim())
    .filter((line) => line !== '')
    .flatMap((line) => line.split('&&').map((c) => c.trim())));
}

const TRAINING = new Set(['train', 'pretrain', 'finetune', 'quantize', 'eval', 'simulate']);
const IMAGES = 256;

/** The shrunk argv of one command (without `npx mpq`). */
export function shrink(words: string[]): string[] {
  const args = [...words];
  const [sub] = args;
  const at = (flag: string) => args.indexOf(flag);
  if (at('--epochs') >= 0) args[at('--epochs') + 1] = '1';
  const isRl = sub === 'search' && args.includes('rl');
  if (TRAINING.has(sub) || isRl) {
    if (at('--limit') >= 0) args[at('--limit') + 1] = String(Math.min(Number(args[at('--limit') + 1]), IMAGES));
    else if (!(sub === 'eval' && args.includes('--packed')) && !isRl) args.push('--limit', String(IMAGES));
  }
  if ((sub === 'simulate' || (sub === 'pack' && (args.includes('--ncnn-table') || args.includes('--trt-cache')))) && at('--num-sample') < 0) {
    args.push('--num-sample', '2');
  }
  if (isRl && at('--rollouts') >= 0) args[at('--rollouts') + 1] = '3';
  return args;
}

test('the README\'s shell blocks parse into commands, shrunk by the documented rules', () => {
  const blocks = readmeCommands('```sh\nnpm ci && npx mpq search --wb 3   # a note\nnpx mpq train --model m \\\n  --epochs 24\n```\ntext\n```js\nnot(run)\n```\n');
  assert.deepEqual(blocks, [['npm ci', 'npx mpq search --wb 3', 'npx mpq train --model m --epochs 24']]);
  assert.deepEqual(shrink(['train', '--model', 'm', '--epochs', '24']), ['train', '--model', 'm', '--epochs', '1', '--limit', '256']);
  assert.deepEqual(shrink(['pretrain', '--limit', '2000', '--epochs', '2']), ['pretrain', '--limit', '256', '--epochs', '1']);
  assert.deepEqual(shrink(['eval', '--packed', 'x.mpqp']), ['eval', '--packed', 'x.mpqp']);
  assert.deepEqual(shrink(['simulate', '--from', 'f', '--grid']), ['simulate', '--from', 'f', '--grid', '--limit', '256', '--num-sample', '2']);
});

test('every command of the README runs as written, from a copy of the checkout, in order', { timeout: 20 * 60_000 }, (t) => {
  const dir = tempDir('mpq-readme-');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // a user's checkout: the shipped files and fixtures, the installed packages and the build
  for (const path of ['README.md', 'package.json', 'indicators', 'policies', 'test/fixtures']) cpSync(join(REPO_ROOT, path), join(dir, path), { recursive: true });
  for (const path of ['node_modules', 'dist']) symlinkSync(join(REPO_ROOT, path), join(dir, path));
  const pkl = 'limpq/importance_indicators_resnet50.pkl';
  if (HAS_REFERENCE) {
    mkdirSync(join(dir, 'limpq'));
    cpSync(join(REFERENCE_DIR, 'importance_indicators_resnet50.pkl'), join(dir, pkl));
  }
  const blocks = readmeCommands(readFileSync(join(REPO_ROOT, 'README.md'), 'utf8'));
  assert.ok(blocks.length >= 5, `${blocks.length} shell blocks`);
  let ran = 0;
  for (const command of blocks.flat()) {
    const words = command.split(/\s+/);
    if (words[0] === 'sudo' && words[1] === 'apt-get') continue;
    if (words[0] === 'npm') {
      assert.ok(['ci', 'test'].includes(words[1]), `unexpected npm command in the README: ${command}`);
      continue;
    }
    assert.deepEqual(words.slice(0, 2), ['npx', 'mpq'], `a README command that is not mpq's: ${command}`);
    const args = shrink(words.slice(2));
    if (args.includes(pkl) && !HAS_REFERENCE) {
      t.diagnostic(`skipped (no LIMPQ reference data at ${REFERENCE_DIR}): ${command}`);
      continue;
    }
    const r = spawnSync(process.execPath, [CLI_MAIN, ...args], { cwd: dir, encoding: 'utf8', timeout: 10 * 60_000 });
    assert.equal(r.status, 0, `${command}\n(run as: mpq ${args.join(' ')})\nexit ${r.status}: ${r.stderr.trim().split('\n').slice(-3).join('\n')}`);
    ran++;
  }
  assert.ok(ran >= 20, `${ran} commands ran`);
  // what the examples write stays in scratch/ and ckpt/: the shipped files are as shipped
  for (const shipped of ['indicators/mnist-cnn.json', 'policies/mnist-cnn-w3a4-cr12.2.json']) {
    assert.equal(readFileSync(join(dir, shipped), 'utf8'), readFileSync(join(REPO_ROOT, shipped), 'utf8'), `${shipped} unchanged`);
  }
  assert.ok(existsSync(join(dir, 'ckpt/ft/model.json')), 'the fine-tune the later commands read was written');
});
