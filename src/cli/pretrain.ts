import type { Command } from 'commander';
import { pretrainIndicators } from '../train/run.js';
import { checkOutputPath } from '../util/fs.js';
import { defaultOutputPath } from '../util/paths.js';
import { action } from './run.js';
import { modelName } from '../model/names.js';
import { parseBits } from './search-options.js';
import { addTrainingOptions, epochLines, runOptions } from './train.js';
import { jsonOption } from './options.js';

export function registerPretrain(program: Command): void {
  addTrainingOptions(program.command('pretrain').description('LIMPQ joint pretraining of the importance indicators (LSQ step sizes)'), 'pretrain')
    .option('--from <dir>', 'full-precision checkpoint to start from (default: an imported model\'s own weights)')
    .requiredOption('--bits <b...>', 'candidate bit-widths, e.g. 6 5 4 3 2')
    .option('--out <file>', 'indicators JSON to write (default: indicators/<model>.json)')
    .option('--checkpoint <dir>', 'also save the pretrained model here after every epoch')
    .addOption(jsonOption('print a JSON summary (the indicators are in the --out file) as the last line'))
    .action(action(async (o: Record<string, unknown>) => {
      const common = runOptions(o);
      const out = typeof o.out === 'string' ? o.out : defaultOutputPath('indicators', `${modelName(common.model ?? String(o.from))}.json`);
      checkOutputPath(out);
      const result = await pretrainIndicators({
        ...common, ...(o.from !== undefined ? { from: String(o.from) } : {}), bits: parseBits(o.bits as string[]), out,
        checkpoint: o.checkpoint as string | undefined, resume: o.resume === true,
        onEpoch: epochLines(o),
      });
      if (o.json) {
        process.stdout.write(`${JSON.stringify({
          model: result.model, out, from: o.from ?? null, bits: parseBits(o.bits as string[]), test_top1_uniform: result.uniformTop1,
          layers: result.indicators.layer_name.length, epochs: o.epochs, seed: o.seed, backend: result.backend, seconds: Math.round(result.seconds),
        })}\n`);
        return;
      }
      const uniform = Object.entries(result.uniformTop1).map(([b, t]) => `w${b}a${b} ${(100 * t).toFixed(2)}%`).join(', ');
      process.stdout.write(`test top1 at uniform bits: ${uniform}\n`);
      for (const layer of result.indicators.layer_name) {
        const w = Object.entries(result.indicators.weight[layer]).map(([b, s]) => `${b}:${s.toPrecision(4)}`).join(' ');
        const a = Object.entries(result.indicators.act[layer]).map(([b, s]) => `${b}:${s.toPrecision(4)}`).join(' ');
        process.stdout.write(`${layer}: weight s ${w} | act s ${a}\n`);
      }
      process.stdout.write(`wrote ${out} (${result.seconds.toFixed(0)} s; backend ${result.backend})\n`);
    }));
}
