import type { Command } from 'commander';
import { SingleBar, Presets } from 'cli-progress';
import { join } from 'node:path';
import { defaultJobs, markPareto, runSweep, type SweepResult } from '../search/sweep.js';
import { solverByName } from '../search/solvers/index.js';
import { loadSearchInputs } from '../search/spec.js';
import { sweepCsv, sweepEntry, sweepLabel } from '../report/sweep-files.js';
import type { ParetoPlot } from '../report/pareto-plot.js';
import { textTable } from '../report/search-report.js';
import { writeFileAtomic } from '../util/fs.js';
import { UserError } from '../util/errors.js';
import { action } from './run.js';
import { addProblemOptions, budgetGrid, inputSpec, parseCommon, parseNum } from './search-options.js';

export function registerSweep(program: Command): void {
  addProblemOptions(program.command('sweep').description('solve every combination of budget lists on indicators loaded once'), true)
    .option('--out <dir>', 'folder for sweep.json, sweep.csv and pareto.svg (default: sweeps/<model>)')
    .option('--jobs <n>', 'threads that solve: this one and n - 1 workers (default: both cores when the sweep is large)')
    .action(action(async (o: Record<string, unknown>) => {
      const common = await parseCommon(o);
      const points = budgetGrid(o);
      solverByName(String(o.solver));
      const spec = inputSpec(o);
      const { table, indicators } = await loadSearchInputs(spec); // checks inputs before any work
      const jobs = o.jobs === undefined ? defaultJobs(points.length) : Math.round(parseNum('--jobs', String(o.jobs), 'positive'));
      const outDir = o.out === undefined ? join('sweeps', table.model) : String(o.out);

      const done: SweepResult[] = [];
      const bar = new SingleBar({ format: 'sweep |{bar}| {value}/{total} points | {rate} pts/s | ETA {eta_formatted}', hideCursor: true, noTTYOutput: false }, Presets.shades_classic);
      const t0 = performance.now();
      bar.start(points.length, 0, { rate: '0' });
      // Ctrl-C: keep the points solved so far
      const onInt = () => {
        bar.stop();
        const solvedSoFar = [...done]; // workers keep posting while the files are written
        writeOutputs(outDir, solvedSoFar, null).then(() => {
          process.stderr.write(`mpq: interrupted after ${solvedSoFar.length} of ${points.length} points; wrote ${outDir}\n`);
          process.exit(130);
        });
      };
      process.once('SIGINT', onInt);
      const results = await runSweep(spec, common, points, {
        solver: String(o.solver),
        jobs,
        loaded: { table, indicators },
        meanwhile: preparePlot,
        onResult: (r, n) => {
          done.push(r);
          bar.update(n, { rate: (n / ((performance.now() - t0) / 1000)).toFixed(1) });
        },
      });
      bar.stop();
      process.off('SIGINT', onInt);
      const seconds = (performance.now() - t0) / 1000;
      await writeOutputs(outDir, results, { model: table.model, indicators: indicators.path, sha256: indicators.sha256, solver: String(o.solver), jobs, seconds });

      const solved = results.filter((r) => r.objective !== null);
      process.stdout.write(textTable(
        ['budgets', 'status', 'objective', 'BitOps G', 'size MB', 'CR', 'Pareto'],
        results.map((r) => [sweepLabel(r), r.status, r.objective === null ? '-' : r.objective.toFixed(6), r.bitops === null ? '-' : r.bitops.toFixed(3), r.sizeMb === null ? '-' : r.sizeMb.toFixed(3), r.compressionRatio === null ? '-' : r.compressionRatio.toFixed(2), r.pareto ? '*' : '']),
      ) + '\n');
      process.stdout.write(`${points.length} points (${solved.length} solved, ${results.filter((r) => r.pareto).length} Pareto-optimal) in ${seconds.toFixed(2)} s on ${jobs} thread(s); wrote ${outDir}/sweep.json, sweep.csv, pareto.svg\n`);
    }));
}

let plot: Promise<ParetoPlot> | undefined;
/** vega is heavy: loaded and its view built only by sweeps, while their workers solve */
const preparePlot = () => (plot ??= import('../report/pareto-plot.js').then((m) => m.paretoPlot()));

async function writeOutputs(dir: string, results: SweepResult[], meta: Record<string, unknown> | null): Promise<void> {
  if (!meta) markPareto(results); // an interrupted sweep marks its partial front
  const entries = results.map(sweepEntry);
  writeFileAtomic(join(dir, 'sweep.json'), JSON.stringify({ ...(meta ?? { interrupted: true }), points: entries }, null, 1) + '\n');
  writeFileAtomic(join(dir, 'sweep.csv'), sweepCsv(results));
  const plotted = results.filter((r) => r.objective !== null).map((r) => ({ objective: r.objective!, bitops: r.bitops!, sizeMb: r.sizeMb!, paretoBitops: r.paretoBitops, paretoSize: r.paretoSize, label: sweepLabel(r) }));
  if (plotted.length) {
    writeFileAtomic(join(dir, 'pareto.svg'), await (await preparePlot()).svg(plotted));
  }
  else if (results.length && !meta) throw new UserError('no point of the sweep was solved');
}
