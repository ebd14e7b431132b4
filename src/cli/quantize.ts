import type { Command } from 'commander';
import { QUANTIZER_NAMES } from '../quant/index.js';
import { quantizeWithConfig } from '../train/run.js';
import { UserError } from '../util/errors.js';
import { addQuantizerOptions, quantizerChoice } from './finetune.js';
import { action } from './run.js';
import { snakeKeys } from './options.js';
import { addTrainingOptions, epochLines, runOptions } from './train.js';

export function registerQuantize(program: Command): void {
  const cmd = program.command('quantize')
    .description('apply an NNI config_list with a quantizer (qat, dorefa, naive, lsq, nuq): finetune from a checkpoint, or with --epochs 0 evaluate post-training');
  addQuantizerOptions(addTrainingOptions(cmd, 'finetune', 1))
    .requiredOption('--config <file>', 'NNI config_list JSON: [{quant_types, quant_bits, quant_start_step?, op_types | op_names, exclude?}]')
    .option('--from <dir>', 'checkpoint to start from (full precision, or one this quantizer finetuned; default: an imported model\'s own weights)')
    .option('--checkpoint <dir>', 'save the quantized model here after every epoch')
    .option('--json', 'print a JSON summary (top1 0–1, the bits of every layer) as the last line')
    .action(action(async (o: Record<string, unknown>) => {
      const quantizer = quantizerChoice(o);
      if (!quantizer) throw new UserError(`--quantizer: required with --config (${QUANTIZER_NAMES.join(', ')})`);
      const epochs = o.epochs as number;
      if (epochs < 0) throw new UserError(`--epochs: must be 0 (evaluate only) or more, got ${epochs}`);
      const result = await quantizeWithConfig({
        ...runOptions(o), quantizer, configPath: String(o.config), ...(o.from !== undefined ? { from: String(o.from) } : {}),
        checkpoint: o.checkpoint as string | undefined, resume: o.resume === true,
        onEpoch: epochLines(o),
      });
      if (o.json) {
        process.stdout.write(`${JSON.stringify({
          model: result.model, ...snakeKeys(result.quantization, true), top1: result.test.top1, count: result.test.count,
          layers: Object.entries(result.policy).map(([name, b]) => ({ name, weight_bits: b.weightBits, act_bits: b.actBits })), calibrated: result.calibrated,
          epochs, seed: o.seed, backend: result.backend, seconds: Math.round(result.seconds),
        })}\n`);
      } else {
        const calibrated = result.calibrated > 0 ? `; ${result.calibrated} activation ranges calibrated on training images` : '';
        process.stdout.write(`${epochs === 0 ? 'test' : 'final test'} top1 ${(100 * result.test.top1).toFixed(2)}% on ${result.test.count} images (${quantizer.name})${calibrated}; ${result.seconds.toFixed(0)} s; backend ${result.backend}\n`);
      }
    }));
}
