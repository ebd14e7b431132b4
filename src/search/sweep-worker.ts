import { parentPort, workerData } from 'node:worker_threads';
import { solvePoints, type PointGroups } from './sweep.js';
import { loadSearchInputs, withCostTables, type CommonFlags, type InputSpec } from './spec.js';
import { solverByName } from './solvers/index.js';

/** One thread of a sweep: load the inputs once, solve groups of points while any is left, post each result. */
const { spec, common, work, solver } = workerData as { spec: InputSpec; common: CommonFlags; work: PointGroups; solver: string };
solverByName(solver).prepare?.(); // while the inputs load
const { table, indicators } = await loadSearchInputs(spec);
const full = await withCostTables(common);
await solvePoints(table, indicators, full, work, solver, (index, result) => parentPort!.postMessage({ index, result }));
