import type { Command } from 'commander';
import type { RangeGranularity } from '../calibrate/ranges.js';
import {
  expandGrid, runSimulation, SEED_GRID, settingLabel, simulateCsv, simulateMarkdown, validateSetting,
  type SimulateResult, type SimulateSetting,
} from '../simulate/simulate.js';
import { CLIP_LIMIT } from '../simulate/calibrate.js';
import { packSimulation } from '../simulate/pack.js';
import { formatPackedSize } from '../simulate/packed-model.js';
import { UserError } from '../util/errors.js';
import { checkOutputPath, writeOutputs, type OutputFile } from '../util/fs.js';
import { action, inFlags, parseInteger } from './run.js';
import { addAlias, addBitsPairOptions, addModelOptions, backendFlag, backendOption, dataOption, flagOf, jsonOption, limitOption, overwriteOption, seedOption, snakeKeys } from './options.js';

type Raw = Record<string, unknown>;
type Grid = { [K in keyof SimulateSetting]: Array<SimulateSetting[K]> };

const QUANT_TYPES: readonly RangeGranularity[] = ['layer', 'group', 'channel'];
const CALIB_MODES = ['none', 'naive', 'kl'] as const;

/** A flag's values as a list: absent → undefined; commander gives a string, a list, or true (bare flag). */
function values(o: Raw, key: string): string[] | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (v === true) return ['on'];
  return (Array.isArray(v) ? v : [v]).map(String);
}

function choice<T extends string>(flag: string, allowed: readonly T[]) {
  return (v: string): T => {
    if (!(allowed as readonly string[]).includes(v)) throw new UserError(`${flag}: '${v}' is not one of ${allowed.join(', ')}`);
    return v as T;
  };
}

function onOff(flag: string) {
  return (v: string): boolean => {
    if (v === 'on' || v === 'true') return true;
    if (v === 'off' || v === 'false') return false;
    throw new UserError(`${flag}: '${v}' is not on or off`);
  };
}

/**
 * The settings to run. Without --grid every setting flag takes one value (defaults: layer, 8, 8,
 * unsigned, none, no merge, first conv quantized). With --grid each flag takes a list, and a flag
 * left out takes the seed table's values (SEED_GRID).
 */
export function settingsFromFlags(o: Raw): SimulateSetting[] {
  const grid = o.grid === true;
  const defaults: Grid = grid ? SEED_GRID : {
    quantType: ['layer'], weightBits: [8], inputBits: [8], inputSigned: [false], calib: ['none'], mergeBn: [false], excludeFirstConv: [false],
  };
  const axis = <K extends keyof SimulateSetting>(key: K, flag: string, parse: (v: string) => SimulateSetting[K], optionKey: string = key): Array<SimulateSetting[K]> => {
    const given = values(o, optionKey);
    if (given === undefined) return defaults[key];
    if (!grid && given.length > 1) throw new UserError(`${flag}: ${given.length} values need --grid`);
    const parsed = given.map(parse);
    const dup = parsed.find((x, i) => parsed.indexOf(x) !== i);
    if (dup !== undefined) throw new UserError(`${flag}: ${String(dup)} is given twice`);
    return parsed;
  };
  const settings = expandGrid({
    quantType: axis('quantType', '--quant-type', choice('--quant-type', QUANT_TYPES)),
    weightBits: axis('weightBits', '--weight-bits', parseInteger('--weight-bits')),
    inputBits: axis('inputBits', flagOf(o, 'actBits', '--act-bits'), parseInteger(flagOf(o, 'actBits', '--act-bits')), 'actBits'),
    inputSigned: axis('inputSigned', '--input-signed', onOff('--input-signed')),
    calib: axis('calib', '--calib', choice('--calib', CALIB_MODES)),
    mergeBn: axis('mergeBn', '--merge-bn', onOff('--merge-bn')),
    excludeFirstConv: axis('excludeFirstConv', '--exclude-first-conv', onOff('--exclude-first-conv')),
  });
  try {
    for (const s of settings) validateSetting(s);
  } catch (err) {
    throw inFlags(err, { inputBits: flagOf(o, 'actBits', '--act-bits') });
  }
  return settings;
}

function positive(flag: string, value: unknown): number {
  const n = value as number;
  if (!(n >= 1)) throw new UserError(`${flag}: must be a positive integer, got ${n}`);
  return n;
}

export function registerSimulate(program: Command): void {
  const cmd = addModelOptions(program.command('simulate')
    .description('post-training simulated quantization (min-max) of an FP checkpoint: top-1 per setting against FP'))
    .requiredOption('--from <dir>', 'full-precision checkpoint')
    .option('--quant-type <types...>', 'weight ranges: layer | group | channel (default: layer)');
  addBitsPairOptions(cmd, { weight: 'weight bit-width (default: 8)', act: 'input (activation) bit-width (default: 8)', value: '<bits...>', parse: false });
  addAlias(cmd, '--input-bits', '--act-bits', 'its old name');
  cmd
    .option('--input-signed [on|off...]', 'quantize every input as signed int (default: uint after ReLU, the image signed)')
    .option('--calib <modes...>', `input ranges: none (online, each batch) | naive (EMA of batch max) | kl (TensorRT entropy, clipping at most ${100 * CLIP_LIMIT}% of the values)`)
    .option('--merge-bn [on|off...]', 'fold batch norm into the convolutions before quantizing')
    .option('--exclude-first-conv [on|off...]', 'leave the first layer in full precision')
    .option('--grid', 'run every combination of the listed values; unlisted flags take the seed table\'s values')
    .option('--group-size <n>', 'output channels per weight range for --quant-type group', parseInteger('--group-size'), 8)
    .option('--num-sample <n>', 'calibration samples per class, from the training split', parseInteger('--num-sample'), 100)
    .option('--calib-epoch <n>', 'passes of naive calibration', parseInteger('--calib-epoch'), 3)
    .option('--batch-size <n>', 'batch size for calibration and evaluation (online ranges are per batch)', parseInteger('--batch-size'), 128)
    .addOption(seedOption('seed of the calibration sample draw', 7))
    .addOption(limitOption())
    .addOption(backendOption())
    .addOption(dataOption())
    .addOption(jsonOption('print one JSON object instead of the table'))
    .option('--csv <file>', 'also write the table as CSV')
    .option('--markdown <file>', 'also write the markdown table')
    .option('--pack <file>', 'write the quantized model (one setting) as a packed MPQP file')
    .addOption(overwriteOption('an existing --pack file'))
    .action(action(async (o: Raw) => {
      const settings = settingsFromFlags(o);
      const common = {
        ...(o.model !== undefined ? { model: String(o.model) } : {}), from: String(o.from), groupSize: positive('--group-size', o.groupSize),
        numSample: positive('--num-sample', o.numSample), calibEpoch: positive('--calib-epoch', o.calibEpoch),
        batchSize: positive('--batch-size', o.batchSize), seed: o.seed as number,
        limit: o.limit === undefined ? undefined : positive('--limit', o.limit),
        backend: backendFlag(o.backend), dataDir: o.data as string | undefined,
        log: (line: string) => process.stderr.write(`${line}\n`),
      };
      for (const key of ['csv', 'markdown']) if (o[key] !== undefined) checkOutputPath(String(o[key]));
      if (o.pack !== undefined) {
        if (settings.length !== 1) throw new UserError(`--pack: packs one setting, the flags give ${settings.length}`);
        const { out, size, clipping } = await packSimulation({
          ...common, setting: settings[0]!, out: String(o.pack), overwrite: o.overwrite === true, command: ['mpq', ...process.argv.slice(2)].join(' '),
        });
        process.stdout.write(o.json ? `${JSON.stringify({ out, ...snakeKeys(size), ...clipping })}\n` : `${formatPackedSize(out, size)}\n`);
        return;
      }
      const result = await runSimulation({
        ...common, settings,
        onRow: (r) => {
          common.log(`${settingLabel(r)}: top1 ${(100 * r.top1).toFixed(2)}% (${r.seconds.toFixed(1)} s)`);
          if (r.warning) common.log(`mpq: warning: ${settingLabel(r)}: ${r.warning}`);
        },
      });
      const markdown = simulateMarkdown(result, common.groupSize);
      const files: OutputFile[] = [];
      if (o.csv !== undefined) files.push({ path: String(o.csv), data: simulateCsv(result, common.groupSize) });
      if (o.markdown !== undefined) files.push({ path: String(o.markdown), data: markdown });
      writeOutputs(files);
      process.stdout.write(o.json ? `${JSON.stringify(summary(result, common))}\n` : markdown);
    }, { out: '--pack' }));
}

function summary(result: SimulateResult, o: { model?: string; from: string; groupSize: number; numSample: number; calibEpoch: number; batchSize: number; seed: number }) {
  return {
    model: result.model, from: o.from, backend: result.backend, dataset: result.dataset, test_count: result.testCount,
    calibration_count: result.calibrationCount, group_size: o.groupSize, num_sample: o.numSample, calib_epoch: o.calibEpoch,
    batch_size: o.batchSize, seed: o.seed, fp_top1: result.fp.top1,
    // a row's own fields in snake_case, as every --json; its thresholds and clipping stay keyed by layer name
    rows: result.rows.map(({ seconds: _s, ...r }) => snakeKeys(r)),
  };
}
