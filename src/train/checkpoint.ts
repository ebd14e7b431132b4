import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { UserError } from '../util/errors.js';
import { writeFileAtomic } from '../util/fs.js';

/**
 * Checkpoints are directories in the spirit of tfjs's model format: `model.json` lists every
 * variable (name, shape, byte offset) and names a binary file of little-endian float32 values.
 * The weights file name carries a content hash and is written before model.json, which is
 * replaced atomically last: an interrupted save leaves the previous complete checkpoint.
 */
export const CHECKPOINT_MANIFEST = 'model.json';

const manifestSchema = z.object({
  format: z.literal('mpq-checkpoint'),
  version: z.literal(1),
  model: z.string(),
  bits: z.array(z.number().int()),
  weightsFile: z.string(),
  variables: z.array(z.object({ name: z.string(), shape: z.array(z.number().int().nonnegative()), offset: z.number().int().nonnegative() })),
  /** where training stands, for --resume */
  training: z.object({ stage: z.string(), epochsDone: z.number().int().nonnegative(), epochs: z.number().int().nonnegative() }).passthrough(),
  meta: z.record(z.string(), z.unknown()),
});

export type CheckpointManifest = z.infer<typeof manifestSchema>;
export type CheckpointTraining = CheckpointManifest['training'];

export interface Checkpoint {
  manifest: CheckpointManifest;
  tensors: Map<string, tf.Tensor>;
}

export function saveCheckpoint(
  dir: string,
  header: { model: string; bits: readonly number[]; training: CheckpointTraining; meta: Record<string, unknown> },
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
  const weightsFile = `weights-${createHash('sha256').update(bytes).digest('hex').slice(0, 16)}.bin`;
  writeFileAtomic(join(dir, weightsFile), bytes);
  const manifest: CheckpointManifest = {
    format: 'mpq-checkpoint', version: 1, model: header.model, bits: [...header.bits], weightsFile,
    variables: entries, training: header.training, meta: header.meta,
  };
  writeFileAtomic(join(dir, CHECKPOINT_MANIFEST), `${JSON.stringify(manifest, null, 1)}\n`);
  for (const f of readdirSync(dir)) if (/^weights-[0-9a-f]+\.bin$/.test(f) && f !== weightsFile) rmSync(join(dir, f), { force: true });
}

export function hasCheckpoint(dir: string): boolean {
  return existsSync(join(dir, CHECKPOINT_MANIFEST));
}

export function readCheckpoint(dir: string): Checkpoint {
  const path = join(dir, CHECKPOINT_MANIFEST);
  if (!existsSync(path)) throw new UserError(`${dir}: no ${CHECKPOINT_MANIFEST} (not an mpq checkpoint directory)`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new UserError(`${path}: not valid JSON (${(err as Error).message})`);
  }
  const result = manifestSchema.safeParse(parsed);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new UserError(`${path}: field '${issue.path.join('.')}': ${issue.message}`);
  }
  const manifest = result.data;
  const weightsPath = join(dir, manifest.weightsFile);
  if (!existsSync(weightsPath)) throw new UserError(`${path}: weights file ${manifest.weightsFile} is missing`);
  const buf = readFileSync(weightsPath);
  const tensors = new Map<string, tf.Tensor>();
  for (const { name, shape, offset } of manifest.variables) {
    const n = shape.reduce((a, b) => a * b, 1);
    if (offset + n * 4 > buf.length) throw new UserError(`${weightsPath}: too short for variable ${name}`);
    const values = new Float32Array(buf.buffer.slice(buf.byteOffset + offset, buf.byteOffset + offset + n * 4));
    tensors.set(name, tf.tensor(values, shape));
  }
  return { manifest, tensors };
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
  return /\.quan_[wa]_fn\./.test(name);
}

/**
 * Assigns checkpoint values to the model's variables. A batch-norm set for a bit-width the
 * checkpoint lacks starts from the checkpoint's full-precision set (so an FP checkpoint starts any
 * quantized run); missing step sizes are initialised on the first training batch. Anything else
 * missing or mis-shaped is an error naming the directory and variable.
 */
export function loadIntoVariables(dir: string, checkpoint: Checkpoint, variables: Map<string, tf.Variable>): void {
  for (const [name, variable] of variables) {
    let value = checkpoint.tensors.get(name);
    if (!value) {
      const fp = fullPrecisionBnName(name);
      value = fp === undefined ? undefined : checkpoint.tensors.get(fp);
    }
    if (!value) {
      if (isQuantizerState(name)) continue;
      throw new UserError(`${dir}: checkpoint has no variable '${name}' (model ${checkpoint.manifest.model})`);
    }
    if (value.shape.join('x') !== variable.shape.join('x')) {
      throw new UserError(`${dir}: variable '${name}' has shape [${value.shape}], the model expects [${variable.shape}]`);
    }
    variable.assign(value);
  }
}
