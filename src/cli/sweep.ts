import type { Command } from 'commander';
import { SingleBar, Presets } from 'cli-progress';
import { join } from 'node:path';
import { defaultJobs, markPareto, maxJobs, runSweep, type SweepResult } from '../search/sweep.js';
import { solverByName } from '../search/solvers/index.js';
import { loadSearchInputs, type BudgetPoint, type CommonFlags } from '../search/spec.js';
import { sweepCsv, sweepEntry, sweepLabel } from '../report/sweep-files.js';
import { countSweep, frontWord, summaryLine, SWEEP_TERMS } from '../report/sweep-summary.js';
import type { ParetoPlot } from '../report/pareto-plot.js';
import { textTable } from '../report/search-report.js';
import { FileSet } from '../util/file-set.js';
import { SmoothedEta } from '../util/eta.js';
import { UserError, EXIT_INFEASIBLE } from '../util/errors.js';
import { defaultOutputPath } from '../util/paths.js';
import { action } from './run.js';
import { addAlias, flagOf } from './options.js';
import { addProblemOptions, budgetArgs, budgetGrid, inputSpec, parseCommon, SEARCH_FLAGS, searchArgs, shellWords } from './search-options.js';

/** Every file a sweep may write: one set, replaced whole (see FileSet). */
const SET_FILES = ['sweep.json', 'sweep.csv', 'pareto.svg', 'sweep.html', 'pareto.png'] as const;

export function registerSweep(program: Command): void {
  const cmd = addProblemOptions(program.command('sweep').description('solve every combination of budget lists on indicators loaded once'), true)
    .option('--out-dir <dir>', 'folder for sweep.json, sweep.csv, pareto.svg and sweep.html, replaced whole by each run (default: sweeps/<model>)');
  // --out names a file in every other command; a folder is --out-dir (--out stays as its alias)
  addAlias(cmd, '--out', '--out-dir', 'its earlier name');
  cmd
    .option('--png', 'also write pareto.png')
    .option('--jobs <n>', 'threads that solve: this one and n - 1 workers, at most one per core (default: every core when the sweep is large)')
    .option('--json', 'print one JSON object (the counts and the files written) instead of the table')
    .option('--quiet', 'print the summary line only, not the table')
    .action(action(async (o: Record<string, unknown>) => {
      const common = await parseCommon(o);
      const points = budgetGrid(o);
      solverByName(String(o.solver)).prepare?.(); // while the inputs load
      const jobs = o.jobs === undefined ? defaultJobs(points.length) : parseJobs(String(o.jobs));
      const spec = inputSpec(o);
      const { table, indicators } = await loadSearchInputs(spec); // checks inputs before any work
      // a model name read from an input never chooses the folder
      const outDir = o.outDir === undefined ? defaultOutputPath('sweeps', table.model) : String(o.outDir);
      const outFlag = flagOf(o, 'outDir', '--out-dir');
      FileSet.check(outDir, SET_FILES, outFlag);
      const files = SET_FILES.filter((f) => f !== 'pareto.png' || o.png === true);
      const out: Outputs = {
        dir: outDir,
        flag: outFlag,
        files,
        gridPoints: points.length,
        layers: table.layers.map((l) => l.name),
        command: shellWords(['mpq', 'search', ...searchArgs(spec, common, String(o.solver))]),
        points,
        common,
        json: o.json === true,
      };

      const done: SweepResult[] = [];
      const bar = new SingleBar({ format: 'sweep |{bar}| {value}/{total} points | {rate} pts/s | ETA {eta}', stream: process.stderr, hideCursor: true, noTTYOutput: false }, Presets.shades_classic);
      const eta = new SmoothedEta(points.length);
      const t0 = performance.now();
      eta.update(0, t0);
      bar.start(points.length, 0, { rate: '0', eta: '-' });
      // Ctrl-C or kill while solving: write the points solved so far. Once the files are being
      // made: stop there (a set is written and swapped in within one synchronous step, so the
      // folder keeps its old set or has the new one whole).
      let stopping = false;
      let finishing = false;
      const onSignal = (signal: NodeJS.Signals) => {
        const code = signal === 'SIGTERM' ? 143 : 130;
        bar.stop();
        if (stopping || finishing) {
          process.stderr.write(`mpq: interrupted while writing ${outDir}; it has the files of one whole run\n`);
          process.exit(code);
        }
        stopping = true;
        const solvedSoFar = [...done].sort((a, b) => a.index - b.index); // workers keep posting while the files are written
        if (!solvedSoFar.length) {
          process.stderr.write(`mpq: interrupted before any point was solved; ${outDir} keeps the files it had\n`);
          process.exit(code);
        }
        writeOutputs(out, solvedSoFar, { ...meta(), interrupted: true, seconds: (performance.now() - t0) / 1000 }).then((counts) => {
          if (out.json) report(out, counts, true);
          process.stderr.write(`mpq: interrupted after ${solvedSoFar.length} of ${points.length} points; wrote ${outDir}\n`);
          process.exit(code);
        }, (err) => {
          process.stderr.write(`mpq: interrupted; writing ${outDir} failed: ${(err as Error).message}\n`);
          process.exit(code);
        });
      };
      const meta = () => ({ model: table.model, indicators: indicators.path, sha256: indicators.sha256, solver: String(o.solver), jobs, grid_points: points.length });
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      const results = await runSweep(spec, common, points, {
        solver: String(o.solver),
        jobs,
        loaded: { table, indicators },
        meanwhile: prepareOutputs,
        onResult: (r, n) => {
          if (stopping) return;
          done.push(r);
          eta.update(n);
          bar.update(n, { rate: (n / ((performance.now() - t0) / 1000)).toFixed(1), eta: eta.format() });
        },
      });
      if (stopping) return new Promise<never>(() => {}); // the signal handler writes and exits
      finishing = true;
      bar.stop();
      const seconds = (performance.now() - t0) / 1000;
      const counts = await writeOutputs(out, results, { ...meta(), interrupted: false, seconds });
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);

      if (out.json) report(out, counts, false, seconds);
      else {
        if (o.quiet !== true) {
          process.stdout.write(textTable(
            ['#', 'budgets', 'status', 'objective', 'BitOps G', 'size MB', 'CR', 'Pareto', 'reused from'],
            results.map((r) => [r.index, sweepLabel(r), r.status, r.objective === null ? '-' : r.objective.toFixed(6), r.bitops === null ? '-' : r.bitops.toFixed(3), r.sizeMb === null ? '-' : r.sizeMb.toFixed(3), r.compressionRatio === null ? '-' : r.compressionRatio.toFixed(2), frontWord(r), r.reusedFrom ?? '']),
          ) + '\n');
        }
        process.stdout.write(`${summaryLine(counts)}; in ${seconds.toFixed(2)} s on ${jobs} thread(s); wrote ${outDir}: ${files.join(', ')}\n`);
      }
      if (counts.feasible === 0) throw new UserError(`no point of the sweep is feasible (${counts.infeasible} infeasible, ${counts.unresolved} unresolved); see ${join(outDir, 'sweep.json')} for each point's reason`, EXIT_INFEASIBLE);
    }, SEARCH_FLAGS));
}

/** `--jobs`: a whole number from 1 to the cores (more threads only queue for them, each with its own copy of the inputs). */
function parseJobs(value: string): number {
  const n = Number(value);
  const max = maxJobs();
  if (value.trim() === '' || !Number.isInteger(n) || n < 1) throw new UserError(`--jobs: '${value}' is not a whole number ≥ 1`);
  if (n > max) throw new UserError(`--jobs ${value}: at most ${max}, one thread per core of this machine`);
  return n;
}

interface Outputs {
  dir: string;
  /** --out-dir, or --out as the user typed it */
  flag: string;
  files: readonly string[];
  gridPoints: number;
  layers: string[];
  /** `mpq search` with the sweep's inputs and flags, less the budgets */
  command: string;
  points: BudgetPoint[];
  common: CommonFlags;
  json: boolean;
}

let plot: Promise<ParetoPlot> | undefined;
/** vega is heavy: loaded and its views built only by sweeps, while their workers solve */
const prepareOutputs = () => Promise.all([
  (plot ??= import('../report/pareto-plot.js').then((m) => m.paretoPlot())),
  import('../report/sweep-explorer.js').then((m) => (m.prepareExplorer(), m)),
]);

/** Write the whole set for `results` (in grid order, or those solved before an interruption) and swap it in. */
async function writeOutputs(out: Outputs, results: SweepResult[], meta: Record<string, unknown>) {
  if (meta.interrupted) markPareto(results); // an interrupted sweep marks its partial front
  const counts = countSweep(results);
  const summary = summaryLine(counts, out.gridPoints);
  const [[paretoPlot, explorer], { svgToPng }] = await Promise.all([prepareOutputs(), import('../report/pareto-plot.js')]);
  const entries = results.map(sweepEntry);
  const svg = await paretoPlot.svg(results.filter((r) => r.objective !== null).map((r) => ({ objective: r.objective!, bitops: r.bitops!, sizeMb: r.sizeMb!, paretoBitops: r.paretoBitops, paretoSize: r.paretoSize, label: sweepLabel(r) })), summary);
  const html = explorer.sweepExplorer(results, {
    title: `mpq sweep: ${String(meta.model)}`,
    summary,
    layers: out.layers,
    command: out.command,
    budgetFlags: results.map((r) => shellWords(budgetArgs(out.common, r.point))),
  });
  const png = out.files.includes('pareto.png') ? await svgToPng(svg) : null;
  // from here to the swap nothing waits: no signal handler runs in between
  const set = FileSet.begin(out.dir, SET_FILES, out.flag);
  try {
    set.write('sweep.json', JSON.stringify({ ...meta, summary: counts, terms: SWEEP_TERMS, layers: out.layers, points: entries }, null, 1) + '\n');
    set.write('sweep.csv', sweepCsv(results));
    set.write('pareto.svg', svg);
    set.write('sweep.html', html);
    if (png) set.write('pareto.png', png);
    set.commit();
  } catch (err) {
    set.abandon();
    throw err;
  }
  return counts;
}

/** `--json`: the counts, how long, and where each file is. */
function report(out: Outputs, counts: ReturnType<typeof countSweep>, interrupted: boolean, seconds?: number): void {
  process.stdout.write(JSON.stringify({
    summary: counts,
    grid_points: out.gridPoints,
    interrupted,
    ...(seconds !== undefined ? { seconds } : {}),
    dir: out.dir,
    files: Object.fromEntries(out.files.map((f) => [f, join(out.dir, f)])),
  }, null, 1) + '\n');
}
