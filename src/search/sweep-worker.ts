import { parentPort, workerData } from 'node:worker_threads';
import { solvePoint } from './sweep.js';
import { loadSearchInputs, withLatencyTable, type BudgetPoint, type CommonFlags, type InputSpec } from './spec.js';

/** One thread of a sweep: load the inputs once, solve its share of points, post each result. */
const { spec, common, points, solver } = workerData as { spec: InputSpec; common: CommonFlags; points: BudgetPoint[]; solver: string };
const { table, indicators } = await loadSearchInputs(spec);
const full = await withLatencyTable(common);
for (let index = 0; index < points.length; index++) {
  parentPort!.postMessage({ index, result: await solvePoint(table, indicators, full, points[index], solver) });
}
