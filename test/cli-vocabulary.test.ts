/**
 * The CLI a newcomer meets: how `npx mpq` resolves, one flag vocabulary across commands, --help
 * with its defaults, --json everywhere.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { CLI_MAIN, REPO_ROOT, runCli } from './support.js';

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
