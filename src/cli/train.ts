import { Option, type Command } from 'commander';
import { availableParallelism } from 'node:os';
import { DEFAULT_HYPERPARAMETERS, type EpochReport, type Stage } from '../train/loops.js';
import { trainFullPrecision, type RunOptions } from '../train/run.js';
import { UserError } from '../util/errors.js';
import { checkOutputDirectory } from '../util/fs.js';
import { action, parseInteger, parseNumber } from './run.js';
import { layerSelection } from './search-options.js';
import { addModelOptions, backendFlag, backendOption, dataOption, jsonOption, limitOption, overwriteOption, progressOption, seedOption } from './options.js';

/**
 * Flags every training command shares (train, pretrain, finetune, quantize), with the stage's
 * defaults shown; `defaultEpochs` makes --epochs optional.
 */
export function addTrainingOptions(cmd: Command, stage: Stage, defaultEpochs?: number): Command {
  addModelOptions(cmd, stage === 'train' ? 'none: give one' : 'the --from checkpoint\'s');
  if (defaultEpochs === undefined) cmd.requiredOption('--epochs <n>', 'epochs', parseInteger('--epochs'));
  else cmd.option('--epochs <n>', `epochs (0: evaluate only)`, parseInteger('--epochs'), defaultEpochs);
  // the stage's own defaults, applied by the engine when the flag is absent (and recorded in the checkpoint)
  const hyper = DEFAULT_HYPERPARAMETERS[stage];
  const shown = (opt: Option, value: number) => { opt.description += ` (default: ${value})`; return opt; };
  return cmd
    .addOption(limitOption('training and test samples'))
    .addOption(seedOption('seed for init, shuffling and sampled policies', 0))
    .addOption(backendOption())
    .addOption(dataOption())
    .addOption(shown(new Option('--batch-size <n>', 'batch size').argParser(parseInteger('--batch-size')), hyper.batchSize))
    .addOption(shown(new Option('--lr <x>', 'initial learning rate (cosine decay)').argParser(parseNumber('--lr')), hyper.lr))
    .addOption(shown(new Option('--weight-decay <x>', 'L2 weight decay on conv/fc weights').argParser(parseNumber('--weight-decay')), hyper.weightDecay))
    .addOption(shown(new Option('--workers <n>', 'data-parallel gradient workers, one core each (wasm; LSQ models; BN statistics per shard; 0: steps in this thread)').argParser(parseInteger('--workers')), 0))
    .option('--resume', 'continue the run saved in --checkpoint')
    .addOption(overwriteOption('the run --checkpoint (or the file --out) already holds'))
    .addOption(progressOption());
}

export { addModelOptions, backendFlag };

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

/** Each epoch's line: on stdout, or on stderr under --json (stdout is then the one JSON object). */
export function epochLines(o: Record<string, unknown>): (r: EpochReport) => void {
  return (r) => (o.json === true ? process.stderr : process.stdout).write(`${formatEpoch(r)}\n`);
}

export function formatEpoch(r: EpochReport): string {
  const train = Object.entries(r.train)
    .map(([label, m]) => `${label} loss ${m.loss.toFixed(3)} top1 ${(100 * m.top1).toFixed(2)}%`)
    .join(', ');
  return `${r.stage} epoch ${r.epoch}/${r.epochs}: test top1 ${(100 * r.testTop1).toFixed(2)}% | train ${train} | ${r.seconds.toFixed(1)} s, ${r.imagesPerSecond.toFixed(0)} img/s`;
}

export function registerTrain(program: Command): void {
  addTrainingOptions(program.command('train').description('train a model in full precision (SGD, cosine LR, label smoothing)'), 'train')
    .requiredOption('--checkpoint <dir>', 'checkpoint directory (written after every epoch)')
    .addOption(jsonOption('print a JSON summary (top1 0–1) as the last line'))
    .action(action(async (o: Record<string, unknown>) => {
      if (o.model === undefined) throw new UserError('--model: required (what to train)');
      const result = await trainFullPrecision({
        ...runOptions(o), checkpoint: String(o.checkpoint), resume: o.resume === true,
        onEpoch: epochLines(o),
      });
      process.stdout.write(o.json
        ? `${JSON.stringify({ model: result.model, checkpoint: String(o.checkpoint), top1: result.test.top1, count: result.test.count, epochs: o.epochs, seed: o.seed, backend: result.backend, seconds: Math.round(result.seconds) })}\n`
        : `final test top1 ${(100 * result.test.top1).toFixed(2)}% on ${result.test.count} images; ${result.seconds.toFixed(0)} s; backend ${result.backend}; checkpoint ${String(o.checkpoint)}\n`);
    }));
}
