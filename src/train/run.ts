import { bitsProblem, LsqQuantizer } from '../quant/index.js';
import { FieldError } from '../util/errors.js';
import { readInputFile, refuseExistingOutput, writeOutput } from '../util/fs.js';
import { initBackend, type BackendName } from './backend/index.js';
import {
  CHECKPOINT_MANIFEST, checkpointModel, disposeCheckpoint, hasCheckpoint, loadIntoVariables, readCheckpoint, readCheckpointManifest, savedPerChannelWeightSteps,
  type Checkpoint,
} from './checkpoint.js';
import { loadDataset, subset, type Dataset } from './data.js';
import { writeIndicators, type IndicatorsFile } from '../indicators/indicators.js';
import { extractIndicators } from './indicators.js';
import {
  DEFAULT_HYPERPARAMETERS, evaluate, fullPrecisionPasses, jointPretrainPasses, trainLoop,
  type EpochReport, type Evaluation, type Hyperparameters, type Stage,
} from './loops.js';
import { createModel, namedVariables, type BitsPolicy, type QuantModel } from './models.js';
import type { LayerSelection } from '../model/graph-table.js';
import { trainingModel, type ModelSource } from '../model/resolve.js';
import { FULL_PRECISION, uniformPolicy } from './policies.js';
import { calibrateActivationRanges, CALIBRATION_IMAGES, planQuantization, type QuantizeRequest } from './quantization-plan.js';
import { savedQuantizerChoice, type QuantizerChoice } from './quantizer-factory.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The stages as the CLI runs them: backend, data, model and checkpoints wired to the loops. Each
 * returns what the command prints; `log` receives progress lines (stderr in the CLI).
 */

/** The test split never depends on --seed, so every stage and seed is scored on the same digits. */
export const DATA_SPLIT_SEED = 0;

export interface RunOptions {
  /** replace what --checkpoint or --out already holds (else refused) */
  overwrite?: boolean;
  /** a trainable zoo model or an ONNX / tfjs model file; absent: the model of the `from` checkpoint */
  model?: string;
  /** which layers keep fixed bits (default: the policy's, else the first and last) */
  layers?: LayerSelection;
  epochs: number;
  seed: number;
  limit?: number;
  backend?: BackendName;
  /** dataset directory (IDX or CIFAR-10 binary); default: the bundled mnist package digits */
  dataDir?: string;
  batchSize?: number;
  lr?: number;
  weightDecay?: number;
  /** data-parallel gradient workers (LoopOptions.workers) */
  workers?: number;
  progress?: boolean;
  /** the command line, recorded in outputs */
  command?: string;
  log?: (line: string) => void;
  onEpoch?: (report: EpochReport) => void;
}

interface Context {
  backend: string;
  data: Dataset;
}

/**
 * The model a run builds: `--model` (a trainable zoo name, or an ONNX / tfjs file with its
 * weights), else the model the `--from` checkpoint records (its zoo name or its graph).
 */
export async function resolveModel(o: { model?: string; from?: string }): Promise<ModelSource> {
  if (o.model !== undefined) return trainingModel(o.model);
  if (o.from !== undefined) return checkpointModel(o.from);
  throw new FieldError((n) => `${n('model')}: give a model (a zoo name, an ONNX file or a tfjs model.json) or ${n('from')} a checkpoint`);
}

/** `--from DIR` must be an mpq checkpoint directory. */
export function assertCheckpointDir(from: string): void {
  if (!hasCheckpoint(from)) throw new FieldError((n) => `${n('from')} ${from}: no ${CHECKPOINT_MANIFEST} (not an mpq checkpoint directory)`);
}

/** Starts the backend (which ran is said by the CLI after the result), builds the model, loads the dataset it takes. */
export async function prepare(
  options: { model?: string; from?: string; source?: ModelSource; backend?: BackendName; dataDir?: string },
  build: (source: ModelSource) => QuantModel,
): Promise<Context & { model: QuantModel; source: ModelSource }> {
  // input errors first, before the backend starts (and tfjs prints anything)
  if (options.from !== undefined) assertCheckpointDir(options.from);
  const source = options.source ?? await resolveModel(options);
  // the backend is in each command's result; which and why is said after it (cli/run.ts), not ahead of an error
  const backend = await initBackend(options.backend ?? 'auto');
  const model = build(source);
  return { backend, model, source, data: loadDataset(model.inputShape, options.dataDir, DATA_SPLIT_SEED) };
}

/** A run that starts from weights: a checkpoint, or the imported model's own. */
export function startingWeights(model: QuantModel, source: ModelSource, from: string | undefined, o: Parameters<typeof loadWeights>[2] = {}): void {
  if (from !== undefined) loadWeights(model, from, o);
  else if (typeof source === 'string' || !source.weights) {
    throw new FieldError((n) => `${n('from')}: ${model.name} has no weights of its own; give ${n('from')} DIR (a checkpoint of the model, from mpq train)`);
  }
}

function hyperparameters(stage: Stage, o: RunOptions): Hyperparameters {
  const d = DEFAULT_HYPERPARAMETERS[stage];
  return { ...d, epochs: o.epochs, batchSize: o.batchSize ?? d.batchSize, lr: o.lr ?? d.lr, weightDecay: o.weightDecay ?? d.weightDecay };
}

/**
 * Loads a checkpoint into the model's variables (only those `include` accepts, when given). A
 * checkpoint passed in stays the caller's to dispose (a grid reads it once).
 */
export function loadWeights(
  model: QuantModel, dir: string, o: { checkpoint?: Checkpoint; include?: (name: string) => boolean; restartReshapedQuantizers?: boolean } = {},
): void {
  const source = o.checkpoint ?? readCheckpoint(dir);
  try {
    if (source.manifest.model !== model.name) {
      throw new FieldError((n) => `${n('from')} ${dir}: checkpoint is for model '${source.manifest.model}', not '${model.name}'`);
    }
    const variables = namedVariables(model);
    loadIntoVariables(dir, source, o.include ? new Map([...variables].filter(([name]) => o.include!(name))) : variables, o);
  } finally {
    if (!o.checkpoint) disposeCheckpoint(source);
  }
}

function validateOptions(o: RunOptions & { checkpoint?: string; resume?: boolean; out?: string }): void {
  if (!Number.isInteger(o.epochs) || o.epochs < 1) throw new FieldError((n) => `${n('epochs')}: must be a positive integer, got ${o.epochs}`);
  if (o.resume && o.checkpoint === undefined) throw new FieldError((n) => `${n('resume')}: needs ${n('checkpoint')} DIR (the run to continue)`);
  if (o.resume && o.overwrite) throw new FieldError((n) => `${n('resume')} and ${n('overwrite')}: give one of them (continue the run, or replace it)`);
  // hours of training are not replaced without a word
  if (o.checkpoint !== undefined && !o.resume && !o.overwrite && hasCheckpoint(o.checkpoint)) {
    const { training } = readCheckpointManifest(o.checkpoint);
    throw new FieldError((n) => `${n('checkpoint')} ${o.checkpoint}: holds a previous '${training.stage}' run (epoch ${training.epochsDone} of ${training.epochs}); give ${n('resume')} to continue it or ${n('overwrite')} to replace it`);
  }
  if (o.out !== undefined && !o.overwrite) refuseExistingOutput(o.out, 'out');
  if (o.limit !== undefined && (!Number.isInteger(o.limit) || o.limit < 1)) throw new FieldError((n) => `${n('limit')}: must be a positive integer, got ${o.limit}`);
}

function runMeta(stage: Stage, o: RunOptions, ctx: Context & { model: QuantModel }, hyper: Hyperparameters): Record<string, unknown> {
  return {
    stage, model: o.model ?? ctx.model.name, seed: o.seed, fixed: ctx.model.fixedLayerNames, epochs: o.epochs, limit: o.limit ?? null, hyperparameters: hyper,
    dataset: ctx.data.name, split: ctx.data.split, backend: ctx.backend, command: o.command ?? null,
    created_at: new Date().toISOString(),
  };
}

export interface TrainResult {
  /** the model's name (a zoo name, or the imported file's) */
  model: string;
  backend: string;
  reports: EpochReport[];
  test: Evaluation;
  seconds: number;
}

/** Full-precision training from scratch into a checkpoint directory (resumable). */
export async function trainFullPrecision(o: RunOptions & { checkpoint: string; resume?: boolean }): Promise<TrainResult> {
  validateOptions(o);
  const ctx = await prepare(o, (source) => createModel(source, { seed: o.seed, layers: o.layers }));
  const { model } = ctx;
  const started = performance.now();
  const hyper = hyperparameters('train', o);
  const reports = await trainLoop(model, ctx.data, {
    stage: 'train', hyper, seed: o.seed, limit: o.limit, passes: fullPrecisionPasses, evalPolicy: FULL_PRECISION,
    checkpointDir: o.checkpoint, resume: o.resume, meta: runMeta('train', o, ctx, hyper), progress: o.progress, onEpoch: o.onEpoch, log: o.log,
    workers: o.workers,
  });
  const test = evaluate(model, subset(ctx.data.test, o.limit), FULL_PRECISION);
  return { model: model.name, backend: ctx.backend, reports, test, seconds: (performance.now() - started) / 1000 };
}

export interface PretrainResult {
  /** the model's name (a zoo name, or the imported file's) */
  model: string;
  backend: string;
  reports: EpochReport[];
  indicators: IndicatorsFile;
  /** test top-1 at each uniform bit-width after pretraining */
  uniformTop1: Record<string, number>;
  seconds: number;
}

/**
 * LIMPQ joint pretraining from an FP checkpoint, then the learned step sizes written as the
 * indicators JSON (`out`) with the command, seed and run settings in its meta.
 */
export async function pretrainIndicators(o: RunOptions & {
  from?: string; bits: number[]; out?: string; checkpoint?: string; resume?: boolean;
}): Promise<PretrainResult> {
  validateOptions(o);
  if (o.bits.length === 0) throw new FieldError((n) => `${n('bits')}: give at least one candidate bit-width`);
  for (const b of o.bits) if (bitsProblem(b)) throw new FieldError((n) => `${n('bits')}: ${bitsProblem(b)}`);
  const ctx = await prepare(o, (source) => createModel(source, { bits: o.bits, seed: o.seed, layers: o.layers }));
  const { model } = ctx;
  if (model.searchableLayerNames.length === 0) throw new FieldError((n) => `${n('layers.fixed')}: every layer of ${model.name} is fixed; nothing is left to pretrain indicators for`);
  const started = performance.now();
  startingWeights(model, ctx.source, o.from);
  const hyper = hyperparameters('pretrain', o);
  const meta = runMeta('pretrain', o, ctx, hyper);
  const reports = await trainLoop(model, ctx.data, {
    stage: 'pretrain', hyper, seed: o.seed, limit: o.limit, passes: jointPretrainPasses(model),
    evalPolicy: uniformPolicy(model, Math.max(...o.bits)), checkpointDir: o.checkpoint, resume: o.resume,
    meta, progress: o.progress, onEpoch: o.onEpoch, log: o.log, workers: o.workers,
  });
  const testSet = subset(ctx.data.test, o.limit);
  const uniformTop1 = Object.fromEntries(o.bits.map((b) => [String(b), evaluate(model, testSet, uniformPolicy(model, b)).top1]));
  const seconds = (performance.now() - started) / 1000;
  const indicators = extractIndicators(model, {
    ...meta, bits: o.bits, from: o.from ?? null, produced_by: 'mpq pretrain (LIMPQ joint indicator pretraining, LSQ step sizes)',
    test_top1_uniform: uniformTop1, seconds: Math.round(seconds),
  });
  if (o.out) writeIndicators(o.out, indicators);
  return { model: model.name, backend: ctx.backend, reports, indicators, uniformTop1, seconds };
}

export interface FinetuneResult {
  /** the model's name (a zoo name, or the imported file's) */
  model: string;
  backend: string;
  reports: EpochReport[];
  test: Evaluation;
  policy: BitsPolicy;
  /** the quantizer and where the bits came from (also in the checkpoint's meta) */
  quantization: Record<string, unknown>;
  seconds: number;
}

/**
 * Quantization-aware finetuning from an FP checkpoint: LSQ (or `quantizer`) at a policy file's
 * bits, uniform bits or an NNI config list's.
 */
export async function finetuneAtPolicy(o: RunOptions & QuantizeRequest & {
  from?: string; checkpoint?: string; resume?: boolean;
}): Promise<FinetuneResult> {
  validateOptions(o);
  const plan = planQuantization(o);
  if (!plan) throw new FieldError((n) => `finetune: give ${n('policyPath')} FILE or ${n('weightBits')} B (the bits to finetune at)`);
  const ctx = await prepare(o, (source) => createModel(source, {
    bits: plan.bits, seed: o.seed, quantizers: plan.quantizers, perChannelWeights: plan.perChannelWeights, layers: o.layers ?? plan.layers,
  }));
  const { model } = ctx;
  const started = performance.now();
  const policy = plan.attach(model);
  // per-tensor steps of a pretrained checkpoint cannot start per-channel ones: those start from data
  startingWeights(model, ctx.source, o.from, { restartReshapedQuantizers: true });
  const hyper = hyperparameters('finetune', o);
  // the checkpoint keeps the file its bits came from, so eval, pack and export find them there
  const kept = o.checkpoint === undefined ? {} : keepBitsSource(o, o.checkpoint);
  const reports = await trainLoop(model, ctx.data, {
    stage: 'finetune', hyper, seed: o.seed, limit: o.limit, passes: () => [{ label: 'policy', policy }],
    evalPolicy: policy, checkpointDir: o.checkpoint, resume: o.resume,
    meta: { ...runMeta('finetune', o, ctx, hyper), ...plan.describe, ...kept, from: o.from ?? null }, progress: o.progress, onEpoch: o.onEpoch, log: o.log,
    workers: o.workers,
  });
  const test = evaluate(model, subset(ctx.data.test, o.limit), policy);
  return { model: model.name, backend: ctx.backend, reports, test, policy, quantization: plan.describe, seconds: (performance.now() - started) / 1000 };
}

/** Names of the copies of a fine-tune's policy file and config list in its checkpoint directory. */
const KEPT_POLICY = 'policy.json';
const KEPT_CONFIG = 'config_list.json';

function keepBitsSource(o: QuantizeRequest, dir: string): Record<string, string> {
  if (o.policyPath !== undefined) {
    writeOutput(join(dir, KEPT_POLICY), readInputFile(o.policyPath, 'policy'));
    return { kept_policy: KEPT_POLICY };
  }
  if (o.configPath !== undefined) {
    writeOutput(join(dir, KEPT_CONFIG), readInputFile(o.configPath, 'config list'));
    return { kept_config: KEPT_CONFIG };
  }
  return {};
}

/**
 * What a fine-tuned checkpoint was quantized with, as its meta records it: the quantizer, and the
 * bits (its kept policy file or config list, or uniform bits). Undefined for other stages (an FP
 * or pretraining checkpoint has no bits of its own).
 */
export function savedQuantizeRequest(dir: string): (QuantizeRequest & { quantizer: QuantizerChoice; says: string }) | undefined {
  const manifest = readCheckpointManifest(dir);
  if (manifest.training.stage !== 'finetune') return undefined;
  const { meta } = manifest;
  const quantizer = savedQuantizerChoice(manifest, dir);
  const kept = (key: string) => (typeof meta[key] === 'string' && existsSync(join(dir, meta[key] as string)) ? join(dir, meta[key] as string) : undefined);
  const policyPath = kept('kept_policy');
  if (policyPath) return { quantizer, policyPath, says: `its policy ${typeof meta.policy === 'string' ? meta.policy : policyPath}` };
  const configPath = kept('kept_config');
  if (configPath) return { quantizer, configPath, says: `its config list ${typeof meta.config === 'string' ? meta.config : configPath}` };
  if (typeof meta.weight_bits === 'number') {
    const actBits = typeof meta.act_bits === 'number' ? meta.act_bits : undefined;
    return {
      quantizer, weightBits: meta.weight_bits, ...(actBits !== undefined ? { actBits } : {}),
      ...(typeof meta.quantize_first_last === 'boolean' ? { quantizeFirstLast: meta.quantize_first_last } : {}),
      says: `its uniform bits W${meta.weight_bits}A${actBits ?? meta.weight_bits}`,
    };
  }
  return { quantizer, says: 'its quantizer' };
}

/** Every step size a policy uses must have been learned (finetuned), else the numbers mean nothing. */
export function assertStepSizesTrained(model: QuantModel, policy: BitsPolicy, where: { field: 'from' | 'model'; value: string }): void {
  for (const layer of model.layers) {
    const bits = policy[layer.name];
    if (!bits) continue;
    for (const [q, b, side] of [[layer.weightQuantizer, bits.weightBits, 'weight'], [layer.inputQuantizer, bits.actBits, 'activation']] as const) {
      if (q instanceof LsqQuantizer && b < 32 && !q.isInitialised(b)) {
        throw new FieldError((n) => `${n(where.field)} ${where.value}: no learned ${side} step size for ${layer.name} at ${b} bits (finetune at this policy first)`);
      }
    }
  }
}

export interface EvaluateResult {
  /** the model's name (a zoo name, or the imported file's) */
  model: string;
  backend: string;
  test: Evaluation;
  policy: BitsPolicy;
  /** activation quantizers calibrated on training images first (post-training, no ranges saved) */
  calibrated: number;
  quantization?: Record<string, unknown>;
  /** how it was evaluated: full precision, the bits given, or the fine-tuned checkpoint's own */
  mode: string;
}

/**
 * Test top-1 of a checkpoint, in full precision or quantized (a policy file's bits, uniform bits or
 * a config list's, with `quantizer`). Activation ranges the checkpoint lacks are calibrated on up
 * to CALIBRATION_IMAGES training images.
 */
export async function evaluateCheckpoint(o: QuantizeRequest & {
  model?: string; from?: string; layers?: LayerSelection; limit?: number; backend?: BackendName; dataDir?: string; log?: (line: string) => void;
}): Promise<EvaluateResult> {
  const request = withCheckpointMode(o);
  // the checkpoint's step sizes say how its LSQ weight quantizers were built
  const perChannelWeights = (request.quantizer === undefined || request.quantizer.name === 'lsq')
    && o.from !== undefined && hasCheckpoint(o.from) && savedPerChannelWeightSteps(readCheckpointManifest(o.from));
  const plan = planQuantization({ ...request, perChannelWeights });
  const ctx = await prepare(o, (source) => createModel(source, {
    bits: plan?.bits ?? [], quantizers: plan?.quantizers, perChannelWeights, layers: o.layers ?? plan?.layers,
  }));
  const { model } = ctx;
  const policy = plan ? plan.attach(model) : FULL_PRECISION;
  startingWeights(model, ctx.source, o.from);
  assertStepSizesTrained(model, policy, o.from !== undefined ? { field: 'from', value: o.from } : { field: 'model', value: String(o.model) });
  const calibrated = calibrateActivationRanges(model, subset(ctx.data.train, Math.min(o.limit ?? CALIBRATION_IMAGES, CALIBRATION_IMAGES)), policy);
  const test = evaluate(model, subset(ctx.data.test, o.limit), policy);
  return { model: model.name, backend: ctx.backend, test, policy, calibrated, quantization: plan?.describe, mode: request.mode };
}

/**
 * A fine-tuned checkpoint is evaluated as it was fine-tuned unless the flags say otherwise: its
 * quantizer, and its bits when none are given. A quantizer flag that contradicts it is one line.
 */
function withCheckpointMode<R extends QuantizeRequest & { from?: string; log?: (line: string) => void }>(o: R): R & { mode: string } {
  const saved = o.from !== undefined && hasCheckpoint(o.from) ? savedQuantizeRequest(o.from) : undefined;
  const bitsGiven = o.policyPath !== undefined || o.weightBits !== undefined || o.configPath !== undefined;
  if (!saved) return { ...o, mode: bitsGiven ? 'the bits given' : 'full precision' };
  if (o.quantizer !== undefined && o.quantizer.name !== saved.quantizer.name) {
    throw new FieldError((n) => `${n('quantizer')} ${o.quantizer!.name}: ${o.from} was fine-tuned with ${saved.quantizer.name} (its meta.quantizer); leave ${n('quantizer')} out to use it`);
  }
  const quantizer = o.quantizer ?? saved.quantizer;
  const { says, quantizer: _q, ...bits } = saved;
  const mode = bitsGiven ? `${quantizer.name} at the bits given` : `${quantizer.name} at ${says}, from the checkpoint`;
  o.log?.(`eval: ${o.from} is a fine-tuned checkpoint: ${mode}`);
  return { ...o, quantizer, ...(bitsGiven ? {} : bits), mode };
}

export interface QuantizeResult {
  /** the model's name (a zoo name, or the imported file's) */
  model: string;
  backend: string;
  /** empty when only evaluated (--epochs 0) */
  reports: EpochReport[];
  test: Evaluation;
  policy: BitsPolicy;
  quantization: Record<string, unknown>;
  calibrated: number;
  seconds: number;
}

/**
 * `mpq quantize`: an NNI config list applied with a quantizer, then finetuned for `epochs` from the
 * checkpoint, or (epochs 0) evaluated as it is, post-training.
 */
export async function quantizeWithConfig(o: RunOptions & {
  from?: string; configPath: string; quantizer: QuantizerChoice; checkpoint?: string; resume?: boolean;
}): Promise<QuantizeResult> {
  const started = performance.now();
  if (o.epochs !== 0) {
    const r = await finetuneAtPolicy(o);
    return { ...r, calibrated: 0 };
  }
  for (const [field, given] of [['checkpoint', o.checkpoint !== undefined], ['resume', o.resume === true]] as const) {
    if (given) throw new FieldError((n) => `${n(field)}: nothing is trained with ${n('epochs')} 0`);
  }
  const r = await evaluateCheckpoint(o);
  return { ...r, reports: [], quantization: r.quantization!, seconds: (performance.now() - started) / 1000 };
}
