/**
 * The CLI a newcomer meets: how `npx mpq` resolves, one flag vocabulary across commands, --help
 * with its defaults, --json everywhere.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { CLI_MAIN, REPO_ROOT } from './support.js';

test('npx mpq runs the built CLI from node_modules/.bin, and package.json names no bin that would make npx install the project', () => {
  assert.equal(realpathSync(join(REPO_ROOT, 'node_modules/.bin/mpq')), realpathSync(CLI_MAIN));
  const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8'));
  // with a bin named mpq, npx copies the checkout and its dependencies into its cache first (≈ 20 s)
  assert.equal(pkg.bin, undefined);
});
