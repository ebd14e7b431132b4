import { test } from 'node:test';
import assert from 'node:assert/strict';
import { highsSolver } from '../src/search/solvers/highs.js';
import { crossCheck } from './solver-crosscheck.js';
import { randomMultiRowInstance } from './random-problems.js';

test('exact solver equals HiGHS on 150 random instances', async () => {
  const seeds = Array.from({ length: 150 }, (_, i) => 1000 + i);
  const tally = await crossCheck(highsSolver, seeds);
  // the generator must exercise every case it claims to
  assert.ok(tally.optimal > 50 && tally.infeasible > 5 && tally.removed > 15, JSON.stringify(tally));
});

test('three and four budget rows, indicators or an objective table: exact equals HiGHS on 30 random instances', async () => {
  const tally = await crossCheck(highsSolver, Array.from({ length: 30 }, (_, i) => 9500 + i), randomMultiRowInstance);
  assert.ok(tally.optimal > 10 && tally.infeasible > 1, JSON.stringify(tally));
});
