import { createHash } from 'node:crypto';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import * as v from 'valibot';
import { FieldError, UserError, type FieldNamer } from '../util/errors.js';
import { MAX_BINARY_INPUT_BYTES, readInputFile, removeStaleTemps, writeOutput } from '../util/fs.js';
import { readJsonFile } from '../util/json-file.js';
import { fileInDirectory } from '../util/paths.js';
import { jsonObject, nonNegativeInteger as count, parseWithSchema } from '../util/schema.js';
import { graphToJson, type Graph, type GraphJson } from '../model/graph.js';
import { parseGraphJson } from '../model/graph-file.js';
import type { ModelSource } from '../model/resolve.js';

/**
 * Checkpoints are directories in the spirit of tfjs's model format: `model.json` lists every
 * variable (name, shape, byte offset) and names a binary file of little-endian float32 values.
 * The weights file name carries a content hash (checked on load) and is written before model.json,
 * which is replaced atomically last: an interrupted save leaves the previous complete checkpoint.
 */
export const CHECKPOINT_MANIFEST = 'model.json';
/** `weights-<first 16 hex digits of the file's sha256>.bin` */
const WEIGHTS_FILE = /^weights-([0-9a-f]{16})\.bin$/;

const sha256Prefix = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex').slice(0, 16);

const manifestSchema = jsonObject(v.object({
  format: v.literal('mpq-checkpoint', "expected 'mpq-checkpoint'"),
  version: v.literal(1, 'expected 1 (the only checkpoint version this mpq reads)'),
  model: v.string(),
  bits: v.array(v.pipe(v.number(), v.integer('expected an integer'))),
  weightsFile: v.pipe(v.string(), v.regex(WEIGHTS_FILE, 'expected weights-<16 hex digits of its sha256>.bin, a file of the checkpoint directory')),
  variables: v.array(v.object({ name: v.string(), shape: v.array(count), offset: count })),
  /** where training stands, for --resume */
  training: v.looseObject({ stage: v.string(), epochsDone: count, epochs: count }),
  meta: v.record(v.string(), v.unknown()),
  /** the structure of a model that is not a zoo model (an imported one), checked when it is used */
  graph: v.optional(v.unknown()),
}), 'expected a JSON object (an mpq checkpoint manifest)');

export type CheckpointManifest = v.InferOutput<typeof manifestSchema>;
export type CheckpointTraining = CheckpointManifest['training'];

export interface Checkpoint {
  manifest: CheckpointManifest;
  tensors: Map<string, tf.Tensor>;
}

export function saveCheckpoint(
  dir: string,
  header: { model: string; graph?: GraphJson; bits: readonly number[]; training: CheckpointTraining; meta: Record<string, unknown> },
  variables: Map<string, tf.Variable>,
): void {
  const entries: CheckpointManifest['variables'] = [];
  const chunks: Float32Array[] = [];
  let offset = 0;
  for (const [name, v] of variables) {
    const values = v.dataSync() as Float32Array;
    entries.push({ name, shape: [...v.shape], offset });
    chunks.push(Float32Array.from(values));
    offset += values.length * 4;
  }
  const bytes = new Uint8Array(offset);
  let at = 0;
  for (const c of chunks) {
    bytes.set(new Uint8Array(c.buffer), at);
    at += c.byteLength;
  }
  // temp files of a save that was killed go first
  removeStaleTemps(dir);
  const weightsFile = `weights-${sha256Prefix(bytes)}.bin`;
  writeOutput(join(dir, weightsFile), bytes);
  const manifest: CheckpointManifest = {
    format: 'mpq-checkpoint', version: 1, model: header.model, bits: [...header.bits], weightsFile,
    variables: entries, training: header.training, meta: header.meta, ...(header.graph ? { graph: header.graph } : {}),
  };
  writeOutput(join(dir, CHECKPOINT_MANIFEST), `${JSON.stringify(manifest, null, 1)}\n`);
  for (const f of readdirSync(dir)) if (WEIGHTS_FILE.test(f) && f !== weightsFile) rmSync(join(dir, f), { force: true });
}

export function hasCheckpoint(dir: string): boolean {
  return existsSync(join(dir, CHECKPOINT_MANIFEST));
}

/** The checkpoint's manifest alone (names, shapes, training state, meta), validated. */
export function readCheckpointManifest(dir: string): CheckpointManifest {
  const path = join(dir, CHECKPOINT_MANIFEST);
  if (!existsSync(path)) throw new UserError(`${dir}: no ${CHECKPOINT_MANIFEST} (not an mpq checkpoint directory)`);
  return parseWithSchema(manifestSchema, readJsonFile(path, 'checkpoint manifest'), path);
}

/** The model a checkpoint is of: its zoo name, or the graph it records (an imported model). */
export function checkpointModel(dir: string): ModelSource {
  const manifest = readCheckpointManifest(dir);
  if (manifest.graph !== undefined) return { graph: parseGraphJson(manifest.graph, `${join(dir, CHECKPOINT_MANIFEST)}: graph`) };
  return manifest.model;
}

/** The graph a model's checkpoints and packed files record: none for a zoo model (its name rebuilds it). */
export function recordedGraph(graph: Graph): GraphJson | undefined {
  return graph.source === 'zoo' ? undefined : graphToJson(graph);
}

/** An LSQ weight step size's name: `<layer>.quan_w_fn.s.<bits>` */
const WEIGHT_STEP = /\.quan_w_fn\.s\.\d+$/;

/** The checkpoint's LSQ weight step sizes are vectors, one per output channel. */
export function savedPerChannelWeightSteps(manifest: CheckpointManifest): boolean {
  return manifest.variables.some((v) => WEIGHT_STEP.test(v.name) && v.shape.length > 0);
}

export function readCheckpoint(dir: string): Checkpoint {
  const path = join(dir, CHECKPOINT_MANIFEST);
  const manifest = readCheckpointManifest(dir);
  const weightsPath = fileInDirectory(dir, manifest.weightsFile, `${path}: weightsFile`);
  if (!existsSync(weightsPath)) throw new UserError(`${path}: weights file ${manifest.weightsFile} is missing`);
  const buf = readInputFile(weightsPath, 'checkpoint weights', MAX_BINARY_INPUT_BYTES);
  const [hash, named] = [sha256Prefix(buf), WEIGHTS_FILE.exec(manifest.weightsFile)![1]];
  if (hash !== named) throw new UserError(`${weightsPath}: corrupt (its sha256 starts ${hash}, the name says ${named})`);
  const tensors = new Map<string, tf.Tensor>();
  for (const { name, shape, offset } of manifest.variables) {
    const n = shape.reduce((a, b) => a * b, 1);
    if (offset + n * 4 > buf.length) throw new UserError(`${weightsPath}: too short for variable ${name}`);
    const values = new Float32Array(buf.buffer.slice(buf.byteOffset + offset, buf.byteOffset + offset + n * 4));
    tensors.set(name, tf.tensor(values, shape));
  }
  return { manifest, tensors };
}

/** Settings a run records in its meta that a resumed run must share, with the option field that sets each. */
const RESUME_FIELDS: Record<string, string> = {
  model: 'model', seed: 'seed', epochs: 'epochs', limit: 'limit', dataset: 'dataDir', split: 'dataDir', from: 'from',
  bits: 'bits', policy: 'policyPath', config: 'configPath', quantizer: 'quantizer', nuq: 'quantizer.nuq', weight_bits: 'weightBits',
  act_bits: 'actBits', weight_steps: 'perChannelWeights', quantize_first_last: 'quantizeFirstLast',
  'hyperparameters.batchSize': 'batchSize', 'hyperparameters.lr': 'lr', 'hyperparameters.weightDecay': 'weightDecay',
};
/** Meta fields that may differ: when and how the run was started, not what it computes (and epochs' twin). */
const RESUME_FREE = new Set(['command', 'created_at', 'backend', 'hyperparameters.epochs']);

/**
 * A run may continue the checkpoint in `dir` only when it is the same run: the same stage, and every
 * setting the checkpoint recorded (seed, limit, epochs, hyperparameters, data, bits…) unchanged.
 * Otherwise one line names what differs; a resumed run never mixes two runs' settings.
 */
export function checkResumable(dir: string, manifest: CheckpointManifest, stage: string, meta: Record<string, unknown>): void {
  if (manifest.training.stage !== stage) {
    throw new FieldError((n) => `${n('resume')}: ${dir} holds a '${manifest.training.stage}' run, not a '${stage}' one (give another ${n('checkpoint')}, or ${n('overwrite')} instead of ${n('resume')} to replace it)`);
  }
  const flat = (m: Record<string, unknown>): Map<string, string> => new Map(Object.entries(m).flatMap(([key, value]) =>
    key === 'hyperparameters' && typeof value === 'object' && value !== null
      ? Object.entries(value).map(([k, x]): [string, string] => [`${key}.${k}`, JSON.stringify(x)])
      : [[key, JSON.stringify(value)]]));
  const [recorded, now] = [flat(manifest.meta), flat(meta)];
  // a checkpoint of an older mpq records fewer settings: only what it recorded is compared
  if (Object.keys(manifest.meta).length === 0) return;
  const differs = [...new Set([...recorded.keys(), ...now.keys()])].filter((key) => !RESUME_FREE.has(key) && recorded.get(key) !== now.get(key));
  if (differs.length === 0) return;
  // a setting no option sets (what the run derived, e.g. kept_policy) by its meta key
  const name = (n: FieldNamer, key: string) => (Object.hasOwn(RESUME_FIELDS, key) ? n(RESUME_FIELDS[key]) : key);
  const shown = (v: string | undefined) => (v === undefined ? '(none)' : v.length <= 40 ? v : `${v.slice(0, 37)}...`);
  const list = (n: FieldNamer, m: Map<string, string>) => differs.map((key) => `${name(n, key)} ${shown(m.get(key))}`).join(', ');
  throw new FieldError((n) => `${n('resume')}: ${dir} was made with ${list(n, recorded)}; this run has ${list(n, now)} (give the same settings, or ${n('overwrite')} instead of ${n('resume')} to start afresh)`);
}

export function disposeCheckpoint(checkpoint: Checkpoint): void {
  for (const t of checkpoint.tensors.values()) t.dispose();
}

/** `<layer>.bns.<key>.<param>` → the same parameter of the layer's full-precision set */
function fullPrecisionBnName(name: string): string | undefined {
  const m = /^(.*\.bns\.)([^.]+)(\.[^.]+)$/.exec(name);
  return m && m[2] !== 'fp' ? `${m[1]}fp${m[3]}` : undefined;
}

/**
 * Quantizer state a run may start without: step sizes, codebooks and ranges initialise themselves
 * from data (and an FP checkpoint has none for another quantizer).
 */
function isQuantizerState(name: string): boolean {
  return quantizerOf(name) !== undefined;
}

/** `<layer>.quan_w_fn.` or `<layer>.quan_a_fn.` for a quantizer's state, else undefined */
function quantizerOf(name: string): string | undefined {
  return /^(.*\.quan_[wa]_fn\.)/.exec(name)?.[1];
}

const sameShape = (a: tf.Tensor, b: tf.Tensor): boolean => a.shape.join('x') === b.shape.join('x');

/**
 * Assigns checkpoint values to the model's variables. A batch-norm set for a bit-width the
 * checkpoint lacks starts from the checkpoint's full-precision set (so an FP checkpoint starts any
 * quantized run); missing step sizes are initialised on the first training batch. With
 * `restartReshapedQuantizers` (a run's starting point), a quantizer whose state has another shape
 * in the checkpoint (per-tensor steps, per-channel model) is left whole to initialise from data.
 * Anything else missing or mis-shaped is an error naming the directory and variable.
 */
export function loadIntoVariables(
  dir: string, checkpoint: Checkpoint, variables: Map<string, tf.Variable>, options: { restartReshapedQuantizers?: boolean } = {},
): void {
  const restarted = new Set<string>();
  if (options.restartReshapedQuantizers) {
    for (const [name, variable] of variables) {
      const value = checkpoint.tensors.get(name);
      const quantizer = quantizerOf(name);
      if (value && quantizer !== undefined && !sameShape(value, variable)) restarted.add(quantizer);
    }
  }
  for (const [name, variable] of variables) {
    if (restarted.has(quantizerOf(name) ?? '')) continue;
    let value = checkpoint.tensors.get(name);
    if (!value) {
      const fp = fullPrecisionBnName(name);
      value = fp === undefined ? undefined : checkpoint.tensors.get(fp);
    }
    if (!value) {
      if (isQuantizerState(name)) continue;
      throw new UserError(`${dir}: checkpoint has no variable '${name}' (model ${checkpoint.manifest.model})`);
    }
    if (!sameShape(value, variable)) {
      const steps = WEIGHT_STEP.test(name);
      throw new FieldError((n) => `${dir}: variable '${name}' has shape [${value.shape}], the model expects [${variable.shape}]${steps ? ` (weight step sizes per tensor or per channel: ${n('perChannelWeights')} must match the run that saved it)` : ''}`);
    }
    variable.assign(value);
  }
}
