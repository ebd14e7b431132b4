import { existsSync, statSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import { Option, type Command } from 'commander';
import { readPolicy } from '../export/policy-file.js';
import { sourceName } from '../model/resolve.js';
import { EXPORT_OPSETS, type ExportOpset } from '../export/onnx-model.js';
import { exportModel, exportSize, formatExportSize, MODEL_EXPORT_FORMATS, type ModelExportFormat } from '../export/model-export.js';
import { initBackend } from '../train/backend/index.js';
import { readCheckpointManifest, savedPerChannelWeightSteps } from '../train/checkpoint.js';
import { createModel, disposeModel } from '../train/models.js';
import { assertPolicyModel, FULL_PRECISION, policyBits, policyFromFile } from '../train/policies.js';
import { assertCheckpointDir, assertStepSizesTrained, resolveModel, savedQuantizeRequest, startingWeights } from '../train/run.js';
import { UserError } from '../util/errors.js';
import { refuseExistingOutput, writeOutputs } from '../util/fs.js';
import { action, parseInteger } from './run.js';
import { layerSelection } from './search-options.js';
import { snakeKeys } from './options.js';
import { addModelOptions, backendFlag } from './train.js';

/** The format --out names: `.onnx` an ONNX file, `*.json` or a directory a tfjs LayersModel. */
function formatOf(out: string): ModelExportFormat {
  if (extname(out).toLowerCase() === '.onnx') return 'onnx';
  if (extname(out).toLowerCase() === '.json' || extname(out) === '' || (existsSync(out) && statSync(out).isDirectory())) return 'tfjs';
  throw new UserError(`--out ${out}: cannot tell the format (.onnx → onnx, model.json or a directory → tfjs); give --format`);
}

/** `mpq export-model`: a checkpoint or an imported model, FP or at a policy, as ONNX (QDQ) or a tfjs LayersModel. */
export function registerExportModel(program: Command): void {
  addModelOptions(program.command('export-model')
    .description('write a model for another runtime: ONNX (QDQ at a policy: integer weights, quantized activations) or a tfjs LayersModel'))
    .option('--from <dir>', 'checkpoint to export (mpq train, or mpq finetune at the policy); default: the --model file\'s own weights')
    .option('--policy <file>', 'policy JSON giving each layer its bits (default: full precision)')
    .requiredOption('--out <file>', 'output: model.onnx, or a tfjs model.json / directory')
    .addOption(new Option('--format <format>', 'output format (default: from --out)').choices(MODEL_EXPORT_FORMATS))
    .option('--opset <n>', `ONNX opset: ${EXPORT_OPSETS.join(' | ')} (21 stores weights of ≤ 4 bits as INT4)`, parseInteger('--opset'))
    .option('--fake-quant', 'tfjs: the policy\'s fake-quantized weights (activations stay float)')
    .option('--backend <name>', 'tfjs backend: auto | wasm | cpu | tensorflow', 'auto')
    .option('--json', 'print one JSON object')
    .option('--overwrite', 'replace an existing --out file; without it that is refused')
    .option('--full-precision', 'a fine-tuned checkpoint in full precision (by default it is written at its own policy)')
    .action(action(async (o: Record<string, unknown>) => {
      const out = String(o.out);
      if (o.overwrite !== true) refuseExistingOutput(out, '--out');
      const format = (o.format as ModelExportFormat | undefined) ?? formatOf(out);
      const opset = o.opset as number | undefined;
      if (opset !== undefined && format !== 'onnx') throw new UserError(`--opset: ONNX exports only (--format is ${format})`);
      if (opset !== undefined && !(EXPORT_OPSETS as readonly number[]).includes(opset)) {
        throw new UserError(`--opset: ${opset} is not supported (mpq writes opsets ${EXPORT_OPSETS.join(' and ')})`);
      }
      const from = o.from as string | undefined;
      if (from !== undefined) assertCheckpointDir(from);
      if (o.fullPrecision === true && o.policy !== undefined) throw new UserError('--full-precision: not with --policy (one or the other)');
      // a fine-tuned checkpoint exports at its own policy unless told otherwise (full precision: --full-precision)
      const saved = o.policy === undefined && o.fullPrecision !== true && from !== undefined ? savedQuantizeRequest(from) : undefined;
      if (saved && saved.policyPath === undefined) {
        throw new UserError(`--policy: ${from} was fine-tuned at ${saved.says}, not a policy file; give --policy FILE, or --full-precision`);
      }
      const policyPath = (o.policy as string | undefined) ?? saved?.policyPath;
      if (saved) process.stderr.write(`export-model: ${from} is a fine-tuned checkpoint: at ${saved.says}\n`);
      if (policyPath !== undefined && from === undefined) throw new UserError('--policy: needs --from DIR, a checkpoint fine-tuned at the policy (its learned step sizes)');
      const manifest = from === undefined ? undefined : readCheckpointManifest(from);
      const quantizer = manifest?.meta.quantizer;
      if (policyPath !== undefined && quantizer !== undefined && quantizer !== 'lsq') {
        throw new UserError(`--from ${from}: fine-tuned with --quantizer ${String(quantizer)}; export-model writes LSQ fine-tunes (a learned step per tensor or channel, zero point 0)`);
      }
      const file = policyPath === undefined ? undefined : readPolicy(policyPath);
      const selection = layerSelection(o);
      const source = await resolveModel({ ...(o.model !== undefined && { model: String(o.model) }), from });
      // before the model is built with the policy's fixed layers
      if (file) assertPolicyModel(file, sourceName(source), policyPath!);
      await initBackend(backendFlag(o.backend));
      const model = createModel(source, {
        bits: file ? policyBits(file) : [], perChannelWeights: manifest !== undefined && savedPerChannelWeightSteps(manifest),
        layers: Object.keys(selection).length > 0 || !file ? selection : { fixed: file.fixed.map((l) => l.name), fixedFrom: `${policyPath}: field 'fixed'` },
      });
      try {
        const policy = file ? policyFromFile(model, file, policyPath!) : FULL_PRECISION;
        startingWeights(model, source, from);
        if (file) assertStepSizesTrained(model, policy, from!);
        const exported = await exportModel(model, { format, ...(file && { policy }), ...(opset !== undefined && { opset: opset as ExportOpset }), fakeQuant: o.fakeQuant === true });
        // tfjs: `model.json` and its shard in the directory --out names (or beside the .json it names)
        const [dir, main] = format === 'tfjs' && extname(out).toLowerCase() !== '.json' ? [out, join(out, 'model.json')] : [dirname(out), out];
        const outputs = exported.files.map(([name, content]) => ({ path: name === '' ? main : join(dir, name), data: content }));
        // all or none: model.json never names a shard that was not written
        writeOutputs(outputs);
        const written = outputs.map(({ path, data }) => ({ path, bytes: typeof data === 'string' ? Buffer.byteLength(data) : data.length }));
        // a tfjs file holds float32 weights, fake-quantized or not: its ratio is against FP32 alone
        const size = exportSize(model, format === 'onnx' ? policy : FULL_PRECISION, written.reduce((s, f) => s + f.bytes, 0));
        const summary = { out: main, format, ...(format === 'onnx' && { opset: opset ?? 13 }), policy: policyPath ?? null, files: written, storage: exported.storage, ...snakeKeys(size) };
        const line = format === 'tfjs'
          ? formatExportSize(`${main} + ${basename(written[0].path)}`, size, file ? 'float32 weights, fake-quantized at the policy' : 'full precision')
          : formatExportSize(main, size);
        process.stdout.write(o.json ? `${JSON.stringify(summary)}\n` : `${line}\n`);
      } finally {
        disposeModel(model);
      }
    }));
}
