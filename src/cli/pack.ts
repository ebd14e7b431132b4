import type { Command } from 'commander';
import { writeNcnnTable } from '../export/deploy-tables.js';
import { readPacked, writePacked } from '../export/packed.js';
import { CLIP_LIMIT, clippingWarning, samplePerClass, type CalibrationMode } from '../simulate/calibrate.js';
import { int8Calibration, tensorRtCache } from '../simulate/deploy.js';
import { formatPackedSize, inputQuantizersOf, packedSize, packModel } from '../simulate/packed-model.js';
import { disposeCheckpoint, hasCheckpoint, readCheckpoint, readCheckpointManifest, savedPerChannelWeightSteps } from '../train/checkpoint.js';
import { subset } from '../train/data.js';
import { createModel, disposeModel } from '../train/models.js';
import { calibrateActivationRanges, CALIBRATION_IMAGES, planQuantization } from '../train/quantization-plan.js';
import { savedQuantizerChoice } from '../train/quantizer-factory.js';
import { assertStepSizesTrained, savedQuantizeRequest, loadWeights, prepare } from '../train/run.js';
import { UserError } from '../util/errors.js';
import { checkOutputPath, refuseExistingOutput, MAX_BINARY_INPUT_BYTES, readInputFile, writeOutputs } from '../util/fs.js';
import { addBitsOptions, quantizeRequest } from './finetune.js';
import { action, parseInteger } from './run.js';
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
    .option('--backend <name>', 'tfjs backend: auto | wasm | cpu | tensorflow', 'auto')
    .option('--data <dir>', 'dataset directory (default: bundled mnist digits)')
    .option('--json', 'print one JSON object')
    .option('--overwrite', 'replace an existing --out (or table) file; without it that is refused')
    .action(action(async (o: Record<string, unknown>) => {
      if (o.packed !== undefined) return repack(String(o.packed), String(o.out), o);
      if (o.from === undefined) throw new UserError('pack: --from is required (or --packed FILE to rewrite a packed file)');
      const calib = String(o.calib);
      if (calib !== 'kl' && calib !== 'naive') throw new UserError(`--calib: '${calib}' is not one of kl, naive`);
      const numSample = o.numSample as number;
      if (numSample < 1) throw new UserError(`--num-sample: must be a positive integer, got ${numSample}`);
      const trtVersion = o.trtVersion as number;
      if (trtVersion < 0) throw new UserError(`--trt-version: must be a whole number like 8601, got ${trtVersion}`);
      for (const key of ['out', 'ncnnTable', 'trtCache']) if (o[key] !== undefined) checkOutputPath(String(o[key]));
      // flags are judged before the files they name: a wrong flag is the first thing to hear about
      if (o.overwrite !== true) for (const [key, flag] of [['out', '--out'], ['ncnnTable', '--ncnn-table'], ['trtCache', '--trt-cache']]) if (o[key] !== undefined) refuseExistingOutput(String(o[key]), flag);
      const from = String(o.from);
      // the checkpoint says how its quantizers were built: which quantizer, LSQ steps per channel
      const manifest = hasCheckpoint(from) ? readCheckpointManifest(from) : undefined;
      const quantizer = manifest ? savedQuantizerChoice(manifest, from) : { name: 'lsq' as const };
      const perChannelWeights = manifest !== undefined && savedPerChannelWeightSteps(manifest);
      const asked = quantizeRequest(o);
      const bitsGiven = asked.policyPath !== undefined || asked.weightBits !== undefined;
      // without bits flags, a fine-tuned checkpoint packs at its own bits
      const saved = !bitsGiven && manifest ? savedQuantizeRequest(from) : undefined;
      const { says: _says, quantizer: _saved, ...savedBits } = saved ?? { says: '', quantizer };
      const plan = planQuantization({ ...asked, ...savedBits, quantizer, perChannelWeights });
      if (!plan) throw new UserError('pack: give --policy FILE or --weight-bits B (the bits to pack at), or --from a fine-tuned checkpoint');
      const layers = layerSelection(o);
      const { model, data, source, backend } = await prepare(
        {
          ...(o.model !== undefined ? { model: String(o.model) } : {}), from, backend: backendFlag(o.backend), dataDir: o.data as string | undefined,
          log: (line) => process.stderr.write(`${line}\n`),
        },
        (m) => createModel(m, {
          bits: plan.bits, quantizers: plan.quantizers, perChannelWeights, layers: Object.keys(layers).length > 0 ? layers : plan.layers,
        }),
      );
      const policy = plan.attach(model);
      loadWeights(model, from);
      assertStepSizesTrained(model, policy, from);
      calibrateActivationRanges(model, subset(data.train, CALIBRATION_IMAGES), policy);
      const out = String(o.out);
      const bytes = packModel(model, policy, inputQuantizersOf(quantizer.name), {
        source: from, quantizer: quantizer.name, ...(o.policy !== undefined && { policy_file: String(o.policy) }), command: ['mpq', ...process.argv.slice(2)].join(' '),
      });
      disposeModel(model);
      // every output is computed before any is written
      const outputs: Array<[string, string | Uint8Array]> = [[out, bytes]];
      // what the tables' thresholds clip, for --json
      let tables: { calib: string; clipped: Record<string, number>; warning?: string } | undefined;
      if (o.ncnnTable !== undefined || o.trtCache !== undefined) {
        const checkpoint = readCheckpoint(from);
        try {
          const { layers, calibration } = int8Calibration({
            source, from, checkpoint, calibSet: samplePerClass(data.train, numSample, data.numClasses, o.seed as number),
            groupSize: 1, calibEpoch: 3, batchSize: 128,
          }, calib as CalibrationMode);
          const warning = clippingWarning(calibration.clipped);
          if (warning) process.stderr.write(`mpq: warning: int8 tables, calib ${calib}: ${warning}\n`);
          tables = { calib, clipped: Object.fromEntries(calibration.clipped), ...(warning ? { warning } : {}) };
          if (o.ncnnTable !== undefined) outputs.push([String(o.ncnnTable), writeNcnnTable(layers)]);
          if (o.trtCache !== undefined) outputs.push([String(o.trtCache), tensorRtCache(layers, trtVersion)]);
        } finally {
          disposeCheckpoint(checkpoint);
        }
      }
      writeOutputs(outputs.map(([path, data]) => ({ path, data }))); // all or none
      const written = outputs.map(([path]) => path);
      const size = packedSize(bytes, readPacked(bytes, out));
      process.stdout.write(o.json ? `${JSON.stringify({ out, written, policy: o.policy ?? null, quantizer: quantizer.name, backend, ...snakeKeys(size), ...tables })}\n` : `${formatPackedSize(out, size)}\n`);
    }));
}

/** `mpq pack --packed OLD --out NEW`: the same model in the current container version (checksummed). */
function repack(path: string, out: string, o: Record<string, unknown>): void {
  const stray = ['model', 'from', 'policy', 'weightBits', 'actBits', 'quantizer', 'fixed', 'searchable', 'ncnnTable', 'trtCache'].find((key) => o[key] !== undefined);
  if (stray) throw new UserError(`--${stray.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}: not with --packed (the packed file holds the model)`);
  checkOutputPath(out);
  if (o.overwrite !== true) refuseExistingOutput(out, '--out');
  const old = readPacked(readInputFile(path, 'packed model', MAX_BINARY_INPUT_BYTES), path);
  const bytes = writePacked(old.layers, old.meta, old.floats);
  writeOutputs([{ path: out, data: bytes }]);
  const again = readPacked(bytes, out);
  process.stdout.write(o.json
    ? `${JSON.stringify({ out, from_version: old.version, version: again.version, bytes: bytes.length })}\n`
    : `wrote ${out}: version ${old.version} -> ${again.version} (checksummed), ${bytes.length} bytes\n`);
}
