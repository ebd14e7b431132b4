import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LoadedIndicators } from '../src/indicators/indicators.js';
import { formulate, MAX_OBJECTIVE, MIN_OBJECTIVE } from '../src/search/problem.js';
import { solveExact } from '../src/search/solvers/exact.js';
import { highsOutcome } from '../src/search/solvers/highs.js';
import { UserError } from '../src/util/errors.js';
import { limpqLikeIndicators, llmTable, LLM_BITS } from '../bench/instances.js';
import { randomInstance } from './random-problems.js';
import { runCli, tempDir, writeTinySearchInputs, type CliRun } from './support.js';

// Issue 19, items 2 and 3: no wrong answer at extreme magnitudes, and every solver failure is one line.

const dir = tempDir();
const { model, indicators } = writeTinySearchInputs(dir);
const base = ['search', '--model', model, '--indicators', indicators];

function oneLine(r: CliRun, status: number, pattern: RegExp) {
  assert.equal(r.status, status, `exit ${r.status}: ${r.stderr}`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line expected: ${r.stderr}`);
  assert.match(lines[0], pattern);
}

function scaled(ind: LoadedIndicators, factor: number): LoadedIndicators {
  const times = (t: Record<string, Record<string, number>>) =>
    Object.fromEntries(Object.entries(t).map(([layer, byBits]) => [layer, Object.fromEntries(Object.entries(byBits).map(([b, v]) => [b, v * factor]))]));
  return { ...ind, weight: times(ind.weight), act: times(ind.act) };
}

test('indicators scaled by a power of two give the same policy at every magnitude the search accepts', () => {
  // Multiplying every cost by 2^e is exact, so the optimum cannot change. Before costs were
  // normalised inside the solvers, tiny objectives (2^-500) met absolute tolerances and large ones
  // (2^990) overflowed the hull arithmetic: both returned another policy, labelled optimal.
  const table = llmTable(28);
  const cases = [
    { table, ind: limpqLikeIndicators(table, 1), opts: { bits: LLM_BITS, alpha: 2, bops: true, weightBits: 4, actBits: 6, cr: 6 } },
    ...[7000, 7001, 7002, 7007].map((seed) => randomInstance(seed)),
  ];
  for (const [c, { table, ind, opts }] of cases.entries()) {
    const f = formulate(table, ind, opts);
    const reference = solveExact(f.problem);
    assert.equal(reference.status, 'optimal');
    // up to both ends of the accepted range: the most expensive policy between 1e-300 and 1e300
    const total = f.problem.choices.reduce((s, cs) => s + Math.max(...cs.map((x) => x.cost)), 0);
    for (const e of [Math.ceil(Math.log2(MIN_OBJECTIVE / total)), -500, 500, Math.floor(Math.log2(MAX_OBJECTIVE / total))]) {
      const r = solveExact(formulate(table, scaled(ind, 2 ** e), opts).problem);
      assert.equal(r.status, 'optimal', `case ${c}, 2^${e}`);
      assert.deepEqual(r.choice, reference.choice, `case ${c}, 2^${e}`);
    }
  }
});

test('an objective beyond the accepted range is refused in one line naming --alpha or the indicators', () => {
  for (const alpha of ['1e308', '1e305']) oneLine(runCli([...base, '--alpha', alpha]), 2, new RegExp(`^mpq: --alpha ${alpha.replace('e', 'e\\+')}: .*1e\\+300`));
  const ind = JSON.parse(readFileSync(indicators, 'utf8'));
  ind.act.c2['3'] = 1e305;
  const huge = join(dir, 'huge-ind.json');
  writeFileSync(huge, JSON.stringify(ind));
  oneLine(runCli(['search', '--model', model, '--indicators', huge]), 2, /^mpq: .*huge-ind\.json: .*'c2'.*1e\+?300/);
  ind.act.c2['3'] = 1e-305;
  for (const k of Object.keys(ind.act)) for (const b of Object.keys(ind.act[k])) ind.act[k][b] = 1e-305;
  for (const k of Object.keys(ind.weight)) for (const b of Object.keys(ind.weight[k])) ind.weight[k][b] = 1e-305;
  writeFileSync(huge, JSON.stringify(ind));
  oneLine(runCli(['search', '--model', model, '--indicators', huge]), 2, /^mpq: .*huge-ind\.json: .*1e-300/);
});

test('layer counts beyond 1e15, where budget sums would lose other layers, are refused in one line naming the field', () => {
  const table = JSON.parse(readFileSync(model, 'utf8'));
  table.layers[1].macs = 1e300;
  const path = join(dir, 'huge-macs.json');
  writeFileSync(path, JSON.stringify(table));
  oneLine(runCli(['search', '--model', path, '--indicators', indicators]), 2, /^mpq: model 'tiny': layer 'c2': macs 1e\+300 is beyond 1e\+15/);
  table.layers[1].macs = 200000;
  table.layers[2].params = 1e17;
  writeFileSync(path, JSON.stringify(table));
  oneLine(runCli(['search', '--model', path, '--indicators', indicators, '--no-bops']), 2, /^mpq: model 'tiny': layer 'c3': params 100000000000000000 is beyond 1e\+15/);
});

test('budgets that are not finite are refused in one line naming the flag', () => {
  oneLine(runCli([...base, '--max-bitops', '1e300']), 2, /^mpq: --max-bitops 1e\+?300: /);
  oneLine(runCli([...base, '--cr', '1e-320']), 2, /^mpq: (--cr|compression ratio) 1e-320: /);
  oneLine(runCli([...base, '--wb', '1e200', '--ab', '1e200']), 2, /^mpq: .*--(wb|weight-bits).*--(ab|act-bits)|^mpq: W1e\+200A1e\+200/);
});

test('--solver highs at a large --alpha: the same optimum as exact, not a HiGHS failure', () => {
  const exact = runCli([...base, '--alpha', '1e50', '--json']);
  const highs = runCli([...base, '--alpha', '1e50', '--solver', 'highs', '--json']);
  assert.equal(exact.status, 0, exact.stderr);
  assert.equal(highs.status, 0, highs.stderr);
  const a = JSON.parse(exact.stdout), b = JSON.parse(highs.stdout);
  assert.ok(Math.abs(a.objective - b.objective) <= 1e-9 * a.objective, `${a.objective} vs ${b.objective}`);
});

test('every HiGHS status other than optimal, infeasible or a limit is one line with exit 5', () => {
  for (const status of ['Unknown', 'Unbounded', 'Model error', 'Solve error', 'Unbounded or infeasible']) {
    assert.throws(() => highsOutcome(status), (e: unknown) =>
      e instanceof UserError && e.exitCode === 5 && e.message.includes(`'${status}'`) && e.message.endsWith('try solver exact') && !e.message.includes('\n'));
  }
  assert.equal(highsOutcome('Optimal'), 'optimal');
  assert.equal(highsOutcome('Infeasible'), 'infeasible');
  assert.equal(highsOutcome('Time limit reached'), 'time_limit');
});
