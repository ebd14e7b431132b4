/**
 * mpq as a library: the package entry (`main`, `types`, `exports`). The CLI is a thin layer over
 * these functions; each takes typed options and throws UserError (a FieldError when an option is
 * to blame, naming the option field) for input a user can fix. See the README's "Use mpq from a
 * program".
 */

// errors a caller can fix, and the exit codes the CLI gives them
export { EXIT_INFEASIBLE, EXIT_LIMIT, EXIT_SOLVER_FAILED, FieldError, UserError, type FieldNamer } from './util/errors.js';

// layer tables (a zoo name or a model file: ONNX, tfjs model.json, graph or layer-table JSON) and their costs
export { ZOO_MODEL_NAMES, zooLayerTable } from './model/zoo.js';
export { readLayerTable } from './model/table-file.js';
export { searchLayerTable } from './model/resolve.js';
export type { LayerSelection } from './model/graph-table.js';
export type { FixedLayer, Layer, LayerTable } from './model/layer.js';
export { compressionRatio, costs, layerBitops, layerSizeBits, sizeBitsAtCompressionRatio, type CostedLayer, type Costs } from './model/costs.js';

// importance indicators: LIMPQ's .pkl or mpq's JSON in, JSON out
export { readIndicators, writeIndicators, type Indicators, type IndicatorsFile, type LoadedIndicators } from './indicators/indicators.js';

// the search: formulate once, solve with any solver (exact ILP, glpk, HiGHS, or the DDPG agent), sweep a budget grid
export { formulate, type FormulatedSearch, type ObjectiveSource, type Problem, type SearchOptions } from './search/problem.js';
export { SOLVER_NAMES, solverByName } from './search/solvers/index.js';
export type { Solution, SolveOptions, SolveProgress, SolveStatus, Solver } from './search/solvers/solver.js';
export { runSearch, type SearchResult } from './search/search.js';
export { bitopsTargetBits, loadSearchInputs, searchOptions, type BudgetPoint, type CommonFlags, type InputSpec } from './search/spec.js';
export { runSweep, type SweepOptions, type SweepResult } from './search/sweep.js';
export { startRlRun, type RlReward, type RlRun, type RlRunOptions, type RlRunRecord, type RlSummary } from './search/rl/run.js';

// policies, and other tools' configs made from them
export { readPolicy, writePolicy } from './export/policy-file.js';
export { policyFromSearch } from './export/from-search.js';
export { EXPORT_FORMATS, exportPolicy, type ExportFormat } from './export/formats.js';
export type { Policy, PolicyLayer } from './export/policy.js';

// quantizers, and the packed container of their integer codes
export * from './quant/index.js';
export { readPacked, writePacked, type PackedLayer, type PackedModel } from './export/packed.js';

// the tfjs backend (wasm with mpq's kernels, or cpu) quantizers and training run on, then the
// training stages (full precision, LIMPQ pretraining, finetuning, an NNI config list, evaluation)
export { BACKEND_NAMES, initBackend, type BackendName } from './train/backend/index.js';
export {
  evaluateCheckpoint, finetuneAtPolicy, pretrainIndicators, quantizeWithConfig, trainFullPrecision,
  type EvaluateResult, type FinetuneResult, type PretrainResult, type QuantizeResult, type RunOptions, type TrainResult,
} from './train/run.js';
export type { QuantizeRequest } from './train/quantization-plan.js';
export type { QuantizerChoice } from './train/quantizer-factory.js';
export type { EpochReport } from './train/loops.js';

// post-training simulation, packed models (write, size, evaluate), models for other runtimes
export { runSimulation, type SimulateOptions, type SimulateResult, type SimulateSetting } from './simulate/simulate.js';
export {
  packCheckpoint, packSimulation, repackFile,
  type PackCheckpointOptions, type PackCheckpointResult, type PackSimulationOptions, type PackSimulationResult, type RepackResult,
} from './simulate/pack.js';
export { formatPackedSize, packedSize, type PackedSize } from './simulate/packed-model.js';
export { evaluatePackedModel } from './simulate/evaluate-packed.js';
export { MODEL_EXPORT_FORMATS, type ExportSize, type ModelExportFormat } from './export/model-export.js';
export { exportModelFile, type ExportModelFileOptions, type ExportModelFileResult } from './export/model-file.js';
