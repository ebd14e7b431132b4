import type { Command } from 'commander';
import { CLIP_LIMIT, type CalibrationMode } from '../simulate/calibrate.js';
import { packCheckpoint, repackFile } from '../simulate/pack.js';
import { formatPackedSize } from '../simulate/packed-model.js';
import { UserError } from '../util/errors.js';
import { addBitsOptions, quantizeRequest } from './finetune.js';
import { action, fieldFlag, parseInteger } from './run.js';
import { addModelOptions, backendFlag } from './train.js';
import { layerSelection } from './search-options.js';
import { snakeKeys } from './options.js';

export function registerPack(program: Command): void {
  addBitsOptions(addModelOptions(program.command('pack')
    .description('write a checkpoint at a policy or uniform bits as a bit-packed mixed-precision model (and int8 deployment tables), with the quantizer it was finetuned with; or rewrite an older packed file as the current version')))
    .option('--from <dir>', 'checkpoint finetuned at these bits (mpq finetune, any --quantizer)')
    .option('--policy <file>', 'policy JSON giving each layer its bits (or --weight-bits)')
    .option('--packed <file>', 'instead: an older packed file (version 1 or 2, no checksum) to rewrite as the current version at --out')
    .requiredOption('--out <file>', 'packed model file (MPQP)')
    .option('--ncnn-table <file>', 'also write an ncnn int8 calibration table of the FP network')
    .option('--trt-cache <file>', 'also write a TensorRT EntropyCalibration2 cache of the FP network')
    .option('--trt-version <n>', 'TensorRT version in the cache header, e.g. 8601 for 8.6.1', parseInteger('--trt-version'), 8601)
    .option('--calib <mode>', `input thresholds of the tables: kl (TensorRT entropy, clipping at most ${100 * CLIP_LIMIT}% of the values) | naive (EMA of batch max)`, 'kl')
    .option('--num-sample <n>', 'calibration samples per class, from the training split', parseInteger('--num-sample'), 100)
    .option('--seed <n>', 'seed of the calibration sample draw', parseInteger('--seed'), 7)
    .option('--backend <name>', 'tfjs backend: auto | native | wasm | cpu | tensorflow', 'auto')
    .option('--data <dir>', 'dataset directory (default: bundled mnist digits)')
    .option('--json', 'print one JSON object')
    .option('--overwrite', 'replace an existing --out (or table) file; without it that is refused')
    .action(action(async (o: Record<string, unknown>) => {
      if (o.packed !== undefined) return repack(String(o.packed), String(o.out), o);
      if (o.from === undefined) throw new UserError('pack: --from is required (or --packed FILE to rewrite a packed file)');
      const asked = quantizeRequest(o);
      const result = await packCheckpoint({
        from: String(o.from), out: String(o.out), ...(o.model !== undefined && { model: String(o.model) }),
        ...(asked.policyPath !== undefined && { policyPath: asked.policyPath }), ...(asked.weightBits !== undefined && { weightBits: asked.weightBits }),
        ...(asked.actBits !== undefined && { actBits: asked.actBits }), ...(asked.quantizeFirstLast !== undefined && { quantizeFirstLast: asked.quantizeFirstLast }),
        layers: layerSelection(o),
        ...(o.ncnnTable !== undefined && { ncnnTable: String(o.ncnnTable) }), ...(o.trtCache !== undefined && { trtCache: String(o.trtCache) }),
        trtVersion: o.trtVersion as number, calib: String(o.calib) as CalibrationMode, numSample: o.numSample as number, seed: o.seed as number,
        overwrite: o.overwrite === true, backend: backendFlag(o.backend), dataDir: o.data as string | undefined,
        command: ['mpq', ...process.argv.slice(2)].join(' '), log: (line) => process.stderr.write(`${line}\n`),
      });
      const { out, written, quantizer, backend, size, tables } = result;
      process.stdout.write(o.json ? `${JSON.stringify({ out, written, policy: o.policy ?? null, quantizer, backend, ...snakeKeys(size), ...tables })}\n` : `${formatPackedSize(out, size)}\n`);
    }));
}

/** `mpq pack --packed OLD --out NEW`: the same model in the current container version (checksummed). */
function repack(path: string, out: string, o: Record<string, unknown>): void {
  const stray = ['model', 'from', 'policy', 'weightBits', 'actBits', 'quantizer', 'fixed', 'searchable', 'ncnnTable', 'trtCache'].find((key) => o[key] !== undefined);
  if (stray) throw new UserError(`${fieldFlag(stray)}: not with --packed (the packed file holds the model)`);
  const r = repackFile({ path, out, overwrite: o.overwrite === true });
  process.stdout.write(o.json
    ? `${JSON.stringify({ out, from_version: r.fromVersion, version: r.version, bytes: r.bytes })}\n`
    : `wrote ${out}: version ${r.fromVersion} -> ${r.version} (checksummed), ${r.bytes} bytes\n`);
}
