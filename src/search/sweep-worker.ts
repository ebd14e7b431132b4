import { parentPort, workerData } from 'node:worker_threads';
import { solvePoints, type IndexedPoint } from './sweep.js';
import { loadSearchInputs, withLatencyTable, type CommonFlags, type InputSpec } from './spec.js';

/** One thread of a sweep: load the inputs once, solve its share of points in order, post each result. */
const { spec, common, points, solver } = workerData as { spec: InputSpec; common: CommonFlags; points: IndexedPoint[]; solver: string };
const { table, indicators } = await loadSearchInputs(spec);
const full = await withLatencyTable(common);
await solvePoints(table, indicators, full, points, solver, (index, result) => parentPort!.postMessage({ index, result }));
