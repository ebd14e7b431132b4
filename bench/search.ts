/**
 * Search benchmarks on LIMPQ's published ResNet-50 indicators (read from ../shared, never copied):
 * the W3A4/CR12.2 solve per solver (median of repeated in-process solves), the whole `mpq search`
 * process, and a 1,000-point sweep. HiGHS and glpk.js are the references measured in the same run.
 *
 *   node dist/bench/search.js [--runs 30] [--mip-runs 20]
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { readIndicators } from '../src/indicators/indicators.js';
import { readLayerTable } from '../src/model/table-file.js';
import { formulate } from '../src/search/problem.js';
import { SOLVERS } from '../src/search/solvers/index.js';

const ROOT = resolve(fileURLToPath(import.meta.url), '../../..');
const REF = process.env.MPQ_REFERENCE ?? resolve(ROOT, '../shared/reference/limpq-resnet50');
const MAIN = join(ROOT, 'dist/src/cli/main.js');

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

export async function benchSearch(runs = 30, mipRuns = 20): Promise<void> {
  if (!existsSync(join(REF, 'importance_indicators_resnet50.pkl'))) {
    console.log(`search: skipped (no LIMPQ reference data at ${REF})`);
    return;
  }
  const model = join(REF, 'layers-reference-arithmetic.json');
  const pkl = join(REF, 'importance_indicators_resnet50.pkl');
  const table = readLayerTable(model);
  const ind = readIndicators(pkl);
  const f = formulate(table, ind, { bits: [6, 5, 4, 3, 2], alpha: 2, bops: true, weightBits: 3, actBits: 4, cr: 12.2 });
  const medians: Record<string, number> = {};
  for (const solver of Object.values(SOLVERS)) {
    const n = solver.name === 'exact' ? runs : mipRuns;
    const times: number[] = [];
    let objective = NaN;
    for (let r = 0; r < n + 1; r++) {
      const s = await solver.solve(f.problem);
      if (r > 0) times.push(s.solveMs); // the first run pays for loading and compiling
      objective = s.choice!.reduce((acc, j, i) => acc + f.problem.choices[i][j].cost, 0);
    }
    medians[solver.name] = median(times);
    console.log(`search resnet50 W3A4/CR12.2 ${solver.name}: median ${medians[solver.name].toFixed(2)} ms over ${n} solves (min ${Math.min(...times).toFixed(2)} ms), objective ${objective}`);
  }
  console.log(`search: exact is ${(medians.highs / medians.exact).toFixed(1)}x faster than HiGHS, ${(medians.glpk / medians.exact).toFixed(1)}x faster than glpk.js (target: exact ≤ 2 ms)`);

  /** Ten fresh `mpq search --json` processes (node started with `nodeFlags`): each one's wall time and solve_ms. */
  const freshSearches = (nodeFlags: string[]) => Array.from({ length: 10 }, () => {
    const t0 = performance.now();
    const p = spawnSync(process.execPath, [...nodeFlags, MAIN, 'search', '--model', model, '--indicators', pkl, '--bits', '6', '5', '4', '3', '2', '--wb', '3', '--ab', '4', '--cr', '12.2', '--json'], { encoding: 'utf8' });
    const ms = performance.now() - t0;
    if (p.status !== 0) throw new Error(`mpq search failed: ${p.stderr}`);
    return { ms, solveMs: JSON.parse(p.stdout).solve_ms as number };
  });
  const fresh = freshSearches([]);
  const procTimes = fresh.map((r) => r.ms), firstSolves = fresh.map((r) => r.solveMs);
  console.log(`search: whole \`mpq search\` process median ${median(procTimes).toFixed(0)} ms over 10 runs (target ≤ 150 ms)`);
  console.log(`search: first solve in a fresh process (solve_ms) median ${median(firstSolves).toFixed(2)} ms, worst ${Math.max(...firstSolves).toFixed(2)} ms over 10 processes (target ≤ 5 ms)`);
  // the reference: the same processes with the module compiled as V8 would by itself (a wasm flag of
  // the user's own, here V8's default, turns the optimising compile ahead off)
  const plainSolves = freshSearches(['--wasm-lazy-compilation']).map((r) => r.solveMs);
  console.log(`search: first solve without the compile ahead (V8's own tiering) median ${median(plainSolves).toFixed(2)} ms, worst ${Math.max(...plainSolves).toFixed(2)} ms: ${(median(plainSolves) / median(firstSolves)).toFixed(1)}x the compiled-ahead median`);

  const values = (from: number, step: number) => Array.from({ length: 10 }, (_, i) => String(+(from + i * step).toFixed(2)));
  const t0 = performance.now();
  const out = join(ROOT, 'scratch', 'bench-sweep');
  const p = spawnSync(process.execPath, [MAIN, 'sweep', '--model', model, '--indicators', pkl, '--wb', ...values(2, 0.25), '--ab', ...values(2.5, 0.3), '--cr', ...values(8, 0.5), '--out', out], { encoding: 'utf8' });
  if (p.status !== 0) throw new Error(`mpq sweep failed: ${p.stderr}`);
  console.log(`search: 1,000-point sweep ${((performance.now() - t0) / 1000).toFixed(2)} s wall, whole process (target ≤ 1 s); ${p.stdout.trim().split('\n').pop()}`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await benchSearch(flag('--runs', 30), flag('--mip-runs', 20));
}
