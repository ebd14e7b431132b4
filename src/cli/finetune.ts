import type { Command } from 'commander';
import { finetuneAtPolicy } from '../train/run.js';
import { action } from './run.js';
import { addTrainingOptions, formatEpoch, runOptions } from './train.js';

export function registerFinetune(program: Command): void {
  addTrainingOptions(program.command('finetune').description('LSQ quantization-aware finetuning at a policy, from an FP checkpoint'))
    .requiredOption('--from <dir>', 'full-precision checkpoint to start from')
    .requiredOption('--policy <file>', 'policy JSON (policies/…) giving each layer its bits')
    .option('--checkpoint <dir>', 'save the finetuned model here after every epoch')
    .option('--json', 'print a JSON summary (top1 0–1, the policy bits) as the last line')
    .action(action(async (o: Record<string, unknown>) => {
      const result = await finetuneAtPolicy({
        ...runOptions(o), from: String(o.from), policyPath: String(o.policy),
        checkpoint: o.checkpoint as string | undefined, resume: o.resume === true,
        onEpoch: (r) => process.stdout.write(`${formatEpoch(r)}\n`),
      });
      if (o.json) {
        process.stdout.write(`${JSON.stringify({
          model: String(o.model), policy: String(o.policy), top1: result.test.top1, count: result.test.count,
          layers: Object.entries(result.policy).map(([name, b]) => ({ name, ...b })),
          epochs: o.epochs, seed: o.seed, backend: result.backend, seconds: Math.round(result.seconds),
        })}\n`);
      } else {
        process.stdout.write(`final test top1 ${(100 * result.test.top1).toFixed(2)}% on ${result.test.count} images; ${result.seconds.toFixed(0)} s\n`);
      }
    }));
}
