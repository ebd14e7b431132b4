#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { registerExport } from './export.js';
import { registerSearch } from './search.js';
import { registerSweep } from './sweep.js';
import { registerTrain } from './train.js';
import { registerPretrain } from './pretrain.js';
import { registerFinetune } from './finetune.js';
import { registerEvaluate } from './evaluate.js';

const program = new Command();
program
  .name('mpq')
  .description('Mixed-precision quantization: learned importance indicators, exact bit-width search, LSQ training')
  .version('0.1.0')
  .showHelpAfterError(false)
  .exitOverride();

// One file per command; each registers itself here.
registerSearch(program);
registerSweep(program);
registerExport(program);
registerTrain(program);
registerPretrain(program);
registerFinetune(program);
registerEvaluate(program);

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
