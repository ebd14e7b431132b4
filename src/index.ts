/**
 * mpq as a library: the package entry (`main`). For now the pieces the CLI is built on, as they
 * are; a typed API over them (options, results, errors by field) is to come.
 */

// layer tables and their costs
export { zooLayerTable, ZOO_MODEL_NAMES } from './model/zoo.js';
export { readLayerTable } from './model/table-file.js';
export type { FixedLayer, Layer, LayerTable } from './model/layer.js';
export { compressionRatio, costs, type Costs } from './model/costs.js';

// indicators, the search problem and its solvers
export { readIndicators, type LoadedIndicators } from './indicators/indicators.js';
export { formulate, type FormulatedSearch, type Problem, type SearchOptions } from './search/problem.js';
export { SOLVER_NAMES, solverByName } from './search/solvers/index.js';
export type { Solution, SolveOptions, Solver } from './search/solvers/solver.js';
export { runSearch, type SearchResult } from './search/search.js';

// policies and their exports
export { readPolicy, writePolicy } from './export/policy-file.js';
export { policyFromSearch } from './export/from-search.js';
export { exportPolicy } from './export/formats.js';
export type { Policy } from './export/policy.js';

// quantizers, and the packed container of their integer codes
export * from './quant/index.js';
export { readPacked, writePacked, type PackedLayer, type PackedModel } from './export/packed.js';

// the tfjs backend (wasm with mpq's kernels, or cpu) quantizers and training run on, then the
// training stages (full precision, LIMPQ pretraining, finetuning, evaluation)
export { BACKEND_NAMES, initBackend, type BackendName } from './train/backend/index.js';
export { evaluateCheckpoint, finetuneAtPolicy, pretrainIndicators, trainFullPrecision } from './train/run.js';
