import { test } from 'node:test';
import assert from 'node:assert/strict';
import { glpkSolver } from '../src/search/solvers/glpk.js';
import { crossCheck } from './solver-crosscheck.js';
import { randomMultiRowInstance } from './random-problems.js';

test('exact solver equals glpk.js on 1,000 random instances', async () => {
  const seeds = Array.from({ length: 1000 }, (_, i) => 5000 + i);
  const tally = await crossCheck(glpkSolver, seeds);
  // the generator must exercise every case it claims to
  assert.ok(tally.optimal > 300, `optimal instances: ${tally.optimal}`);
  assert.ok(tally.infeasible > 30, `infeasible instances: ${tally.infeasible}`);
  assert.ok(tally.removed > 100, `instances with wired points: ${tally.removed}`);
});

test('three and four budget rows (BitOps, size, a latency table, a user cost table): exact equals glpk.js on 100 random instances', async () => {
  const tally = await crossCheck(glpkSolver, Array.from({ length: 100 }, (_, i) => 9000 + i), randomMultiRowInstance);
  assert.ok(tally.optimal > 30 && tally.infeasible > 3, JSON.stringify(tally));
});
