import type { Command } from 'commander';
import { join } from 'node:path';
import type { LayerTable } from '../model/layer.js';
import { formulate, type Problem } from '../search/problem.js';
import { runSearch, type SearchResult } from '../search/search.js';
import { solverByName } from '../search/solvers/index.js';
import { formatGap, formatSearchReport } from '../report/search-report.js';
import { policyFromSearch } from '../export/from-search.js';
import { EXPORT_FORMATS, type ExportFormat } from '../export/format-names.js';
import { checkOutputDirectory, checkOutputPath, isExistingFile, isStdout, writeOutputs, type OutputFile } from '../util/fs.js';
import { defaultOutputPath } from '../util/paths.js';
import { EXIT_INFEASIBLE, EXIT_LIMIT, UserError } from '../util/errors.js';
import { action } from './run.js';
import { SmoothedEta } from '../util/eta.js';
import { EXACT_GAP_TIME_LIMIT_MS, gapToExact, type ExactGap } from '../search/rl/exact-gap.js';
import { isObjectiveTable } from '../search/objective-table.js';
import { bitopsTargetBits, budgetLabel, loadSearchInputs, searchOptions, type InputSpec } from '../search/spec.js';
import { addProblemOptions, addSearcherOptions, budgetGrid, inputSpec, parseCommon, parseSearcher, parseSolveLimits, SEARCH_FLAGS, solverProgress, type SearcherChoice } from './search-options.js';

/** Plain progress lines of the RL searcher where stderr is not a terminal: one per this many ms. */
const PLAIN_PROGRESS_MS = 2000;
const EXACT_GAP_SECONDS = EXACT_GAP_TIME_LIMIT_MS / 1000;

const EXPORT_EXT: Record<ExportFormat, string> = { 'limpq-yaml': '.yaml', nni: '.nni.json', hawq: '.hawq.json' };

export function registerSearch(program: Command): void {
  addSearcherOptions(addProblemOptions(program.command('search').description('search per-layer weight/activation bits (exact ILP, or a DDPG agent with --searcher rl)'), false))
    .option('--json', 'print one JSON object instead of the table')
    .option('--out [file]', 'write the policy (default: policies/<model>-<budgets>.json)')
    .option('--export <format>', `also write a fine-tune config: ${EXPORT_FORMATS.join(' | ')}`)
    .option('--export-out <file>', 'where --export writes (default: beside the policy, or policies/)')
    .action(action(async (o: Record<string, unknown>, cmd: Command) => {
      const common = await parseCommon(o);
      const [point] = budgetGrid(o);
      const searcher = parseSearcher(o, cmd.getOptionValueSource('solver') === 'cli');
      const ilpSolver = searcher.kind === 'ilp' ? solverByName(String(o.solver)) : null;
      ilpSolver?.prepare?.(); // while the inputs load
      const limits = parseSolveLimits(o);
      const exportFormat = o.export === undefined ? undefined : checkFormat(String(o.export));
      if (o.exportOut !== undefined && !exportFormat) throw new UserError('--export-out needs --export FORMAT');
      const spec = inputSpec(o);
      for (const [key, flag] of [['out', '--out'], ['exportOut', '--export-out']]) {
        if (o.json && typeof o[key] === 'string' && isStdout(o[key])) throw new UserError(`${flag} ${o[key]}: stdout carries the --json object; give a file`);
      }
      const { table, indicators } = await loadSearchInputs(spec);
      const byTable = isObjectiveTable(indicators);
      const rlOut = searcher.kind === 'rl' ? searcher.outDir : undefined;
      // every output is checked before the search runs, and written all or none after it
      const label = `${table.model}-${budgetLabel(common, point)}`;
      const outputs = outputPaths(o, label, exportFormat);
      for (const path of [outputs.policy, outputs.export].filter((p) => p !== undefined)) checkOutputPath(path);
      if (rlOut !== undefined) checkOutputDirectory(rlOut, '--rl-out');
      const formulated = formulate(table, indicators, searchOptions(common, point));
      const rl = searcher.kind === 'rl' ? await startRl(searcher, table, formulated.problem, common.bits, spec) : null;
      let result: SearchResult;
      const progress = rl ? null : solverProgress();
      try {
        result = await runSearch(table, formulated, rl ? rl.solver : ilpSolver!, bitopsTargetBits(common, point), { ...limits, ...(progress ? { onProgress: progress.report } : {}) });
      } finally {
        progress?.done();
        rl?.stop();
      }
      // the agent's answer against the exact optimum of the same problem
      const exactGap = rl && result.objective !== null ? await gapToExact(formulated.problem, result.objective) : null;
      const command = ['mpq', ...process.argv.slice(2)].join(' ');

      const files: OutputFile[] = [];
      if (rl && rlOut !== undefined) {
        files.push({ path: join(rlOut, 'reward-curve.csv'), data: rl.curveCsv() });
        files.push({ path: join(rlOut, 'rl-run.json'), data: `${JSON.stringify(rl.record(result, command), null, 2)}\n` });
      }
      if (result.objective !== null && (outputs.policy !== undefined || outputs.export !== undefined || rlOut !== undefined)) {
        const policy = policyFromSearch(table, indicators, common, point, result, command);
        const { policyText } = await import('../export/policy-file.js'); // policy schema: only when writing
        if (outputs.policy !== undefined) files.push({ path: outputs.policy, data: policyText(policy, outputs.policy) });
        if (rlOut !== undefined) files.push({ path: join(rlOut, 'best-policy.json'), data: policyText(policy, join(rlOut, 'best-policy.json')) });
        if (exportFormat && outputs.export !== undefined) {
          const { exportPolicy } = await import('../export/formats.js'); // yaml: only when exporting
          files.push({ path: outputs.export, data: exportPolicy(policy, exportFormat, { name: label }) });
        }
      }
      // replacing an earlier file (the shipped policy, say) is said, not done silently
      const replaced = new Set(files.map((f) => f.path).filter(isExistingFile));
      writeOutputs(files);
      const written = files.map((f) => f.path);
      // with a file on stdout, the report goes to stderr
      const report = written.some(isStdout) ? process.stderr : process.stdout;
      if (o.json) {
        const json = { ...searchJson(result, table.model, common.bits, byTable ? null : common.alpha, indicators.path, written), replaced: [...replaced] };
        const exact = exactGap && { exact_objective: exactGap.exactObjective, gap_to_exact: exactGap.gap, exact_status: exactGap.status };
        process.stdout.write(JSON.stringify(rl ? { ...json, rl: { ...rl.summary(), ...exact } } : json) + '\n');
      } else {
        const objective = byTable ? `objective table ${indicators.path}` : `indicators ${indicators.path}, alpha ${common.alpha}`;
        const header = `mpq search: model ${table.model} (${table.layers.length} searchable, ${table.fixed.length} fixed), ${objective}, bits ${common.bits.join(' ')}`;
        report.write(formatSearchReport(result, header) + '\n');
        if (rl) report.write(rl.summaryLine() + '\n');
        if (exactGap) report.write(`${exactGapLine(exactGap)}\n`);
        for (const w of written) if (!isStdout(w)) report.write(`${replaced.has(w) ? 'replaced' : 'wrote'} ${w}\n`);
      }
      if (result.status === 'infeasible') {
        if (o.json) process.stderr.write(`mpq: infeasible: ${result.reason}\n`);
        return EXIT_INFEASIBLE;
      }
      return result.status === 'time_limit' ? EXIT_LIMIT : 0;
    }, SEARCH_FLAGS));
}

/**
 * The DDPG searcher (search/rl/run.ts) with its progress bar on stderr (tfjs loads only on this
 * path; the training engine only for the accuracy reward).
 */
async function startRl(c: Extract<SearcherChoice, { kind: 'rl' }>, table: LayerTable, problem: Problem, bits: number[], spec: InputSpec) {
  const { startRlRun } = await import('../search/rl/run.js');
  // loaded here: cli-progress costs start-up time every `mpq search` would pay
  const { Presets, SingleBar } = await import('cli-progress');
  const { reward } = c;
  const accuracy = reward.kind === 'accuracy';
  const bestLabel = accuracy ? 'best held-out top-1' : 'best reward';
  const formatBest = (r: number) => (!Number.isFinite(r) ? '-' : accuracy ? `${(100 * r).toFixed(2)}%` : r.toFixed(4));
  let bar: InstanceType<typeof SingleBar> | undefined;
  // the bar draws on a terminal only: elsewhere (a log, CI) a plain line every few seconds and at the end
  const plain = process.stderr.isTTY ? null : { last: -Infinity, eta: new SmoothedEta(c.rollouts) };
  const run = await startRlRun({
    table, problem, bits, rollouts: c.rollouts, warmup: c.warmup, seed: c.seed,
    // the model as named (a file path for an imported model), and the search's fixed layers
    model: spec.model ?? table.model, layers: spec.layers,
    reward: reward.kind === 'accuracy' ? { ...reward, backend: (await import('./train.js')).backendFlag(reward.backend) } : reward,
    log: (line) => process.stderr.write(`${line}\n`),
    onRollout: (r) => {
      bar?.update(r.rollout, { best: formatBest(r.bestReward) });
      if (!plain) return;
      plain.eta.update(r.rollout);
      const now = performance.now();
      if (now - plain.last < PLAIN_PROGRESS_MS && r.rollout < c.rollouts) return;
      plain.last = now;
      process.stderr.write(`mpq: rl ${r.rollout}/${c.rollouts} rollouts, ${bestLabel} ${formatBest(r.bestReward)}, ETA ${plain.eta.format()}\n`);
    },
  });
  bar = new SingleBar({ format: `rl |{bar}| {value}/{total} rollouts | ${bestLabel} {best} | ETA {eta_formatted}`, hideCursor: true }, Presets.shades_classic);
  bar.start(c.rollouts, 0, { best: '-' });
  return {
    ...run,
    stop: () => {
      bar.stop();
      run.dispose();
    },
  };
}

/** The agent's gap to the exact optimum, one line under its summary. */
function exactGapLine(g: ExactGap): string {
  if (g.gap === null) return `rl: the exact solver proved no optimum within ${EXACT_GAP_SECONDS} s to compare with (${g.status})`;
  if (g.gap === 0) return `rl: the policy is an exact optimum (objective ${g.exactObjective})`;
  return `rl: ${formatGap(g.gap)} worse than the exact optimum (objective ${g.exactObjective}; \`mpq search\` without --searcher rl finds it)`;
}

/**
 * Where `--out` and `--export` write: as given, or by default under policies/ with a name built from
 * the model's (made safe: a name read from an input never chooses a folder).
 */
function outputPaths(o: Record<string, unknown>, label: string, format: ExportFormat | undefined): { policy?: string; export?: string } {
  const policy = o.out === undefined ? undefined : typeof o.out === 'string' ? o.out : defaultOutputPath('policies', `${label}.json`);
  const paths = policy !== undefined ? { policy } : {};
  if (!format) return paths;
  if (o.exportOut !== undefined) return { ...paths, export: String(o.exportOut) };
  // beside the policy file, or in policies/ when the policy goes to stdout or nowhere
  const beside = policy !== undefined && !isStdout(policy);
  return { ...paths, export: beside ? policy.replace(/\.json$/, '') + EXPORT_EXT[format] : defaultOutputPath('policies', `${label}${EXPORT_EXT[format]}`) };
}

function checkFormat(f: string): ExportFormat {
  if (!(EXPORT_FORMATS as readonly string[]).includes(f)) throw new UserError(`--export: unknown format '${f}' (choose from ${EXPORT_FORMATS.join(', ')})`);
  return f as ExportFormat;
}

/** The `--json` object: snake_case, one policy, everything needed to script against it. */
export function searchJson(r: SearchResult, model: string, bits: number[], alpha: number | null, indicators: string, written: string[]) {
  const layer = (l: SearchResult['layers'][number]) => ({ name: l.name, weight_bits: l.weightBits, act_bits: l.actBits, macs: l.macs, params: l.params });
  return {
    status: r.status,
    objective: r.objective,
    model,
    indicators,
    bits,
    scored_by: alpha === null ? 'objective-table' : 'indicators',
    alpha,
    weight_bits: r.layers.map((l) => l.weightBits),
    act_bits: r.layers.map((l) => l.actBits),
    layers: r.layers.map(layer),
    fixed: r.fixed.map(layer),
    bitops: r.bitops,
    bitops_target: r.bitopsTarget,
    bitops_fp32: r.bitopsFp32,
    bitops_unit: 'G',
    compression_ratio: r.compressionRatio,
    size_mb: r.sizeMb,
    fp32_size_mb: r.fp32SizeMb,
    avg_weight_bits: r.avgWeightBits,
    avg_act_bits: r.avgActBits,
    budgets: r.rows.map((b) => ({ name: b.name, sources: b.sources, scope: b.scope, used: b.used, limit: b.limit, smallest_reachable: b.smallestReachable, unit: b.unit })),
    removed: r.removed.map((w) => ({ layer: w.layer, kind: w.kind, bits: w.bits, value: w.value, higher_bits: w.higherBits, higher_value: w.higherValue, ...(w.at !== undefined ? { at_bits: w.at } : {}) })),
    solver: r.solver,
    solve_ms: r.solveMs,
    ...(r.limit ? { limit: r.limit } : {}),
    ...(r.bound !== undefined ? { bound: r.bound, gap: r.gap ?? null } : {}),
    ...(r.reason ? { reason: r.reason } : {}),
    written,
  };
}
