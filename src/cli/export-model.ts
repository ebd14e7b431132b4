import { basename } from 'node:path';
import { Option, type Command } from 'commander';
import { EXPORT_OPSETS } from '../export/onnx-model.js';
import { formatExportSize, MODEL_EXPORT_FORMATS, type ModelExportFormat } from '../export/model-export.js';
import { exportModelFile } from '../export/model-file.js';
import { action, parseInteger } from './run.js';
import { layerSelection } from './search-options.js';
import { snakeKeys } from './options.js';
import { addModelOptions, backendFlag } from './train.js';

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
      const r = await exportModelFile({
        out: String(o.out), ...(o.format !== undefined && { format: o.format as ModelExportFormat }),
        ...(o.from !== undefined && { from: String(o.from) }), ...(o.model !== undefined && { model: String(o.model) }),
        ...(o.policy !== undefined && { policyPath: String(o.policy) }), fullPrecision: o.fullPrecision === true,
        ...(o.opset !== undefined && { opset: o.opset as number }), fakeQuant: o.fakeQuant === true, layers: layerSelection(o),
        overwrite: o.overwrite === true, backend: backendFlag(o.backend), log: (line) => process.stderr.write(`${line}\n`),
      });
      const { size, ...summary } = r;
      const line = r.format === 'tfjs'
        ? formatExportSize(`${r.out} + ${basename(r.files[0].path)}`, size, r.policy !== null ? 'float32 weights, fake-quantized at the policy' : 'full precision')
        : formatExportSize(r.out, size);
      process.stdout.write(o.json ? `${JSON.stringify({ ...summary, ...snakeKeys(size) })}\n` : `${line}\n`);
    }));
}
