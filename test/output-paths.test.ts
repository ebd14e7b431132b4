import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import {
  chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, statSync, symlinkSync, writeFileSync, type Stats,
} from 'node:fs';
import { join } from 'node:path';
import { readPolicy } from '../src/export/policy-file.js';
import { CLI_MAIN, runCli, tempDir, writeTinySearchInputs, type CliRun } from './support.js';

// Issue 23 (output paths), issue 22 item 7 (inputs that are not regular files) and issue 19 item 1
// (a name read from an input never chooses a directory), through the CLI as a user meets them.

const IS_ROOT = process.getuid?.() === 0;
const dir = tempDir('mpq-paths-');
chmodSync(dir, 0o755); // readable by the unprivileged user of the read-only-folder case
const { model, indicators } = writeTinySearchInputs(dir);
const search = ['search', '--model', model, '--indicators', indicators, '--wb', '4', '--ab', '4', '--cr', '6'];

/** Exit 2, one line on stderr naming `path`, no stack trace. */
function refused(r: CliRun, path: string, reason: RegExp): void {
  assert.equal(r.status, 2, `exit ${r.status}: ${r.stderr}`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line: ${r.stderr}`);
  assert.ok(lines[0]!.startsWith(`mpq: ${path}`), lines[0]);
  assert.match(lines[0]!, reason);
}

/** No temp file of the atomic writer anywhere under `folder`. */
function noTemps(folder: string): void {
  const temps = (readdirSync(folder, { recursive: true }) as string[]).filter((f) => f.endsWith('.tmp'));
  assert.deepEqual(temps, [], `temp files left in ${folder}`);
}

/** What identifies a file system node: its type, device numbers, inode. */
const identity = (s: Stats) => ({ mode: s.mode, rdev: s.rdev, ino: s.ino, size: s.isFile() ? s.size : 0 });

test('character devices are written through, never replaced; a full device is one line and no partial set', (t) => {
  if (!IS_ROOT) return t.skip('mknod needs root: the device-node cases are not run as this user');
  const devices = join(dir, 'devices');
  mkdirSync(devices);
  const nullDev = join(devices, 'null');
  const fullDev = join(devices, 'full');
  execFileSync('mknod', [nullDev, 'c', '1', '3']); // as /dev/null
  execFileSync('mknod', [fullDev, 'c', '1', '7']); // as /dev/full: every write fails with ENOSPC
  const before = { null: identity(lstatSync(nullDev)), full: identity(lstatSync(fullDev)) };

  const ok = runCli([...search, '--out', nullDev]);
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, new RegExp(`wrote ${nullDev}`));
  assert.deepEqual(identity(lstatSync(nullDev)), before.null, 'still the device node');

  const full = runCli([...search, '--out', fullDev]);
  refused(full, fullDev, /cannot write \(no space left on device, ENOSPC\)/);
  assert.deepEqual(identity(lstatSync(fullDev)), before.full, 'still the device node');

  // two outputs, the second fails only when written: the first is not left behind either
  const policy = join(devices, 'policy.json');
  const both = runCli([...search, '--out', policy, '--export', 'limpq-yaml', '--export-out', fullDev]);
  refused(both, fullDev, /no space left on device/);
  assert.equal(existsSync(policy), false, 'all or none: the policy is not written when the export fails');
  noTemps(devices);
});

test('a FIFO is written through (a reader gets the policy) and stays a FIFO', async () => {
  const fifo = join(dir, 'policy.fifo');
  execFileSync('mkfifo', [fifo]);
  const before = identity(lstatSync(fifo));
  const child = spawn(process.execPath, [CLI_MAIN, ...search, '--out', fifo], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const reader = spawn('cat', [fifo], { stdio: ['ignore', 'pipe', 'inherit'] });
  let read = '';
  reader.stdout.on('data', (d) => (read += d));
  // a writer that replaced the FIFO instead would leave the reader waiting: end both after a minute
  const timer = setTimeout(() => [child, reader].forEach((p) => p.kill()), 60_000);
  const [code] = await Promise.all([
    new Promise<number | null>((resolve) => child.on('close', resolve)),
    new Promise((resolve) => reader.on('close', resolve)),
  ]);
  clearTimeout(timer);
  assert.equal(code, 0, stderr);
  assert.equal(JSON.parse(read).format, 'mpq-policy');
  assert.deepEqual(identity(lstatSync(fifo)), before, 'still the FIFO');
  noTemps(dir);
});

test('a symlink is followed: its target is replaced, the link stays; a dangling link is refused', () => {
  const links = join(dir, 'links');
  mkdirSync(links);
  const target = join(links, 'target.json');
  writeFileSync(target, 'old');
  const link = join(links, 'link.json');
  symlinkSync('target.json', link);
  const r = runCli([...search, '--out', link]);
  assert.equal(r.status, 0, r.stderr);
  assert.ok(lstatSync(link).isSymbolicLink(), 'still a symlink');
  assert.equal(readlinkSync(link), 'target.json');
  assert.equal(readPolicy(target).format, 'mpq-policy');

  const dangling = join(links, 'dangling.json');
  symlinkSync('missing/nowhere.json', dangling);
  refused(runCli([...search, '--out', dangling]), dangling, /a symbolic link to a missing file/);
  assert.equal(readlinkSync(dangling), 'missing/nowhere.json');
  noTemps(links);
});

test('an existing directory, a file as a parent, /proc: one line, exit 2, nothing written', () => {
  const folder = join(dir, 'a-folder');
  mkdirSync(folder);
  refused(runCli([...search, '--out', folder]), folder, /is a directory/);
  assert.deepEqual(readdirSync(folder), []);
  refused(runCli(['export', '--format', 'nni', '--out', folder, join(dir, 'none.json')]), folder, /is a directory/);

  const file = join(dir, 'plain.txt');
  writeFileSync(file, 'keep');
  const under = join(file, 'x.json');
  refused(runCli([...search, "--out", under]), under, /plain.txt is a regular file, not a directory/);
  assert.equal(readFileSync(file, 'utf8'), 'keep');

  refused(runCli([...search, '--out', '/proc/mpq-nowhere/x.json']), '/proc/mpq-nowhere/x.json', /cannot write/);
  // the sweep's folder too (node's recursive mkdir never returned there)
  const sweep = spawnSync(process.execPath, [CLI_MAIN, 'sweep', '--model', model, '--indicators', indicators, '--out', '/proc/mpq-nowhere/s'], { encoding: 'utf8', timeout: 60_000 });
  refused({ status: sweep.status, stdout: sweep.stdout, stderr: sweep.stderr }, '--out /proc/mpq-nowhere/s', /cannot write/);

  // the export target is checked before anything is written, so --out is not written either
  const policy = join(dir, 'first.json');
  refused(runCli([...search, '--out', policy, '--export', 'nni', '--export-out', under]), under, /not a directory/);
  assert.equal(existsSync(policy), false);
  noTemps(dir);
});

test('a folder mpq may not write in: one line naming the path, exit 2, no temp file', (t) => {
  const ro = join(dir, 'read-only');
  mkdirSync(ro);
  chmodSync(ro, 0o555);
  // root writes anywhere: the case runs as the unprivileged user `nobody` then
  const asUser = IS_ROOT ? { uid: 65534, gid: 65534 } : {};
  const probe = spawnSync(process.execPath, ['-e', 'process.exit(0)'], asUser);
  if (probe.status !== 0) return t.skip(`cannot run node as uid 65534 here (${probe.error?.message ?? probe.status})`);
  const out = join(ro, 'p.json');
  const r = spawnSync(process.execPath, [CLI_MAIN, ...search, '--out', out], { encoding: 'utf8', cwd: dir, ...asUser });
  refused({ status: r.status, stdout: r.stdout, stderr: r.stderr }, out, /cannot write in .*read-only \(permission denied, EACCES\)/);
  assert.deepEqual(readdirSync(ro), []);
});

test('- and /dev/stdout mean stdout: the policy is printed, the report goes to stderr, nothing is replaced', () => {
  for (const out of ['-', '/dev/stdout']) {
    const r = runCli([...search, '--out', out]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).format, 'mpq-policy');
    assert.match(r.stderr, /mpq search: model tiny/);
  }
  assert.ok(statSync('/dev/stdout').isCharacterDevice() || lstatSync('/dev/stdout').isSymbolicLink());
  const exported = runCli(['export', '--format', 'nni', '--out', '-', writePolicyFile()]);
  assert.equal(exported.status, 0, exported.stderr);
  assert.ok(Array.isArray(JSON.parse(exported.stdout)));
});

function writePolicyFile(): string {
  const path = join(dir, 'for-export.json');
  const r = runCli([...search, '--out', path]);
  assert.equal(r.status, 0, r.stderr);
  return path;
}

test('inputs that are not regular files: a device, a directory, a FIFO are one line at once (no hang)', () => {
  const fifo = join(dir, 'input.fifo');
  execFileSync('mkfifo', [fifo]);
  const cases: Array<[string[], string, RegExp]> = [
    [['search', '--model', model, '--indicators', '/dev/zero'], '/dev/zero', /is a character device, not an indicators file/],
    [['search', '--model', model, '--indicators', dir], dir, /is a directory, not an indicators file/],
    [['search', '--model', model, '--indicators', fifo], fifo, /is a FIFO, not an indicators file/],
    [['search', '--model', model, '--indicators', indicators, '--latency-table', '/dev/zero', '--max-latency', '1'], '/dev/zero', /not a latency table file/],
    [['export', '--format', 'nni', '/dev/zero'], '/dev/zero', /is a character device, not a policy file/],
    [['eval', '--packed', dir], dir, /is a directory, not a packed model file/],
  ];
  for (const [args, path, reason] of cases) {
    const r = spawnSync(process.execPath, [CLI_MAIN, ...args], { encoding: 'utf8', timeout: 30_000 });
    assert.notEqual(r.signal, 'SIGTERM', `${args.join(' ')} hung`);
    refused({ status: r.status, stdout: r.stdout, stderr: r.stderr }, path, reason);
  }
});

test('a model name from a layer table never chooses a directory: default outputs stay in policies/ and sweeps/', () => {
  const cwd = tempDir('mpq-traversal-');
  const evil = join(cwd, 'evil-table.json');
  const table = JSON.parse(readFileSync(model, 'utf8'));
  writeFileSync(evil, JSON.stringify({ ...table, model: '../../../somewhere/evil' }));
  const r = runCli(['search', '--model', evil, '--indicators', indicators, '--wb', '4', '--ab', '4', '--cr', '6', '--out'], cwd);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(readdirSync(join(cwd, 'policies')), ['somewhere-evil-w4a4-cr6.json']);
  const sweep = runCli(['sweep', '--model', evil, '--indicators', indicators, '--wb', '3', '4', '--ab', '4', '--cr', '0'], cwd);
  assert.equal(sweep.status, 0, sweep.stderr);
  // the sweep's set: its folder (a link to the set it swapped in) and nothing else
  const sweeps = readdirSync(join(cwd, 'sweeps'));
  assert.ok(sweeps.includes('somewhere-evil') && sweeps.every((e) => e.includes('somewhere-evil')), sweeps.join(', '));
  assert.deepEqual(readdirSync(cwd).sort(), ['evil-table.json', 'policies', 'sweeps']);
  assert.equal(existsSync(join(cwd, '..', '..', '..', 'somewhere')), false);
});
