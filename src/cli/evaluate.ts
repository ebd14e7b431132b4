import type { Command } from 'commander';
import { evaluateCheckpoint } from '../train/run.js';
import { action, parseInteger } from './run.js';
import { backendFlag } from './train.js';

export function registerEvaluate(program: Command): void {
  program.command('eval').description('test top-1 of a checkpoint, in full precision or at a policy')
    .requiredOption('--model <name>', 'model: mnist-cnn | resnet20')
    .requiredOption('--from <dir>', 'checkpoint directory')
    .option('--policy <file>', 'policy JSON to evaluate at (default: full precision)')
    .option('--limit <n>', 'use only the first N test samples', parseInteger('--limit'))
    .option('--backend <name>', 'tfjs backend: auto | wasm | cpu | tensorflow', 'auto')
    .option('--data <dir>', 'dataset directory (default: bundled mnist digits)')
    .option('--json', 'print one JSON object')
    .action(action(async (o: Record<string, unknown>) => {
      const result = await evaluateCheckpoint({
        model: String(o.model), from: String(o.from), policyPath: o.policy as string | undefined,
        limit: o.limit as number | undefined, backend: backendFlag(o.backend), dataDir: o.data as string | undefined,
        log: (line) => process.stderr.write(`${line}\n`),
      });
      if (o.json) {
        process.stdout.write(`${JSON.stringify({
          model: String(o.model), from: String(o.from), policy: o.policy ?? null, top1: result.test.top1,
          loss: result.test.loss, count: result.test.count, backend: result.backend,
        })}\n`);
      } else {
        process.stdout.write(`test top1 ${(100 * result.test.top1).toFixed(2)}% (loss ${result.test.loss.toFixed(4)}) on ${result.test.count} images\n`);
      }
    }));
}
