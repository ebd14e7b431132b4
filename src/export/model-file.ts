import { existsSync, statSync } from 'node:fs';
import { dirname, extname, join } from 'node:path';
import type { LayerSelection } from '../model/graph-table.js';
import { sourceName } from '../model/resolve.js';
import { initBackend, type BackendName } from '../train/backend/index.js';
import { readCheckpointManifest, savedPerChannelWeightSteps } from '../train/checkpoint.js';
import { createModel, disposeModel } from '../train/models.js';
import { assertPolicyModel, FULL_PRECISION, policyBits, policyFromFile } from '../train/policies.js';
import { assertCheckpointDir, assertStepSizesTrained, resolveModel, savedQuantizeRequest, startingWeights } from '../train/run.js';
import { FieldError } from '../util/errors.js';
import { refuseExistingOutput, writeOutputs } from '../util/fs.js';
import { exportModel, exportSize, type ExportedFiles, type ExportSize, type ModelExportFormat } from './model-export.js';
import { EXPORT_OPSETS, type ExportOpset } from './onnx-model.js';
import { readPolicy } from './policy-file.js';

export interface ExportModelFileOptions {
  /** model.onnx, or a tfjs model.json / directory */
  out: string;
  /** default: from `out` (.onnx: onnx; *.json or a directory: tfjs) */
  format?: ModelExportFormat;
  /** checkpoint to export; default: the model file's own weights */
  from?: string;
  /** a zoo name or model file; default: the checkpoint's model */
  model?: string;
  /** policy file giving each layer its bits; default: a fine-tuned checkpoint's own, else full precision */
  policyPath?: string;
  /** a fine-tuned checkpoint in full precision instead of at its policy */
  fullPrecision?: boolean;
  /** ONNX opset (default 13; 21 stores weights of ≤ 4 bits as INT4) */
  opset?: number;
  /** tfjs: the policy's fake-quantized weights (activations stay float) */
  fakeQuant?: boolean;
  layers?: LayerSelection;
  /** replace an existing `out` (else refused) */
  overwrite?: boolean;
  backend?: BackendName;
  log?: (line: string) => void;
}

export interface ExportModelFileResult {
  /** the ONNX file or tfjs model.json written */
  out: string;
  format: ModelExportFormat;
  /** ONNX only */
  opset?: number;
  /** the policy file exported at (null: full precision) */
  policy: string | null;
  /** every file written, main file first */
  files: Array<{ path: string; bytes: number }>;
  storage: ExportedFiles['storage'];
  size: ExportSize;
}

/** The format `out` names: `.onnx` an ONNX file, `*.json` or a directory a tfjs LayersModel. */
function formatOf(out: string): ModelExportFormat {
  if (extname(out).toLowerCase() === '.onnx') return 'onnx';
  if (extname(out).toLowerCase() === '.json' || extname(out) === '' || (existsSync(out) && statSync(out).isDirectory())) return 'tfjs';
  throw new FieldError((n) => `${n('out')} ${out}: cannot tell the format (.onnx → onnx, model.json or a directory → tfjs); give ${n('format')}`);
}

/** `mpq export-model`: a checkpoint or an imported model, FP or at a policy, written as ONNX (QDQ) or a tfjs LayersModel. */
export async function exportModelFile(o: ExportModelFileOptions): Promise<ExportModelFileResult> {
  const { out, from } = o;
  if (o.overwrite !== true) refuseExistingOutput(out, 'out');
  const format = o.format ?? formatOf(out);
  const { opset } = o;
  if (opset !== undefined && format !== 'onnx') throw new FieldError((n) => `${n('opset')}: ONNX exports only (${n('format')} is ${format})`);
  if (opset !== undefined && !(EXPORT_OPSETS as readonly number[]).includes(opset)) {
    throw new FieldError((n) => `${n('opset')}: ${opset} is not supported (mpq writes opsets ${EXPORT_OPSETS.join(' and ')})`);
  }
  if (from !== undefined) assertCheckpointDir(from);
  if (o.fullPrecision === true && o.policyPath !== undefined) throw new FieldError((n) => `${n('fullPrecision')}: not with ${n('policyPath')} (one or the other)`);
  // a fine-tuned checkpoint exports at its own policy unless told otherwise (fullPrecision)
  const saved = o.policyPath === undefined && o.fullPrecision !== true && from !== undefined ? savedQuantizeRequest(from) : undefined;
  if (saved && saved.policyPath === undefined) {
    throw new FieldError((n) => `${n('policyPath')}: ${from} was fine-tuned at ${saved.says}, not a policy file; give ${n('policyPath')} FILE, or ${n('fullPrecision')}`);
  }
  const policyPath = o.policyPath ?? saved?.policyPath;
  if (saved) o.log?.(`export-model: ${from} is a fine-tuned checkpoint: at ${saved.says}`);
  if (policyPath !== undefined && from === undefined) throw new FieldError((n) => `${n('policyPath')}: needs ${n('from')} DIR, a checkpoint fine-tuned at the policy (its learned step sizes)`);
  const manifest = from === undefined ? undefined : readCheckpointManifest(from);
  const quantizer = manifest?.meta.quantizer;
  if (policyPath !== undefined && quantizer !== undefined && quantizer !== 'lsq') {
    throw new FieldError((n) => `${n('from')} ${from}: fine-tuned with ${n('quantizer')} ${String(quantizer)}; export-model writes LSQ fine-tunes (a learned step per tensor or channel, zero point 0)`);
  }
  const file = policyPath === undefined ? undefined : readPolicy(policyPath);
  const selection = o.layers ?? {};
  const source = await resolveModel({ ...(o.model !== undefined && { model: o.model }), from });
  // before the model is built with the policy's fixed layers
  if (file) assertPolicyModel(file, sourceName(source), policyPath!);
  await initBackend(o.backend ?? 'auto');
  const model = createModel(source, {
    bits: file ? policyBits(file) : [], perChannelWeights: manifest !== undefined && savedPerChannelWeightSteps(manifest),
    layers: Object.keys(selection).length > 0 || !file ? selection : { fixed: file.fixed.map((l) => l.name), fixedFrom: `${policyPath}: field 'fixed'` },
  });
  try {
    const policy = file ? policyFromFile(model, file, policyPath!) : FULL_PRECISION;
    startingWeights(model, source, from);
    if (file) assertStepSizesTrained(model, policy, { field: 'from', value: from! });
    const exported = await exportModel(model, { format, ...(file && { policy }), ...(opset !== undefined && { opset: opset as ExportOpset }), fakeQuant: o.fakeQuant === true });
    // tfjs: `model.json` and its shard in the directory `out` names (or beside the .json it names)
    const [dir, main] = format === 'tfjs' && extname(out).toLowerCase() !== '.json' ? [out, join(out, 'model.json')] : [dirname(out), out];
    const outputs = exported.files.map(([name, content]) => ({ path: name === '' ? main : join(dir, name), data: content }));
    // all or none: model.json never names a shard that was not written
    writeOutputs(outputs);
    const files = outputs.map(({ path, data }) => ({ path, bytes: typeof data === 'string' ? Buffer.byteLength(data) : data.length }));
    // a tfjs file holds float32 weights, fake-quantized or not: its ratio is against FP32 alone
    const size = exportSize(model, format === 'onnx' ? policy : FULL_PRECISION, files.reduce((s, f) => s + f.bytes, 0));
    return { out: main, format, ...(format === 'onnx' && { opset: opset ?? 13 }), policy: policyPath ?? null, files, storage: exported.storage, size };
  } finally {
    disposeModel(model);
  }
}
