import type { Command } from 'commander';
import { NUQ_DEFAULTS, NUQ_INITS, NUQ_OPT_MODES, QUANTIZER_NAMES, type NuqBuckets, type NuqInit, type NuqOptMode, type QuantizerName } from '../quant/index.js';
import type { QuantizeRequest } from '../train/quantization-plan.js';
import type { QuantizerChoice } from '../train/quantizer-factory.js';
import { finetuneAtPolicy } from '../train/run.js';
import { UserError } from '../util/errors.js';
import { action, parseInteger } from './run.js';
import { addBitsPairOptions, snakeKeys } from './options.js';
import { addTrainingOptions, epochLines, runOptions } from './train.js';

const NUQ_FLAGS: [key: string, flag: string][] = [
  ['nuqOptMode', '--nuq-opt-mode'], ['nuqInit', '--nuq-init'], ['nuqBuckets', '--nuq-buckets'], ['nuqBucketSize', '--nuq-bucket-size'],
];

/** --quantizer and the NUQ learner's options (PocketFlow's nuql_* flags). */
export function addQuantizerOptions(cmd: Command): Command {
  return cmd
    .option('--quantizer <name>', `${QUANTIZER_NAMES.join(' | ')} (finetune/eval default: lsq; required with --config)`)
    .option('--nuq-opt-mode <mode>', `nuq: what finetuning updates: ${NUQ_OPT_MODES.join(' | ')} (default ${NUQ_DEFAULTS.optMode})`)
    .option('--nuq-init <style>', `nuq: initial points: ${NUQ_INITS.join(' | ')} (default ${NUQ_DEFAULTS.init})`)
    .option('--nuq-buckets <type>', 'nuq: a codebook per bucket: split | channel (default: one per layer)')
    .option('--nuq-bucket-size <n>', `nuq: weights per bucket with --nuq-buckets split (default ${NUQ_DEFAULTS.bucketSize})`, parseInteger('--nuq-bucket-size'));
}

/** Uniform bits instead of a policy file, and what happens to the first and last layers. */
export function addBitsOptions(cmd: Command): Command {
  return addBitsPairOptions(cmd, {
    weight: 'uniform weight bits of the searchable layers, instead of --policy (32: not quantized)',
    act: 'uniform activation bits (32: not quantized; default: lsq/qat as --weight-bits, nuq 32, dorefa/naive weights only)',
  })
    .option('--quantize-first-last', 'quantize the first and last layers, at 8 bits (default, except nuq)')
    .option('--no-quantize-first-last', 'leave the first and last layers in full precision (the nuq default)');
}

function oneOf<T extends string>(flag: string, value: unknown, allowed: readonly T[]): T {
  const v = String(value);
  if (!(allowed as readonly string[]).includes(v)) throw new UserError(`${flag}: '${v}' is not one of ${allowed.join(', ')}`);
  return v as T;
}

/** The quantizer the flags ask for (undefined: none named, the engine's LSQ). */
export function quantizerChoice(o: Record<string, unknown>): QuantizerChoice | undefined {
  const name = o.quantizer === undefined ? undefined : oneOf<QuantizerName>('--quantizer', o.quantizer, QUANTIZER_NAMES);
  if (name !== 'nuq') {
    const stray = NUQ_FLAGS.find(([key]) => o[key] !== undefined);
    if (stray) throw new UserError(`${stray[1]}: only with --quantizer nuq`);
    return name && { name };
  }
  let buckets: NuqBuckets | undefined;
  if (o.nuqBuckets !== undefined) {
    const type = oneOf('--nuq-buckets', o.nuqBuckets, ['split', 'channel'] as const);
    if (type === 'split') {
      const size = (o.nuqBucketSize as number | undefined) ?? NUQ_DEFAULTS.bucketSize;
      if (size < 1) throw new UserError(`--nuq-bucket-size: must be a positive integer, got ${size}`);
      buckets = { type, size };
    } else {
      buckets = { type };
    }
  }
  if (o.nuqBucketSize !== undefined && buckets?.type !== 'split') throw new UserError('--nuq-bucket-size: needs --nuq-buckets split');
  return {
    name,
    nuq: {
      ...(o.nuqOptMode !== undefined && { optMode: oneOf<NuqOptMode>('--nuq-opt-mode', o.nuqOptMode, NUQ_OPT_MODES) }),
      ...(o.nuqInit !== undefined && { init: oneOf<NuqInit>('--nuq-init', o.nuqInit, NUQ_INITS) }),
      ...(buckets && { buckets }),
    },
  };
}

/** Quantizer, policy file or uniform bits from the flags of addQuantizerOptions / addBitsOptions. */
export function quantizeRequest(o: Record<string, unknown>): QuantizeRequest {
  const quantizer = quantizerChoice(o);
  return {
    ...(quantizer && { quantizer }),
    ...(o.policy !== undefined && { policyPath: String(o.policy) }),
    ...(o.weightBits !== undefined && { weightBits: o.weightBits as number }),
    ...(o.actBits !== undefined && { actBits: o.actBits as number }),
    ...(o.quantizeFirstLast !== undefined && { quantizeFirstLast: o.quantizeFirstLast === true }),
  };
}

export function registerFinetune(program: Command): void {
  const cmd = program.command('finetune').description('quantization-aware finetuning (LSQ by default) at a policy or uniform bits, from an FP checkpoint');
  addBitsOptions(addQuantizerOptions(addTrainingOptions(cmd, 'finetune')))
    .option('--from <dir>', 'full-precision checkpoint to start from (default: an imported model\'s own weights)')
    .option('--policy <file>', 'policy JSON (policies/…) giving each layer its bits')
    .option('--checkpoint <dir>', 'save the finetuned model here after every epoch')
    .option('--per-channel-weights', 'LSQ weight step sizes per output channel (default: one per tensor, as LIMPQ); eval and pack follow the checkpoint')
    .option('--json', 'print a JSON summary (top1 0–1, the policy bits) as the last line')
    .action(action(async (o: Record<string, unknown>) => {
      const result = await finetuneAtPolicy({
        ...runOptions(o), ...quantizeRequest(o), perChannelWeights: o.perChannelWeights === true, ...(o.from !== undefined ? { from: String(o.from) } : {}),
        checkpoint: o.checkpoint as string | undefined, resume: o.resume === true,
        onEpoch: epochLines(o),
      });
      if (o.json) {
        process.stdout.write(`${JSON.stringify({
          model: result.model, policy: o.policy ?? null, ...snakeKeys(result.quantization, true), top1: result.test.top1, count: result.test.count,
          layers: Object.entries(result.policy).map(([name, b]) => ({ name, weight_bits: b.weightBits, act_bits: b.actBits })),
          epochs: o.epochs, seed: o.seed, backend: result.backend, seconds: Math.round(result.seconds),
        })}\n`);
      } else {
        process.stdout.write(`final test top1 ${(100 * result.test.top1).toFixed(2)}% on ${result.test.count} images; ${result.seconds.toFixed(0)} s; backend ${result.backend}\n`);
      }
    }));
}
