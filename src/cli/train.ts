import type { Command } from 'commander';
import { availableParallelism } from 'node:os';
import { BACKEND_NAMES, type BackendName } from '../train/backend/index.js';
import type { EpochReport } from '../train/loops.js';
import { trainFullPrecision, type RunOptions } from '../train/run.js';
import { UserError } from '../util/errors.js';
import { checkOutputDirectory } from '../util/fs.js';
import { action, parseInteger, parseNumber } from './run.js';
import { layerSelection } from './search-options.js';
import { TRAIN_MODEL_NAMES } from '../train/models.js';

/** Flags every training command shares (train, pretrain, finetune, quantize); `defaultEpochs` makes --epochs optional. */
export function addTrainingOptions(cmd: Command, defaultEpochs?: number): Command {
  addModelOptions(cmd);
  if (defaultEpochs === undefined) cmd.requiredOption('--epochs <n>', 'epochs', parseInteger('--epochs'));
  else cmd.option('--epochs <n>', `epochs (0: evaluate only)`, parseInteger('--epochs'), defaultEpochs);
  return cmd
    .option('--limit <n>', 'use only the first N training and test samples', parseInteger('--limit'))
    .option('--seed <n>', 'seed for init, shuffling and sampled policies', parseInteger('--seed'), 0)
    .option('--backend <name>', `tfjs backend: ${BACKEND_NAMES.join(' | ')}`, 'auto')
    .option('--data <dir>', 'dataset directory: MNIST IDX files or CIFAR-10 binary batches (default: bundled mnist digits)')
    .option('--batch-size <n>', 'batch size', parseInteger('--batch-size'))
    .option('--lr <x>', 'initial learning rate (cosine decay)', parseNumber('--lr'))
    .option('--weight-decay <x>', 'L2 weight decay on conv/fc weights', parseNumber('--weight-decay'))
    .option('--workers <n>', 'data-parallel gradient workers, one core each (wasm; LSQ models; BN statistics per shard)', parseInteger('--workers'))
    .option('--resume', 'continue the run saved in --checkpoint')
    .option('--overwrite', 'replace the run --checkpoint (or the file --out) already holds; without it that is refused')
    .option('--no-progress', 'no progress bar');
}

/** --model and the fixed-layer flags of every command that builds a model. */
export function addModelOptions(cmd: Command, fromCheckpoint = true): Command {
  return cmd
    .option('--model <name|file>', `model: ${TRAIN_MODEL_NAMES.join(' | ')}, an ONNX file or a tfjs model.json (weights included)${fromCheckpoint ? '; default: the --from checkpoint\'s' : ''}`)
    .option('--fixed <names...>', 'layers kept at 8 bits (default: the policy\'s, else the first and last conv / dense)')
    .option('--searchable <names...>', 'the layers to quantize at searched bits; every other conv / dense is kept at 8 bits');
}

export function backendFlag(value: unknown): BackendName {
  const name = String(value);
  if (!(BACKEND_NAMES as readonly string[]).includes(name)) {
    throw new UserError(`--backend: '${name}' is not one of ${BACKEND_NAMES.join(', ')}`);
  }
  return name as BackendName;
}

/** RunOptions from the shared flags (checked, and the --checkpoint folder); progress lines go to stderr. */
export function runOptions(o: Record<string, unknown>): RunOptions {
  const atLeast = (key: string, flag: string, min: number, what: string) => {
    const n = o[key] as number | undefined;
    if (n !== undefined && !(n >= min)) throw new UserError(`${flag}: must be ${what}, got ${n}`);
  };
  atLeast('batchSize', '--batch-size', 1, 'a positive integer');
  atLeast('lr', '--lr', 0, 'a number ≥ 0');
  atLeast('weightDecay', '--weight-decay', 0, 'a number ≥ 0');
  atLeast('workers', '--workers', 0, 'an integer ≥ 0 (0: steps in this thread)');
  const cores = availableParallelism();
  if ((o.workers as number | undefined ?? 0) > cores) throw new UserError(`--workers: ${String(o.workers)} is more than the ${cores} cores here (one worker a core)`);
  const layers = layerSelection(o);
  if (o.checkpoint !== undefined) checkOutputDirectory(String(o.checkpoint), '--checkpoint');
  return {
    ...(o.model !== undefined ? { model: String(o.model) } : {}),
    ...(Object.keys(layers).length > 0 ? { layers } : {}),
    epochs: o.epochs as number,
    seed: o.seed as number,
    limit: o.limit as number | undefined,
    backend: backendFlag(o.backend),
    dataDir: o.data as string | undefined,
    batchSize: o.batchSize as number | undefined,
    lr: o.lr as number | undefined,
    weightDecay: o.weightDecay as number | undefined,
    workers: o.workers as number | undefined,
    progress: o.progress !== false,
    overwrite: o.overwrite === true,
    command: ['mpq', ...process.argv.slice(2)].join(' '),
    log: (line) => process.stderr.write(`${line}\n`),
  };
}

export function formatEpoch(r: EpochReport): string {
  const train = Object.entries(r.train)
    .map(([label, m]) => `${label} loss ${m.loss.toFixed(3)} top1 ${(100 * m.top1).toFixed(2)}%`)
    .join(', ');
  return `${r.stage} epoch ${r.epoch}/${r.epochs}: test top1 ${(100 * r.testTop1).toFixed(2)}% | train ${train} | ${r.seconds.toFixed(1)} s, ${r.imagesPerSecond.toFixed(0)} img/s`;
}

export function registerTrain(program: Command): void {
  addTrainingOptions(program.command('train').description('train a model in full precision (SGD, cosine LR, label smoothing)'))
    .requiredOption('--checkpoint <dir>', 'checkpoint directory (written after every epoch)')
    .action(action(async (o: Record<string, unknown>) => {
      if (o.model === undefined) throw new UserError('--model: required (what to train)');
      const result = await trainFullPrecision({
        ...runOptions(o), checkpoint: String(o.checkpoint), resume: o.resume === true,
        onEpoch: (r) => process.stdout.write(`${formatEpoch(r)}\n`),
      });
      process.stdout.write(`final test top1 ${(100 * result.test.top1).toFixed(2)}% on ${result.test.count} images; ${result.seconds.toFixed(0)} s; backend ${result.backend}; checkpoint ${String(o.checkpoint)}\n`);
    }));
}
