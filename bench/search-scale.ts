/**
 * Exact search at scale (issue 15, issue 22), on seeded instances (bench/instances.ts), with HiGHS
 * as the reference measured in the same run:
 * - LLM-like tables of 224 and 448 layers, 6 × 6 candidates, BitOps + size budgets at several
 *   levels and seeds: the exact solve's median over repeated warm solves per instance, then the
 *   median and worst over instances (target ≤ 50 ms each), and HiGHS on each instance;
 * - weight-only tables of 1,000 layers (activations fixed, one size budget; target ≤ 10 ms);
 * - CNN-like tables of 1,000 / 5,000 / 10,000 layers under a time limit: status, gap, time.
 * Times are CPU time of this process (the machine is shared: wall time swings with other jobs),
 * except HiGHS's, which is its own solve time.
 *
 *   node dist/bench/search-scale.js [--seeds 3] [--runs 5] [--highs 1] [--big-limit 10]
 */
import { pathToFileURL } from 'node:url';
import { cnnTable, limpqLikeIndicators, llmTable, LLM_BITS } from './instances.js';
import type { ObjectiveTable } from '../src/search/objective-table.js';
import { formulate, type Problem } from '../src/search/problem.js';
import { solveExact } from '../src/search/solvers/exact.js';
import { highsSolver } from '../src/search/solvers/highs.js';
import type { Solution } from '../src/search/solvers/solver.js';
import { evaluateChoice } from '../src/search/verify.js';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** CPU and wall milliseconds of one exact solve (medians of `runs` after one warm-up), and its answer. */
function timeExact(problem: Problem, runs: number): { ms: number; wallMs: number; solution: Solution } {
  let solution = solveExact(problem);
  const cpu: number[] = [], wall: number[] = [];
  for (let r = 0; r < runs; r++) {
    const c0 = process.cpuUsage();
    solution = solveExact(problem);
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1000);
    wall.push(solution.solveMs);
  }
  return { ms: median(cpu), wallMs: median(wall), solution };
}

interface Instance { name: string; problem: Problem }

async function compare(label: string, instances: Instance[], runs: number, highs: boolean, targetMs: number): Promise<void> {
  const exactMs: number[] = [], wallMs: number[] = [], ratios: number[] = [];
  for (const { name, problem } of instances) {
    const { ms, wallMs: wall, solution } = timeExact(problem, runs);
    exactMs.push(ms);
    wallMs.push(wall);
    const mine = evaluateChoice(problem, solution.choice!);
    let line = `${label} ${name}: exact ${ms.toFixed(2)} ms (wall ${wall.toFixed(2)} ms; ${solution.status}, ${solution.stats!.rounds} rounds, ${solution.stats!.searchedLayers} layers searched, ${solution.stats!.states} partial policies)`;
    if (highs) {
      const h = await highsSolver.solve(problem);
      const theirs = evaluateChoice(problem, h.choice!);
      const same = Math.abs(theirs.objective - mine.objective) <= 1e-9 * Math.abs(mine.objective);
      ratios.push(h.solveMs / ms);
      line += `, HiGHS ${h.solveMs.toFixed(0)} ms (${(h.solveMs / ms).toFixed(0)}x)${same ? ', same objective' : `, objective ${theirs.objective} vs ${mine.objective}`}`;
    }
    console.log(line);
  }
  const worst = Math.max(...exactMs);
  console.log(`${label}: exact median ${median(exactMs).toFixed(2)} ms, worst ${worst.toFixed(2)} ms CPU (wall median ${median(wallMs).toFixed(2)}, worst ${Math.max(...wallMs).toFixed(2)} ms) over ${instances.length} instances (target ≤ ${targetMs} ms: ${worst <= targetMs ? 'met' : 'not met'})`
    + (ratios.length ? `; HiGHS/exact median ${median(ratios).toFixed(0)}x, least ${Math.min(...ratios).toFixed(0)}x` : ''));
}

export async function benchSearchScale(opts: { seeds: number; runs: number; highs: boolean; bigLimitS: number }): Promise<void> {
  const levels: [number, number, number][] = [[4, 6, 6], [3, 4, 8], [5, 6, 5], [4, 4, 7]];
  for (const layers of [224, 448]) {
    const table = llmTable(layers);
    const instances: Instance[] = [];
    for (let seed = 1; seed <= opts.seeds; seed++) {
      const ind = limpqLikeIndicators(table, seed);
      for (const [wb, ab, cr] of levels) {
        instances.push({ name: `seed ${seed} W${wb}A${ab}/CR${cr}`, problem: formulate(table, ind, { bits: LLM_BITS, alpha: 2, bops: true, weightBits: wb, actBits: ab, cr }).problem });
      }
    }
    await compare(`scale llm-${layers}`, instances, opts.runs, opts.highs, 50);
  }

  // weight-only: each layer's weight indicator per bits as an objective table, activations at 16 bits, a size budget
  const table = llmTable(1000);
  const weightOnly: Instance[] = [];
  for (let seed = 1; seed <= opts.seeds; seed++) {
    const ind = limpqLikeIndicators(table, seed);
    const objective: ObjectiveTable = {
      kind: 'objective-table', path: `weight-only-${seed}.json`, sha256: '0'.repeat(64), layerNames: ind.layerNames, weightOnly: true, actBits: 16,
      costs: Object.fromEntries(ind.layerNames.map((l) => [l, Object.fromEntries(LLM_BITS.map((w) => [`w${w}`, ind.weight[l][String(w)]]))])),
    };
    for (const bitsPerWeight of [3.5, 4.25, 5]) {
      weightOnly.push({
        name: `seed ${seed} ${bitsPerWeight} bits/weight`,
        problem: formulate(table, objective, { bits: LLM_BITS, alpha: 0, bops: false, weightBits: 0, actBits: 0, equivalentBits: bitsPerWeight }).problem,
      });
    }
  }
  await compare('scale weight-only-1000', weightOnly, opts.runs, opts.highs, 10);

  // issue 22's tables: thousands of CNN-like layers, 5 candidate bits, W3A4/CR12.2, under a time limit
  for (const layers of [1000, 5000, 10000]) {
    const t = cnnTable(layers, 1);
    const f = formulate(t, limpqLikeIndicators(t, 1, [6, 5, 4, 3, 2]), { bits: [6, 5, 4, 3, 2], alpha: 2, bops: true, weightBits: 3, actBits: 4, cr: 12.2 });
    const t0 = performance.now();
    const r = solveExact(f.problem, { timeLimitMs: opts.bigLimitS * 1000 });
    const seconds = (performance.now() - t0) / 1000;
    const objective = r.choice ? evaluateChoice(f.problem, r.choice).objective : null;
    const gap = objective !== null && r.bound !== undefined ? ` gap ≤ ${(100 * (objective - r.bound) / objective).toPrecision(2)}%` : '';
    console.log(`scale cnn-${layers} (time limit ${opts.bigLimitS} s): ${r.status}${gap} in ${seconds.toFixed(1)} s wall, ${r.stats!.states} partial policies, process RSS ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MB`);
  }
}

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

export function parseScaleBenchArgs() {
  return { seeds: flag('--seeds', 3), runs: flag('--runs', 5), highs: flag('--highs', 1) !== 0, bigLimitS: flag('--big-limit', 10) };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await benchSearchScale(parseScaleBenchArgs());
}
