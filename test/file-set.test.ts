import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FileSet } from '../src/util/file-set.js';
import { UserError } from '../src/util/errors.js';
import { tempDir } from './support.js';

const NAMES = ['a.json', 'b.csv'] as const;

function writeSet(dir: string, tag: string): void {
  const set = FileSet.begin(dir, NAMES, '--out');
  set.write('a.json', `{"run":"${tag}"}`);
  set.write('b.csv', `run\n${tag}\n`);
  set.commit();
}

/** Both files present and from the same run. */
function runOf(dir: string): string {
  const a = JSON.parse(readFileSync(join(dir, 'a.json'), 'utf8')).run;
  assert.equal(readFileSync(join(dir, 'b.csv'), 'utf8'), `run\n${a}\n`, 'a.json and b.csv from different runs');
  return a;
}

/** A pid that no process has now: one that ran and ended. */
function deadPid(): number {
  const pid = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout;
  return Number(pid);
}

test('file set: the folder is a link to one whole set; the next set replaces it, and the old one is gone', () => {
  const root = tempDir();
  const dir = join(root, 'out');
  writeSet(dir, 'first');
  assert.ok(lstatSync(dir).isSymbolicLink());
  assert.equal(runOf(dir), 'first');
  const firstTarget = readlinkSync(dir);
  writeSet(dir, 'second');
  assert.equal(runOf(dir), 'second');
  assert.notEqual(readlinkSync(dir), firstTarget);
  assert.deepEqual(readdirSync(root).sort(), ['out', readlinkSync(dir)].sort(), 'nothing else left beside it');
});

test('file set: sets written within one millisecond each replace the last (a set is never renamed onto another)', () => {
  const root = tempDir();
  const dir = join(root, 'out');
  const start = Date.now();
  let n = 0;
  for (; n < 200 && (n < 20 || Date.now() === start); n++) writeSet(dir, `run${n}`);
  assert.equal(runOf(dir), `run${n - 1}`);
  assert.deepEqual(readdirSync(root).sort(), ['out', readlinkSync(dir)].sort(), 'nothing else left beside it');
});

test('file set: an abandoned set leaves the old one as it was, and no folder of its own', () => {
  const root = tempDir();
  const dir = join(root, 'out');
  writeSet(dir, 'kept');
  const set = FileSet.begin(dir, NAMES, '--out');
  set.write('a.json', '{"run":"half"}');
  set.abandon();
  assert.equal(runOf(dir), 'kept');
  assert.equal(readdirSync(root).length, 2);
});

test('file set: a plain folder of an earlier mpq becomes a set; a folder with other files, a file or a foreign link is refused', () => {
  const root = tempDir();
  const plain = join(root, 'plain');
  mkdirSync(plain);
  writeFileSync(join(plain, 'a.json'), '{"run":"old"}');
  writeFileSync(join(plain, 'b.csv.123.tmp'), 'torn');
  writeSet(plain, 'new');
  assert.ok(lstatSync(plain).isSymbolicLink());
  assert.equal(runOf(plain), 'new');
  assert.deepEqual(readdirSync(root).filter((f) => f.startsWith('.plain')), [readlinkSync(plain)], 'the old folder is removed');

  const mixed = join(root, 'mixed');
  mkdirSync(mixed);
  writeFileSync(join(mixed, 'notes.txt'), 'mine');
  assert.throws(() => FileSet.check(mixed, NAMES, '--out'), (e: unknown) => e instanceof UserError && /^--out .*mixed: holds files that are not a sweep's \(notes\.txt\); give a folder of its own$/.test(e.message));
  assert.equal(readFileSync(join(mixed, 'notes.txt'), 'utf8'), 'mine');

  const file = join(root, 'file');
  writeFileSync(file, 'x');
  assert.throws(() => FileSet.check(file, NAMES, '--out'), /--out .*file: not a folder/);

  const foreign = join(root, 'foreign');
  symlinkSync(mixed, foreign);
  assert.throws(() => FileSet.check(foreign, NAMES, '--out'), /--out .*foreign: a symbolic link mpq did not make/);
});

test('file set: what a killed writer left is mended by the next (its partial set and link removed, a missing link restored, unlinked sets removed)', () => {
  const root = tempDir();
  const dir = join(root, 'out');
  writeSet(dir, 'whole');
  const linked = readlinkSync(dir);
  const dead = deadPid();
  // killed while writing: a partial set and a link not yet renamed (one time stamp: a clock tick
  // between two Date.now() calls named two folders, a flaky ENOENT)
  const at = Date.now();
  mkdirSync(join(root, `.out.${at}-${dead}.partial`));
  writeFileSync(join(root, `.out.${at}-${dead}.partial`, 'a.json'), '{"run":"torn"}');
  symlinkSync(linked, join(root, `.out.${at}-${dead}.link`));
  // killed after its set was whole but before the swap
  mkdirSync(join(root, `.out.${at + 1}-${dead}`));
  FileSet.check(dir, NAMES, '--out');
  assert.deepEqual(readdirSync(root).sort(), ['out', linked].sort());
  assert.equal(runOf(dir), 'whole');

  // killed between the two renames that convert a plain folder: the folder is gone, its set whole
  const lost = join(root, 'lost');
  const set = join(root, `.lost.${Date.now()}-${dead}`);
  mkdirSync(set);
  writeFileSync(join(set, 'a.json'), '{"run":"saved"}');
  writeFileSync(join(set, 'b.csv'), 'run\nsaved\n');
  FileSet.check(lost, NAMES, '--out');
  assert.equal(runOf(lost), 'saved');
});

test('file set: a running writer\'s partial set is left alone', () => {
  const root = tempDir();
  const dir = join(root, 'out');
  const mine = FileSet.begin(dir, NAMES, '--out');
  FileSet.check(dir, NAMES, '--out'); // another writer starting meanwhile
  mine.write('a.json', '{"run":"late"}');
  mine.write('b.csv', 'run\nlate\n');
  mine.commit();
  assert.equal(runOf(dir), 'late');
  assert.ok(!existsSync(join(root, 'out.partial')));
});
