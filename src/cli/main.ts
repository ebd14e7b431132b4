#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { finishWritesOnInterrupt } from '../util/fs.js';
import { showDefaultsPlainly } from './options.js';

type Register = (program: Command) => void;

/**
 * One file per command. Only the command being run is loaded: the training commands pull in
 * tfjs, which would cost `mpq search` a second of start-up. Help loads them all.
 */
const COMMANDS: Record<string, () => Promise<Register>> = {
  search: async () => (await import('./search.js')).registerSearch,
  sweep: async () => (await import('./sweep.js')).registerSweep,
  export: async () => (await import('./export.js')).registerExport,
  train: async () => (await import('./train.js')).registerTrain,
  pretrain: async () => (await import('./pretrain.js')).registerPretrain,
  finetune: async () => (await import('./finetune.js')).registerFinetune,
  eval: async () => (await import('./evaluate.js')).registerEvaluate,
  quantize: async () => (await import('./quantize.js')).registerQuantize,
  simulate: async () => (await import('./simulate.js')).registerSimulate,
  pack: async () => (await import('./pack.js')).registerPack,
  'export-model': async () => (await import('./export-model.js')).registerExportModel,
};

// an interrupt after the first write waits for the write in progress: no torn or temp files
finishWritesOnInterrupt();

const program = new Command();
program
  .name('mpq')
  .description('Mixed-precision quantization: learned importance indicators, exact bit-width search, LSQ training')
  .version('0.1.0')
  .showHelpAfterError(false)
  .exitOverride();

const asked = process.argv[2];
// A search on the default solver: its WebAssembly compiles while the command's modules and the
// inputs load (the action asks again once the flags are parsed, for any solver).
if ((asked === 'search' || asked === 'sweep') && !process.argv.some((a) => a.startsWith('--solver') || a.startsWith('--searcher'))) {
  (await import('../search/solvers/exact.js')).exactSolver.prepare?.();
}
const needed = asked !== undefined && asked in COMMANDS ? [asked] : Object.keys(COMMANDS);
for (const name of needed) (await COMMANDS[name]())(program);
showDefaultsPlainly(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // commander already printed its one-line message; usage errors exit 2, help/version 0
    process.exitCode = err.exitCode === 0 ? 0 : 2;
  } else if (err instanceof Error && err.name === 'UserError') {
    process.stderr.write(`mpq: ${err.message}\n`);
    process.exitCode = (err as { exitCode?: number }).exitCode ?? 2;
  } else {
    throw err;
  }
}
