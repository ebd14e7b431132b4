import { writeNcnnTable } from '../export/deploy-tables.js';
import { readPacked, writePacked } from '../export/packed.js';
import type { LayerSelection } from '../model/graph-table.js';
import type { BackendName } from '../train/backend/index.js';
import { disposeCheckpoint, hasCheckpoint, readCheckpoint, readCheckpointManifest, savedPerChannelWeightSteps } from '../train/checkpoint.js';
import { subset } from '../train/data.js';
import { createModel, disposeModel } from '../train/models.js';
import { calibrateActivationRanges, CALIBRATION_IMAGES, planQuantization } from '../train/quantization-plan.js';
import { savedQuantizerChoice } from '../train/quantizer-factory.js';
import { assertStepSizesTrained, loadWeights, prepare, savedQuantizeRequest } from '../train/run.js';
import type { QuantizerName } from '../quant/index.js';
import { FieldError } from '../util/errors.js';
import { checkOutputPath, MAX_BINARY_INPUT_BYTES, readInputFile, refuseExistingOutput, writeOutputs } from '../util/fs.js';
import { clippingWarning, samplePerClass, type CalibrationMode } from './calibrate.js';
import { int8Calibration, tensorRtCache } from './deploy.js';
import { inputQuantizersOf, packedSize, packModel, type PackedSize } from './packed-model.js';
import { settingLabel, simulateContext, simulatedModel, validateSetting, type SimulateOptions, type SimulateSetting } from './simulate.js';

/**
 * Writing packed models (MPQP): a fine-tuned checkpoint at its bits, a simulated (min-max) model
 * at one setting, or an older packed file in the current version. Each computes every output
 * before writing any, and writes them all or none; errors name the option fields.
 */

/** The calibration modes of the int8 deployment tables. */
export const TABLE_CALIB_MODES: readonly CalibrationMode[] = ['kl', 'naive'];

export interface PackCheckpointOptions {
  /** checkpoint directory, fine-tuned at the bits to pack (any quantizer with an integer form) */
  from: string;
  /** the packed file to write */
  out: string;
  /** a zoo name or model file; default: the checkpoint's model */
  model?: string;
  /** the bits: a policy file, or uniform bits; neither: the checkpoint's own (a fine-tuned one) */
  policyPath?: string;
  weightBits?: number;
  actBits?: number;
  quantizeFirstLast?: boolean;
  /** which layers keep fixed bits (default: the policy's, else the first and last) */
  layers?: LayerSelection;
  /** also write an ncnn int8 calibration table of the FP network here */
  ncnnTable?: string;
  /** also write a TensorRT EntropyCalibration2 cache of the FP network here */
  trtCache?: string;
  /** TensorRT version in the cache header (default 8601, i.e. 8.6.1) */
  trtVersion?: number;
  /** input thresholds of the tables (default kl) */
  calib?: CalibrationMode;
  /** calibration samples per class of the tables, from the training split (default 100) */
  numSample?: number;
  /** seed of the calibration sample draw (default 7) */
  seed?: number;
  /** replace existing output files (else refused) */
  overwrite?: boolean;
  backend?: BackendName;
  dataDir?: string;
  /** the command line, recorded in the file's meta */
  command?: string;
  log?: (line: string) => void;
}

export interface PackCheckpointResult {
  out: string;
  /** every file written, the packed model first */
  written: string[];
  quantizer: QuantizerName;
  backend: string;
  size: PackedSize;
  /** the tables' thresholds: what they clip per layer (when tables were written) */
  tables?: { calib: CalibrationMode; clipped: Record<string, number>; warning?: string };
}

/** `mpq pack`: a checkpoint at a policy or uniform bits (default: its own), with the quantizer it was fine-tuned with. */
export async function packCheckpoint(o: PackCheckpointOptions): Promise<PackCheckpointResult> {
  const calib = o.calib ?? 'kl';
  if (!TABLE_CALIB_MODES.includes(calib)) throw new FieldError((n) => `${n('calib')}: '${String(calib)}' is not one of ${TABLE_CALIB_MODES.join(', ')}`);
  const numSample = o.numSample ?? 100;
  if (!(numSample >= 1)) throw new FieldError((n) => `${n('numSample')}: must be a positive integer, got ${numSample}`);
  const trtVersion = o.trtVersion ?? 8601;
  if (!(trtVersion >= 0)) throw new FieldError((n) => `${n('trtVersion')}: must be a whole number like 8601, got ${trtVersion}`);
  const outputs = (['out', 'ncnnTable', 'trtCache'] as const).filter((key) => o[key] !== undefined);
  for (const key of outputs) checkOutputPath(o[key]!);
  // options are judged before the files they name: a wrong option is the first thing to hear about
  if (o.overwrite !== true) for (const key of outputs) refuseExistingOutput(o[key]!, key);
  const { from } = o;
  // the checkpoint says how its quantizers were built: which quantizer, LSQ steps per channel
  const manifest = hasCheckpoint(from) ? readCheckpointManifest(from) : undefined;
  const quantizer = manifest ? savedQuantizerChoice(manifest, from) : { name: 'lsq' as const };
  const perChannelWeights = manifest !== undefined && savedPerChannelWeightSteps(manifest);
  const asked = {
    ...(o.policyPath !== undefined && { policyPath: o.policyPath }), ...(o.weightBits !== undefined && { weightBits: o.weightBits }),
    ...(o.actBits !== undefined && { actBits: o.actBits }), ...(o.quantizeFirstLast !== undefined && { quantizeFirstLast: o.quantizeFirstLast }),
  };
  const bitsGiven = asked.policyPath !== undefined || asked.weightBits !== undefined;
  // without bits, a fine-tuned checkpoint packs at its own bits
  const saved = !bitsGiven && manifest ? savedQuantizeRequest(from) : undefined;
  const { says: _says, quantizer: _saved, ...savedBits } = saved ?? { says: '', quantizer };
  const plan = planQuantization({ ...asked, ...savedBits, quantizer, perChannelWeights });
  if (!plan) throw new FieldError((n) => `pack: give ${n('policyPath')} FILE or ${n('weightBits')} B (the bits to pack at), or ${n('from')} a fine-tuned checkpoint`);
  const layers = o.layers ?? {};
  const { model, data, source, backend } = await prepare(
    { ...(o.model !== undefined ? { model: o.model } : {}), from, backend: o.backend ?? 'auto', dataDir: o.dataDir },
    (m) => createModel(m, {
      bits: plan.bits, quantizers: plan.quantizers, perChannelWeights, layers: Object.keys(layers).length > 0 ? layers : plan.layers,
    }),
  );
  const policy = plan.attach(model);
  loadWeights(model, from);
  assertStepSizesTrained(model, policy, { field: 'from', value: from });
  calibrateActivationRanges(model, subset(data.train, CALIBRATION_IMAGES), policy);
  const bytes = packModel(model, policy, inputQuantizersOf(quantizer.name), {
    source: from, quantizer: quantizer.name, ...(o.policyPath !== undefined && { policy_file: o.policyPath }), ...(o.command !== undefined && { command: o.command }),
  });
  disposeModel(model);
  const files: Array<{ path: string; data: string | Uint8Array }> = [{ path: o.out, data: bytes }];
  let tables: PackCheckpointResult['tables'];
  if (o.ncnnTable !== undefined || o.trtCache !== undefined) {
    const checkpoint = readCheckpoint(from);
    try {
      const { layers: calibrated, calibration } = int8Calibration({
        source, from, checkpoint, calibSet: samplePerClass(data.train, numSample, data.numClasses, o.seed ?? 7),
        groupSize: 1, calibEpoch: 3, batchSize: 128,
      }, calib);
      const warning = clippingWarning(calibration.clipped);
      if (warning) o.log?.(`mpq: warning: int8 tables, calib ${calib}: ${warning}`);
      tables = { calib, clipped: Object.fromEntries(calibration.clipped), ...(warning ? { warning } : {}) };
      if (o.ncnnTable !== undefined) files.push({ path: o.ncnnTable, data: writeNcnnTable(calibrated) });
      if (o.trtCache !== undefined) files.push({ path: o.trtCache, data: tensorRtCache(calibrated, trtVersion) });
    } finally {
      disposeCheckpoint(checkpoint);
    }
  }
  writeOutputs(files);
  return {
    out: o.out, written: files.map((f) => f.path), quantizer: quantizer.name, backend,
    size: packedSize(bytes, readPacked(bytes, o.out)), ...(tables && { tables }),
  };
}

export interface PackSimulationOptions extends Omit<SimulateOptions, 'settings' | 'onRow'> {
  /** the one setting to quantize the FP checkpoint at */
  setting: SimulateSetting;
  /** the packed file to write */
  out: string;
  overwrite?: boolean;
  /** the command line, recorded in the file's meta */
  command?: string;
}

export interface PackSimulationResult {
  out: string;
  size: PackedSize;
  /** calibrated settings: what the input thresholds clip per layer */
  clipping?: { clipped: Record<string, number>; warning?: string };
}

/** `mpq simulate --pack`: the FP checkpoint quantized (min-max) at one setting, calibrated, as an MPQP file. */
export async function packSimulation(o: PackSimulationOptions): Promise<PackSimulationResult> {
  const { setting } = o;
  validateSetting(setting);
  checkOutputPath(o.out);
  if (o.overwrite !== true) refuseExistingOutput(o.out, 'out');
  const { ctx, fpModel } = await simulateContext({ ...o, settings: [setting] });
  disposeModel(fpModel);
  try {
    const { model, policy, calibration } = simulatedModel(ctx, setting);
    const warning = calibration && clippingWarning(calibration.clipped);
    if (warning) o.log?.(`mpq: warning: ${settingLabel(setting)}: ${warning}`);
    const file = packModel(model, policy, { kind: 'minmax', inputMode: setting.calib === 'none' ? 'online' : 'calibrated', inputSigned: setting.inputSigned }, {
      source: o.from, setting, ...(o.command !== undefined && { command: o.command }),
    });
    disposeModel(model);
    writeOutputs([{ path: o.out, data: file }]);
    return {
      out: o.out, size: packedSize(file, readPacked(file, o.out)),
      ...(calibration && { clipping: { clipped: Object.fromEntries(calibration.clipped), ...(warning ? { warning } : {}) } }),
    };
  } finally {
    disposeCheckpoint(ctx.checkpoint);
  }
}

export interface RepackResult {
  out: string;
  fromVersion: number;
  version: number;
  bytes: number;
}

/** An older packed file (version 1 or 2, no checksum) rewritten as the current version (checksummed). */
export function repackFile(o: { path: string; out: string; overwrite?: boolean }): RepackResult {
  checkOutputPath(o.out);
  if (o.overwrite !== true) refuseExistingOutput(o.out, 'out');
  const old = readPacked(readInputFile(o.path, 'packed model', MAX_BINARY_INPUT_BYTES), o.path);
  const bytes = writePacked(old.layers, old.meta, old.floats);
  writeOutputs([{ path: o.out, data: bytes }]);
  return { out: o.out, fromVersion: old.version, version: readPacked(bytes, o.out).version, bytes: bytes.length };
}
