import { basename, extname } from 'node:path';
import { Option, type Command } from 'commander';
import { EXPORT_FORMATS, exportPolicy, type ExportFormat } from '../export/formats.js';
import { readPolicy } from '../export/policy-file.js';
import { checkOutputPath, isExistingFile, isStdout, writeOutput } from '../util/fs.js';
import { action } from './run.js';
import { jsonOption } from './options.js';
import { UserError } from '../util/errors.js';

interface ExportFlags {
  format: ExportFormat;
  out?: string;
  json?: boolean;
}

/** `mpq export POLICY --format F [--out FILE]`: a policy as a LIMPQ / NNI / HAWQ-V3 config. */
export function registerExport(program: Command): void {
  program
    .command('export')
    .description('write a searched policy as another tool\'s config: LIMPQ fine-tune YAML, NNI config_list, HAWQ-V3 bit_config')
    .argument('<policy>', 'policy JSON written by mpq search')
    // commander rejects other values at parse time with one line listing the choices (exit 2)
    .addOption(new Option('--format <format>', 'output format').choices(EXPORT_FORMATS).makeOptionMandatory())
    .option('--out <file>', 'output: the config file (written atomically; - for stdout; default: stdout)')
    .addOption(jsonOption('print one JSON object saying what was written; needs --out FILE'))
    .action(
      action((policyPath: string, flags: ExportFlags) => {
        if (flags.json && (flags.out === undefined || isStdout(flags.out))) throw new UserError('--json: give --out FILE (stdout carries the JSON object)');
        if (flags.out !== undefined) checkOutputPath(flags.out);
        const policy = readPolicy(policyPath);
        // the run is named after the policy file: LIMPQ's experiment name, HAWQ's quant scheme
        const text = exportPolicy(policy, flags.format, { name: basename(policyPath, extname(policyPath)) });
        const replacing = flags.out !== undefined && isExistingFile(flags.out);
        writeOutput(flags.out ?? '-', text);
        if (flags.json) process.stdout.write(`${JSON.stringify({ policy: policyPath, format: flags.format, out: flags.out, replaced: replacing, bytes: Buffer.byteLength(text) })}\n`);
        else if (flags.out !== undefined && !isStdout(flags.out)) process.stderr.write(`${replacing ? 'replaced' : 'wrote'} ${flags.out}\n`);
      }),
    );
}
