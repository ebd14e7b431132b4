/**
 * `mpq simulate`: post-training simulated quantization of an FP checkpoint (seed 003), one setting
 * or a grid of them, each scored on the test split against the FP model.
 */
import type { RangeGranularity } from '../calibrate/ranges.js';
import type { BackendName } from '../train/backend/index.js';
import { disposeCheckpoint, readCheckpoint, type Checkpoint } from '../train/checkpoint.js';
import { subset, type ImageSet } from '../train/data.js';
import { bnKey } from '../train/layers.js';
import { evaluate, type Evaluation } from '../train/loops.js';
import { createModel, disposeModel, type BitsPolicy, type QuantModel } from '../train/models.js';
import { sourceName, type ModelSource } from '../model/resolve.js';
import { FULL_PRECISION } from '../train/policies.js';
import { bitsProblem } from '../quant/bits.js';
import { prepare } from '../train/run.js';
import { FieldError } from '../util/errors.js';
import { applyThresholds, calibrateInputs, clippingWarning, samplePerClass, type Calibration, type CalibrationMode } from './calibrate.js';
import { useFullPrecisionBatchNorm, loadWeightsOnly, mergeBatchNorm, minMaxQuantizers } from './model.js';

export interface SimulateSetting {
  quantType: RangeGranularity;
  weightBits: number;
  inputBits: number;
  /** every input on a signed grid (int); else one-sided after ReLU (uint), the image signed */
  inputSigned: boolean;
  /** 'none': each batch's own range (online); else calibrated offline */
  calib: 'none' | CalibrationMode;
  mergeBn: boolean;
  excludeFirstConv: boolean;
}

/** The seed's results table, on this model: the grid `mpq simulate --grid` runs by default. */
export const SEED_GRID: { [K in keyof SimulateSetting]: Array<SimulateSetting[K]> } = {
  quantType: ['layer', 'group', 'channel'],
  weightBits: [8, 4],
  inputBits: [8],
  inputSigned: [false],
  calib: ['none', 'naive', 'kl'],
  mergeBn: [false, true],
  excludeFirstConv: [true],
};

/** Every combination of the lists, in table order (quant type, weight bits, … , calibration). */
export function expandGrid(grid: { [K in keyof SimulateSetting]: Array<SimulateSetting[K]> }): SimulateSetting[] {
  const out: SimulateSetting[] = [];
  for (const quantType of grid.quantType) for (const weightBits of grid.weightBits) for (const inputBits of grid.inputBits)
    for (const inputSigned of grid.inputSigned) for (const excludeFirstConv of grid.excludeFirstConv) for (const mergeBn of grid.mergeBn)
      for (const calib of grid.calib) out.push({ quantType, weightBits, inputBits, inputSigned, calib, mergeBn, excludeFirstConv });
  return out;
}

export interface SimulateOptions {
  /** default: the checkpoint's model */
  model?: string;
  from: string;
  settings: SimulateSetting[];
  /** output channels per weight range for quant type 'group' */
  groupSize: number;
  /** calibration samples per class, from the training split */
  numSample: number;
  /** naive calibration passes */
  calibEpoch: number;
  batchSize: number;
  /** seed of the calibration sample draw */
  seed: number;
  limit?: number;
  backend?: BackendName;
  dataDir?: string;
  log?: (line: string) => void;
  /** called with each row as it is measured */
  onRow?: (row: SimulateRow) => void;
}

export interface SimulateRow extends SimulateSetting {
  top1: number;
  loss: number;
  /** calibrated input thresholds by layer (calibrated settings only) */
  thresholds?: Record<string, number>;
  /** share of each calibrated input's calibration values its threshold clips */
  clipped?: Record<string, number>;
  /** clippingWarning: thresholds that clip more than CLIP_LIMIT */
  warning?: string;
  seconds: number;
}

export interface SimulateResult {
  model: string;
  backend: string;
  dataset: string;
  fp: Evaluation;
  testCount: number;
  calibrationCount: number;
  rows: SimulateRow[];
}

/** What every setting of a run shares: the checkpoint (read once), the samples, the options. */
export interface SimulateContext {
  source: ModelSource;
  from: string;
  checkpoint: Checkpoint;
  calibSet: ImageSet;
  groupSize: number;
  calibEpoch: number;
  batchSize: number;
  /**
   * KL calibrations already done, by klCacheKey: KL calibrates the FP network, so they depend on
   * the input grid and the merge only, not on the weight quantization, and a grid reuses them.
   */
  klCache?: Map<string, Calibration>;
}

function klCacheKey(s: SimulateSetting): string {
  return JSON.stringify([s.mergeBn, s.excludeFirstConv, s.inputBits, s.inputSigned]);
}

/** Every layer at the setting's bits, but the first when it is excluded. */
export function simulatePolicy(model: QuantModel, s: SimulateSetting): BitsPolicy {
  return Object.fromEntries(model.layers
    .filter((_, i) => !(s.excludeFirstConv && i === 0))
    .map((layer) => [layer.name, { weightBits: s.weightBits, actBits: s.inputBits }]));
}

/**
 * The FP checkpoint as a min-max quantized model at one setting, merged and calibrated as the
 * setting says. The caller disposes the model (disposeModel).
 */
export function simulatedModel(ctx: SimulateContext, s: SimulateSetting): { model: QuantModel; policy: BitsPolicy; calibration?: Calibration } {
  const model = createModel(ctx.source, {
    quantizers: minMaxQuantizers({ granularity: s.quantType, groupSize: ctx.groupSize, inputMode: s.calib === 'none' ? 'online' : 'calibrated', inputSigned: s.inputSigned }),
  });
  try {
    loadWeightsOnly(model, ctx.from, ctx.checkpoint);
    useFullPrecisionBatchNorm(model, bnKey(s.weightBits));
    if (s.mergeBn) mergeBatchNorm(model);
    const policy = simulatePolicy(model, s);
    let calibration = s.calib === 'kl' ? ctx.klCache?.get(klCacheKey(s)) : undefined;
    if (calibration) applyThresholds(model, policy, calibration.thresholds);
    else if (s.calib !== 'none') {
      calibration = calibrateInputs(model, policy, ctx.calibSet, { mode: s.calib, epochs: ctx.calibEpoch, batchSize: ctx.batchSize });
      if (s.calib === 'kl') ctx.klCache?.set(klCacheKey(s), calibration);
    }
    return { model, policy, calibration };
  } catch (err) {
    disposeModel(model);
    throw err;
  }
}

/**
 * Starts the backend, reads the checkpoint and data, draws the calibration samples. The FP model
 * is built with group ranges when a setting uses them, so that a group size that does not fit
 * the model fails here, before anything runs.
 */
export async function simulateContext(o: SimulateOptions): Promise<{ ctx: SimulateContext; fpModel: QuantModel; backend: string; test: ImageSet; dataset: string }> {
  const granularity = o.settings.some((s) => s.quantType === 'group') ? 'group' : 'layer';
  const prepared = await prepare(o, (source) => createModel(source, { quantizers: minMaxQuantizers({ granularity, groupSize: o.groupSize, inputMode: 'online', inputSigned: false }) }));
  const checkpoint = readCheckpoint(o.from);
  try {
    loadWeightsOnly(prepared.model, o.from, checkpoint);
    const calibSet = samplePerClass(prepared.data.train, o.numSample, prepared.data.numClasses, o.seed);
    return {
      ctx: { source: prepared.source, from: o.from, checkpoint, calibSet, groupSize: o.groupSize, calibEpoch: o.calibEpoch, batchSize: o.batchSize, klCache: new Map() },
      fpModel: prepared.model, backend: prepared.backend, test: subset(prepared.data.test, o.limit), dataset: prepared.data.name,
    };
  } catch (err) {
    disposeCheckpoint(checkpoint);
    throw err;
  }
}

export function validateSetting(s: SimulateSetting): void {
  for (const field of ['weightBits', 'inputBits'] as const) {
    const problem = bitsProblem(s[field]);
    if (problem) throw new FieldError((n) => `${n(field)}: ${problem}`);
  }
}

/** A setting in a few words, as progress lines and warnings name it. */
export function settingLabel(s: SimulateSetting): string {
  return `${s.quantType} W${s.weightBits} A${s.inputBits}${s.inputSigned ? ' signed' : ''} calib ${s.calib}${s.mergeBn ? ' merge-bn' : ''}${s.excludeFirstConv ? ' w/o first' : ''}`;
}

/** The FP model's top-1, then every setting's, on the test split. */
export async function runSimulation(o: SimulateOptions): Promise<SimulateResult> {
  for (const s of o.settings) validateSetting(s);
  const { ctx, fpModel, backend, test, dataset } = await simulateContext(o);
  try {
    const fp = evaluate(fpModel, test, FULL_PRECISION, o.batchSize);
    disposeModel(fpModel);
    o.log?.(`float32: top1 ${(100 * fp.top1).toFixed(2)}% on ${fp.count} test images; calibration set ${ctx.calibSet.count} training images`);
    const rows: SimulateRow[] = [];
    for (const setting of o.settings) {
      const started = performance.now();
      const { model, policy, calibration } = simulatedModel(ctx, setting);
      try {
        const result = evaluate(model, test, policy, o.batchSize);
        const warning = calibration && clippingWarning(calibration.clipped);
        const row: SimulateRow = {
          ...setting, top1: result.top1, loss: result.loss, seconds: (performance.now() - started) / 1000,
          ...(calibration ? { thresholds: Object.fromEntries(calibration.thresholds), clipped: Object.fromEntries(calibration.clipped) } : {}),
          ...(warning ? { warning } : {}),
        };
        rows.push(row);
        o.onRow?.(row);
      } finally {
        disposeModel(model);
      }
    }
    return { model: sourceName(ctx.source), backend, dataset, fp, testCount: test.count, calibrationCount: ctx.calibSet.count, rows };
  } finally {
    disposeCheckpoint(ctx.checkpoint);
  }
}

const TABLE_HEADER = ['IN dtype', 'IN offline', 'WT dtype', 'WT qtype', 'Merge BN', 'w/o 1st conv', 'Top-1', 'Δ vs FP (pp)'];

function rowCells(r: SimulateRow, fpTop1: number, groupSize: number, check: string): string[] {
  return [
    `${r.inputSigned ? 'int' : 'uint'}${r.inputBits}`,
    r.calib === 'none' ? 'x' : r.calib === 'kl' ? 'KL' : 'naive',
    `int${r.weightBits}`,
    r.quantType === 'group' ? `group(${groupSize})` : r.quantType,
    r.mergeBn ? check : '',
    r.excludeFirstConv ? check : '',
    `${(100 * r.top1).toFixed(2)}%`,
    (100 * (r.top1 - fpTop1)).toFixed(2),
  ];
}

/** The seed's accuracy table in markdown: FP first, then one row per setting. */
export function simulateMarkdown(result: SimulateResult, groupSize: number): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |\n`;
  let text = line(TABLE_HEADER) + line(TABLE_HEADER.map(() => '---'));
  text += line(['float32', '/', 'float32', '/', '/', '/', `${(100 * result.fp.top1).toFixed(2)}%`, '']);
  for (const r of result.rows) text += line(rowCells(r, result.fp.top1, groupSize, '√'));
  return text;
}

/** The same table as CSV, accuracies as fractions. */
export function simulateCsv(result: SimulateResult, groupSize: number): string {
  let text = 'in_dtype,in_offline,wt_dtype,wt_qtype,group_size,merge_bn,exclude_first_conv,top1,fp_top1,delta_top1\n';
  for (const r of result.rows) {
    const [inDtype, offline, wtDtype] = rowCells(r, result.fp.top1, groupSize, '1');
    text += `${[inDtype, offline, wtDtype, r.quantType, r.quantType === 'group' ? groupSize : '', r.mergeBn ? 1 : 0, r.excludeFirstConv ? 1 : 0,
      r.top1, result.fp.top1, r.top1 - result.fp.top1].join(',')}\n`;
  }
  return text;
}
