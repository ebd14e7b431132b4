import type { Command } from 'commander';
import { writeNcnnTable } from '../export/deploy-tables.js';
import { readPacked } from '../export/packed.js';
import { readPolicy } from '../export/policy-file.js';
import { samplePerClass, type CalibrationMode } from '../simulate/calibrate.js';
import { int8Calibration, tensorRtCache } from '../simulate/deploy.js';
import { disposeModel } from '../train/models.js';
import { formatPackedSize, packedSize, packModel } from '../simulate/packed-model.js';
import { disposeCheckpoint, readCheckpoint, readCheckpointManifest, savedPerChannelWeightSteps } from '../train/checkpoint.js';
import { createModel } from '../train/models.js';
import { policyBits, policyFromFile } from '../train/policies.js';
import { assertStepSizesTrained, loadWeights, prepare } from '../train/run.js';
import { UserError } from '../util/errors.js';
import { writeFileAtomic } from '../util/fs.js';
import { action, parseInteger } from './run.js';
import { addModelOptions, backendFlag } from './train.js';
import { layerSelection } from './search-options.js';

export function registerPack(program: Command): void {
  addModelOptions(program.command('pack')
    .description('write a checkpoint at a policy as a bit-packed mixed-precision model (and int8 deployment tables)'))
    .requiredOption('--from <dir>', 'checkpoint with learned step sizes at the policy (mpq finetune)')
    .requiredOption('--policy <file>', 'policy JSON giving each layer its bits')
    .requiredOption('--out <file>', 'packed model file (MPQP)')
    .option('--ncnn-table <file>', 'also write an ncnn int8 calibration table of the FP network')
    .option('--trt-cache <file>', 'also write a TensorRT EntropyCalibration2 cache of the FP network')
    .option('--trt-version <n>', 'TensorRT version in the cache header, e.g. 8601 for 8.6.1', parseInteger('--trt-version'), 8601)
    .option('--calib <mode>', 'input thresholds of the tables: kl | naive', 'kl')
    .option('--num-sample <n>', 'calibration samples per class, from the training split', parseInteger('--num-sample'), 100)
    .option('--seed <n>', 'seed of the calibration sample draw', parseInteger('--seed'), 7)
    .option('--backend <name>', 'tfjs backend: auto | native | wasm | cpu | tensorflow', 'auto')
    .option('--data <dir>', 'dataset directory (default: bundled mnist digits)')
    .option('--json', 'print one JSON object')
    .action(action(async (o: Record<string, unknown>) => {
      const calib = String(o.calib);
      if (calib !== 'kl' && calib !== 'naive') throw new UserError(`--calib: '${calib}' is not one of kl, naive`);
      const numSample = o.numSample as number;
      if (numSample < 1) throw new UserError(`--num-sample: must be a positive integer, got ${numSample}`);
      const trtVersion = o.trtVersion as number;
      if (trtVersion < 0) throw new UserError(`--trt-version: must be a whole number like 8601, got ${trtVersion}`);
      const policyPath = String(o.policy);
      const from = String(o.from);
      const file = readPolicy(policyPath);
      const layers = layerSelection(o);
      const { model, data, source } = await prepare(
        {
          ...(o.model !== undefined ? { model: String(o.model) } : {}), from, backend: backendFlag(o.backend), dataDir: o.data as string | undefined,
          log: (line) => process.stderr.write(`${line}\n`),
        },
        (m) => createModel(m, {
          bits: policyBits(file), perChannelWeights: savedPerChannelWeightSteps(readCheckpointManifest(from)),
          layers: Object.keys(layers).length > 0 ? layers : { fixed: file.fixed.map((l) => l.name), fixedFrom: `${policyPath}: field 'fixed'` },
        }),
      );
      const policy = policyFromFile(model, file, policyPath);
      loadWeights(model, from);
      assertStepSizesTrained(model, policy, from);
      const out = String(o.out);
      const bytes = packModel(model, policy, { kind: 'lsq' }, { source: from, policy_file: policyPath, command: ['mpq', ...process.argv.slice(2)].join(' ') });
      disposeModel(model);
      // every output is computed before any is written
      const outputs: Array<[string, string | Uint8Array]> = [[out, bytes]];
      if (o.ncnnTable !== undefined || o.trtCache !== undefined) {
        const checkpoint = readCheckpoint(from);
        try {
          const layers = int8Calibration({
            source, from, checkpoint, calibSet: samplePerClass(data.train, numSample, data.numClasses, o.seed as number),
            groupSize: 1, calibEpoch: 3, batchSize: 128,
          }, calib as CalibrationMode);
          if (o.ncnnTable !== undefined) outputs.push([String(o.ncnnTable), writeNcnnTable(layers)]);
          if (o.trtCache !== undefined) outputs.push([String(o.trtCache), tensorRtCache(layers, trtVersion)]);
        } finally {
          disposeCheckpoint(checkpoint);
        }
      }
      for (const [path, content] of outputs) writeFileAtomic(path, content);
      const written = outputs.map(([path]) => path);
      const size = packedSize(bytes, readPacked(bytes, out));
      process.stdout.write(o.json ? `${JSON.stringify({ out, written, policy: policyPath, ...size })}\n` : `${formatPackedSize(out, size)}\n`);
    }));
}
