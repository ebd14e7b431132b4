import type { Command } from 'commander';
import { evaluatePackedModel } from '../simulate/evaluate-packed.js';
import { evaluateCheckpoint } from '../train/run.js';
import { UserError } from '../util/errors.js';
import { MAX_BINARY_INPUT_BYTES, readInputFile } from '../util/fs.js';
import { addBitsOptions, addQuantizerOptions, quantizeRequest } from './finetune.js';
import { action, parseInteger } from './run.js';
import { addModelOptions, backendFlag } from './train.js';
import { layerSelection } from './search-options.js';

export function registerEvaluate(program: Command): void {
  addModelOptions(addBitsOptions(addQuantizerOptions(program.command('eval').description('test top-1 of a checkpoint, in full precision or at a policy, or of a packed model'))))
    .option('--from <dir>', 'checkpoint directory')
    .option('--packed <file>', 'evaluate a packed model (mpq pack / simulate --pack) instead of a checkpoint')
    .option('--policy <file>', 'policy JSON to evaluate at (default: full precision)')
    .option('--limit <n>', 'use only the first N test samples', parseInteger('--limit'))
    .option('--backend <name>', 'tfjs backend: auto | native | wasm | cpu | tensorflow', 'auto')
    .option('--data <dir>', 'dataset directory (default: bundled mnist digits)')
    .option('--json', 'print one JSON object')
    .action(action(async (o: Record<string, unknown>) => {
      if (o.packed !== undefined) {
        for (const flag of ['model', 'from', 'policy'] as const) if (o[flag] !== undefined) throw new UserError(`--${flag}: not with --packed (the packed file holds the model and its policy)`);
        const path = String(o.packed);
        const bytes = readInputFile(path, 'packed model', MAX_BINARY_INPUT_BYTES);
        const result = await evaluatePackedModel({
          bytes, path, limit: o.limit as number | undefined, backend: backendFlag(o.backend), dataDir: o.data as string | undefined,
          log: (line) => process.stderr.write(`${line}\n`),
        });
        process.stdout.write(o.json
          ? `${JSON.stringify({ model: result.model, packed: path, top1: result.test.top1, loss: result.test.loss, count: result.test.count, backend: result.backend, bytes: bytes.length })}\n`
          : `test top1 ${(100 * result.test.top1).toFixed(2)}% (loss ${result.test.loss.toFixed(4)}) on ${result.test.count} images; ${result.model} from ${bytes.length} packed bytes; backend ${result.backend}\n`);
        return;
      }
      if (o.from === undefined && o.model === undefined) throw new UserError('eval: give --from (a checkpoint), --model (an imported model with its weights) or --packed FILE');
      const layers = layerSelection(o);
      const result = await evaluateCheckpoint({
        ...(o.model !== undefined ? { model: String(o.model) } : {}), ...(Object.keys(layers).length > 0 ? { layers } : {}),
        ...(o.from !== undefined ? { from: String(o.from) } : {}), ...quantizeRequest(o),
        limit: o.limit as number | undefined, backend: backendFlag(o.backend), dataDir: o.data as string | undefined,
        log: (line) => process.stderr.write(`${line}\n`),
      });
      if (o.json) {
        process.stdout.write(`${JSON.stringify({
          model: result.model, from: o.from ?? null, policy: o.policy ?? null, mode: result.mode, top1: result.test.top1,
          loss: result.test.loss, count: result.test.count, backend: result.backend,
        })}\n`);
      } else {
        process.stdout.write(`test top1 ${(100 * result.test.top1).toFixed(2)}% (loss ${result.test.loss.toFixed(4)}) on ${result.test.count} images; ${result.mode}; backend ${result.backend}\n`);
      }
    }));
}
