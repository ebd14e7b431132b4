import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI_MAIN, runCli, tempDir, writeTinySearchInputs } from './support.js';
import { benchGridArgs, writeSlowSearchInputs } from './sweep-support.js';

const dir = tempDir('mpq-sweep-');
const { model, indicators } = writeTinySearchInputs(dir);
const inputs = ['--model', model, '--indicators', indicators];
// 3 x 2 x 3 points; CR 30 is out of reach (the fixed 8-bit layers alone take more)
const grid = ['--wb', '2', '3', '4', '--ab', '2', '4', '--cr', '0', '8', '30'];
const SET = ['pareto.svg', 'sweep.csv', 'sweep.html', 'sweep.json'];

interface Entry { status: string; objective: number | null; reused_from: number | null; pareto_bitops: boolean; pareto_size: boolean; pareto_both: boolean; weight_bits: number[] | null; act_bits: number[] | null; wb: number; ab: number; cr: number }
interface SweepJson { summary: Record<string, number>; terms: Record<string, string>; points: Entry[]; interrupted: boolean; layers: string[] }

const readSweep = (out: string) => JSON.parse(readFileSync(join(out, 'sweep.json'), 'utf8')) as SweepJson;

/** The page's data, as the explorer reads it. */
function explorerData(out: string): { summary: string; command: string; rows: { index: number; budget_flags: string; objective: number | null }[] } {
  const html = readFileSync(join(out, 'sweep.html'), 'utf8');
  return JSON.parse(/<script type="application\/json" id="sweep-data">(.*?)<\/script>/s.exec(html)![1]);
}

/** The folder holds one run's files, all of them, and they agree (points, counts, summary line). */
function assertWholeSet(out: string): SweepJson {
  assert.deepEqual(readdirSync(out).sort(), SET, `${out} holds ${readdirSync(out).join(', ')}`);
  const s = readSweep(out);
  assert.equal(readFileSync(join(out, 'sweep.csv'), 'utf8').trim().split('\n').length, s.points.length + 1, 'sweep.csv has the points of sweep.json');
  const summary = explorerData(out).summary;
  assert.ok(summary.startsWith(`${s.points.length.toLocaleString('en-US')}`), `explorer: ${summary}`);
  assert.ok(readFileSync(join(out, 'pareto.svg'), 'utf8').includes(`>${summary}</text>`), 'pareto.svg carries the same counts');
  assert.equal(explorerData(out).rows.length, s.points.length);
  return s;
}

test('sweep: the words are counted one way in sweep.json, the summary line, --json, the table, the CSV, the plot and the explorer', () => {
  const out = join(dir, 'words');
  const r = runCli(['sweep', ...inputs, ...grid, '--out', out]);
  assert.equal(r.status, 0, r.stderr);
  const s = assertWholeSet(out);
  const p = s.points;
  const expected = {
    points: p.length,
    solved: p.filter((e) => e.reused_from === null).length,
    reused: p.filter((e) => e.reused_from !== null).length,
    feasible: p.filter((e) => e.objective !== null).length,
    infeasible: p.filter((e) => e.status === 'infeasible').length,
    unresolved: 0,
    policies: new Set(p.filter((e) => e.objective !== null).map((e) => `${e.weight_bits}/${e.act_bits}`)).size,
    pareto_bitops: p.filter((e) => e.pareto_bitops).length,
    pareto_size: p.filter((e) => e.pareto_size).length,
    pareto_both: p.filter((e) => e.pareto_bitops && e.pareto_size).length,
  };
  assert.deepEqual(s.summary, expected);
  assert.ok(expected.reused > 0 && expected.infeasible > 0 && expected.pareto_both < expected.pareto_bitops, JSON.stringify(expected));
  for (const e of p) assert.equal(e.pareto_both, e.pareto_bitops && e.pareto_size);
  assert.deepEqual(Object.keys(s.terms), Object.keys(expected), 'every word counted is defined in sweep.json');
  const line = `${expected.points} points: ${expected.solved} solved, ${expected.reused} reused; ${expected.feasible} feasible (${expected.policies} policies), ${expected.infeasible} infeasible; Pareto: ${expected.pareto_bitops} BitOps, ${expected.pareto_size} size, ${expected.pareto_both} both`;
  assert.ok(r.stdout.includes(`\n${line}; in `), r.stdout);
  assert.equal(explorerData(out).summary, line);
  // the table's Pareto column in the same words
  const rows = r.stdout.trim().split('\n').slice(2, 2 + p.length);
  rows.forEach((row, i) => {
    const word = p[i].pareto_both ? 'both' : p[i].pareto_bitops ? 'BitOps' : p[i].pareto_size ? 'size' : '';
    if (word) assert.match(row, new RegExp(`\\s${word}(\\s|$)`), `row ${i}: ${row}`);
    else assert.doesNotMatch(row, /\s(both|BitOps|size)(\s|$)/, `row ${i}: ${row}`);
  });
  // the CSV's columns
  const [header, ...csv] = readFileSync(join(out, 'sweep.csv'), 'utf8').trim().split('\n').map((l) => l.split(','));
  for (const col of ['pareto_bitops', 'pareto_size', 'pareto_both', 'reused_from'] as const) {
    const k = header.indexOf(col);
    assert.ok(k >= 0, col);
    csv.forEach((row, i) => assert.equal(row[k], String(p[i][col] ?? ''), `${col} of point ${i}`));
  }

  const j = runCli(['sweep', ...inputs, ...grid, '--out', out, '--json']);
  assert.equal(j.status, 0, j.stderr);
  const o = JSON.parse(j.stdout);
  assert.deepEqual(o.summary, expected);
  assert.equal(o.interrupted, false);
  assert.deepEqual(Object.keys(o.files).sort(), SET);
  for (const f of Object.values(o.files) as string[]) assert.ok(existsSync(f), f);

  const q = runCli(['sweep', ...inputs, ...grid, '--out', out, '--quiet', '--png']);
  assert.equal(q.status, 0, q.stderr);
  assert.deepEqual(q.stdout.trim().split('\n'), [`${line}; ${/in [\d.]+ s on 1 thread\(s\)/.exec(q.stdout)![0]}; wrote ${out}: sweep.json, sweep.csv, pareto.svg, sweep.html, pareto.png`]);
  assert.deepEqual([...readFileSync(join(out, 'pareto.png')).subarray(1, 4)].map((c) => String.fromCharCode(c)).join(''), 'PNG');
});

test('sweep: a grid with no feasible point writes its files and exits 3, saying so', () => {
  const out = join(dir, 'none');
  const r = runCli(['sweep', ...inputs, '--wb', '2', '--ab', '2', '--cr', '30', '40', '--out', out]);
  assert.equal(r.status, 3, r.stderr);
  assert.match(r.stderr, /^mpq: no point of the sweep is feasible \(2 infeasible, 0 unresolved\); see .*sweep\.json for each point's reason\n$/);
  assert.equal(assertWholeSet(out).summary.feasible, 0);
});

test('sweep --jobs: more threads than cores, or not a whole number ≥ 1, is refused in one line before any work', () => {
  const t0 = performance.now();
  const r = runCli(['sweep', ...inputs, '--jobs', '1000000']);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /^mpq: --jobs 1000000: at most \d+, one thread per core of this machine\n$/);
  assert.ok(performance.now() - t0 < 20_000);
  for (const bad of ['0', '1.5', 'x', '-2']) {
    const b = runCli(['sweep', ...inputs, '--jobs', bad]);
    assert.equal(b.status, 2, bad);
    assert.match(b.stderr, /^mpq: --jobs: '.*' is not a whole number ≥ 1\n$/, bad);
  }
});

test('sweep --out: a folder holding other files is refused before any work, and left as it was', () => {
  const out = join(dir, 'mine');
  mkdirSync(out);
  writeFileSync(join(out, 'notes.txt'), 'keep');
  const r = runCli(['sweep', ...inputs, ...grid, '--out', out]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /^mpq: --out .*mine: holds files that are not a sweep's \(notes\.txt\); give a folder of its own\n$/);
  assert.deepEqual(readdirSync(out), ['notes.txt']);
});

test('sweep explorer: each point\'s command reproduces it with mpq search (a point searched afresh and a reused one)', () => {
  const out = join(dir, 'commands');
  assert.equal(runCli(['sweep', ...inputs, ...grid, '--out', out]).status, 0);
  const s = readSweep(out);
  const data = explorerData(out);
  const solved = s.points.findIndex((e) => e.objective !== null && e.reused_from === null);
  const reused = s.points.findIndex((e) => e.objective !== null && e.reused_from !== null);
  const cwd = tempDir();
  for (const i of [solved, reused]) {
    const row = data.rows.find((r) => r.index === i)!;
    const command = `${data.command} ${row.budget_flags} --out --json`;
    assert.match(command, /^mpq search /);
    const p = spawnSync('sh', ['-c', command.replace(/^mpq /, `'${process.execPath}' '${CLI_MAIN}' `)], { cwd, encoding: 'utf8' });
    assert.equal(p.status, 0, `${command}: ${p.stderr}`);
    const o = JSON.parse(p.stdout);
    assert.equal(o.objective, s.points[i].objective, command);
    assert.deepEqual(o.weight_bits, s.points[i].weight_bits);
    assert.deepEqual(o.act_bits, s.points[i].act_bits);
  }
  assert.equal(readdirSync(join(cwd, 'policies')).length, 2, '--out wrote the policies');
});

/** Start a sweep; resolve with its exit once it ends. */
function startSweep(args: string[]) {
  const child = spawn(process.execPath, [CLI_MAIN, 'sweep', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  child.stdout.resume();
  const exit = new Promise<{ code: number | null; signal: string | null; stderr: string }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stderr })));
  return { child, exit };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The files of the folder, byte for byte. */
function snapshot(out: string): Record<string, string> {
  return Object.fromEntries(readdirSync(out).map((f) => [f, readFileSync(join(out, f), 'latin1')]));
}

/** Nothing beside the folder but the one set it links to. */
function assertNoLeftovers(parent: string, name: string): void {
  const mine = readdirSync(parent).filter((f) => f === name || f.startsWith(`.${name}.`));
  assert.equal(mine.length, 2, `beside ${name}: ${mine.join(', ')}`);
  assert.ok(lstatSync(join(parent, name)).isSymbolicLink());
}

test('sweep interrupted: Ctrl-C before any point leaves the earlier set whole; during the solve it writes the points so far as one set', async () => {
  const slow = writeSlowSearchInputs(dir);
  const parent = join(dir, 'signals');
  mkdirSync(parent);
  const out = join(parent, 'set');
  assert.equal(runCli(['sweep', ...inputs, ...grid, '--out', out]).status, 0);
  const before = snapshot(out);

  const early = startSweep(['--model', slow.model, '--indicators', slow.indicators, ...benchGridArgs(), '--out', out]);
  await sleep(50);
  early.child.kill('SIGINT');
  const e = await early.exit;
  assert.ok(e.code === 130 || e.signal === 'SIGINT', `exit ${e.code} ${e.signal}: ${e.stderr}`);
  assert.deepEqual(snapshot(out), before, 'the earlier set is untouched');
  assertNoLeftovers(parent, 'set');

  // wait longer each time until the interruption falls inside the solve (from short waits up: on a
  // quiet machine the whole sweep can end within 1.5 s)
  for (const wait of [300, 600, 1000, 1500, 3000, 6000, 12_000]) {
    const run = startSweep(['--model', slow.model, '--indicators', slow.indicators, ...benchGridArgs(), '--out', out]);
    await sleep(wait);
    run.child.kill('SIGINT');
    const r = await run.exit;
    assert.equal(r.code, 130, r.stderr);
    assertNoLeftovers(parent, 'set');
    const m = /^mpq: interrupted after (\d+) of 1000 points; wrote /m.exec(r.stderr);
    if (!m) {
      assert.match(r.stderr, /interrupted before any point was solved; .* keeps the files it had/);
      assert.deepEqual(snapshot(out), before);
      continue;
    }
    const s = assertWholeSet(out);
    assert.equal(s.interrupted, true);
    assert.equal(s.points.length, Number(m[1]));
    assert.ok(s.points.length > 0 && s.points.length < 1000);
    assert.ok(explorerData(out).summary.startsWith(`${s.points.length.toLocaleString('en-US')} of 1,000 points: `));
    return;
  }
  assert.fail('no interruption fell inside the solve');
});

test('sweep killed at any moment (SIGKILL): the folder holds one whole run\'s files, and the next run clears what the kill left', async (t) => {
  const parent = join(dir, 'kills');
  mkdirSync(parent);
  const out = join(parent, 'set');
  const small = [...inputs, ...grid, '--out', out];
  // the other run: a different grid, so a mix of the two would show
  const other = [...inputs, '--wb', '3', '4', '--ab', '4', '--cr', '0', '--out', out];
  const first = runCli(['sweep', ...small]);
  assert.equal(first.status, 0, first.stderr);
  const t0 = performance.now();
  const second = runCli(['sweep', ...other]);
  assert.equal(second.status, 0, second.stderr);
  const span = performance.now() - t0;
  const sizes = new Set<number>();
  for (let k = 0; k < 10; k++) {
    const run = startSweep(k % 2 ? small : other);
    await sleep((span * (k + 0.5)) / 10);
    run.child.kill('SIGKILL');
    await run.exit;
    const s = assertWholeSet(out);
    sizes.add(s.points.length);
    assert.ok([2, 18].includes(s.points.length), `${s.points.length} points`);
  }
  t.diagnostic(`sets after the kills: ${[...sizes].join(', ')} points`);
  assert.equal(runCli(['sweep', ...small]).status, 0);
  assertNoLeftovers(parent, 'set');
  assert.equal(assertWholeSet(out).points.length, 18);
});

test('searchArgs + budgetArgs are the inverse of the flag parsing: every problem flag survives the round trip', async () => {
  const { Command } = await import('commander');
  const { addProblemOptions, budgetArgs, budgetGrid, inputSpec, parseCommon, searchArgs, shellWords } = await import('../src/cli/search-options.js');
  const latency = join(dir, 'latency.json');
  writeFileSync(latency, JSON.stringify({ unit: 'ms', layers: { c1: { w4a4: 0.1 } } }));
  const parse = (argv: string[]) => addProblemOptions(new Command().exitOverride(), false).parse(argv, { from: 'user' }).opts();
  const given = ['--model', 'my model.json', '--indicators', "it's.json", '--bits', '8', '4', '2', '--alpha', '0.5', '--no-bops', '--latency-table', latency,
    '--w-bit-min', '2', '--w-bit-max', '4', '--equivalent-bits', '3.5', '--fixed', 'c1', 'c4', '--solver', 'highs', '--cr', '10', '--max-bitops', '2', '--max-size-mb', '1.5', '--max-latency', '7'];
  const o = parse(given);
  const common = await parseCommon(o);
  const [point] = budgetGrid(o);
  const again = parse([...searchArgs(inputSpec(o), common, String(o.solver)), ...budgetArgs(common, point)]);
  const { latencyTable: _table, ...flags } = common; // functions: compared by the path they came from
  const { latencyTable: _again, ...flagsAgain } = await parseCommon(again);
  assert.deepEqual(flagsAgain, flags);
  assert.deepEqual(inputSpec(again), inputSpec(o));
  assert.deepEqual(budgetGrid(again), [point]);
  assert.equal(again.solver, 'highs');
  // quoted for a shell: sh gives back the same words
  const words = ['mpq', 'search', ...searchArgs(inputSpec(o), common, 'highs')];
  const echoed = spawnSync('sh', ['-c', `printf '%s\\n' ${shellWords(words)}`], { encoding: 'utf8' }).stdout.trimEnd().split('\n');
  assert.deepEqual(echoed, words);
});
