import type { Command } from 'commander';
import { bitsProblem, SUPPORTED_BITS } from '../quant/bits.js';
import { UserError } from '../util/errors.js';
import type { BudgetPoint, CommonFlags, InputSpec } from '../search/spec.js';
import type { LayerSelection } from '../model/graph-table.js';
import { DEFAULT_MEMORY_MB, MAX_MEMORY_MB } from '../search/solvers/exact.js';
import type { SolveOptions, SolveProgress } from '../search/solvers/solver.js';
import { formatGap } from '../report/search-report.js';
import { addAlias, addBitsPairOptions, backendOption, dataOption, flagOf, modelOption, seedOption } from './options.js';

/**
 * The search's option fields whose flag is not their kebab-case name (for `action` in search and
 * sweep): the budgets of SearchOptions, the layer table's MAC count, the solver's limits, the RL
 * reward's settings.
 */
export const SEARCH_FLAGS: Readonly<Record<string, string>> = {
  maxBitopsG: '--max-bitops', 'latency.max': '--max-latency', 'cost.max': '--max-cost',
  macs: '--limpq-macs', memoryLimitMb: '--memory-limit', timeLimitMs: '--time-limit',
  'reward.steps': '--reward-steps', 'reward.holdout': '--reward-holdout',
};

/** Flags shared by `search` and `sweep`. In a sweep the budget flags take lists. */
export function addProblemOptions(cmd: Command, lists: boolean): Command {
  const v = lists ? '<values...>' : '<value>';
  cmd.addOption(modelOption('search', 'the one the indicators record'))
    .option('--indicators <file>', 'indicators JSON or LIMPQ .pkl (default: cached in indicators/)')
    .option('--objective-table <file>', 'any per-layer sensitivity as the objective, in place of indicators: {"layers":{"conv1":{"w4a4":0.1}}} or weight-only {"act_bits":8,"layers":{"conv1":{"w4":0.1}}}')
    .option('--keep-wired', 'keep wired points (a candidate scored below the next higher bits), which are left out by default')
    .option('--bits <bits...>', 'candidate bit-widths', ['6', '5', '4', '3', '2'])
    .option('--alpha <a>', 'weight of the weight indicators in the objective', '2');
  // the BitOps target in the words every command uses for bits; LIMPQ's --wb / --ab stay as aliases
  addBitsPairOptions(cmd, {
    weight: 'BitOps target: the searchable layers\' BitOps at these average weight bits', act: 'BitOps target: the same at these average activation bits',
    value: v, defaults: lists ? [['3'], ['4']] : ['3', '4'], parse: false,
  });
  addAlias(cmd, '--wb', '--weight-bits', 'LIMPQ\'s name');
  addAlias(cmd, '--ab', '--act-bits', 'LIMPQ\'s name');
  return cmd
    .option('--no-bops', 'drop the BitOps constraint')
    .option(`--cr ${v}`, 'compression-ratio constraint (0 disables)', lists ? ['12.2'] : '12.2')
    .option(`--max-bitops ${v}`, 'absolute BitOps budget for the whole model, in G')
    .option(`--max-size-mb ${v}`, 'absolute model-size budget, in MB (2^20 bytes)')
    .option('--latency-table <file>', 'per-layer cost of each (w, a) pair: {"unit":"ms","layers":{"conv1":{"w4a4":0.1}}}')
    .option(`--max-latency ${v}`, 'budget on the latency table\'s total')
    .option('--cost-table <file>', 'per-layer cost of each (w, a) pair for one more budget (energy, …), in the latency table\'s shape')
    .option(`--max-cost ${v}`, 'budget on the cost table\'s total')
    .option('--w-bit-min <bits>', 'smallest weight bit-width a layer may take (PocketFlow w_bit_min; within --bits)')
    .option('--w-bit-max <bits>', 'largest weight bit-width a layer may take (PocketFlow w_bit_max; within --bits)')
    .option('--equivalent-bits <bits>', 'size budget of B bits per searchable weight on average (PocketFlow equivalent_bits)')
    .option('--no-fix-first-last', 'search the first and last layer too (LIMPQ keeps them at 8 bits)')
    .option('--fixed <names...>', 'layers kept at 8 bits (default: the first and last conv / dense)')
    .option('--searchable <names...>', 'layers to search; every other conv / dense is kept at 8 bits')
    .option('--limpq-macs', 'count MACs as LIMPQ\'s search script (stride-2 output sizes not floored), to reproduce its published policies')
    .option('--solver <name>', 'exact | glpk | highs', 'exact')
    .option('--time-limit <seconds>', 'stop the solver after this long and report the best policy found, with its gap to the proven bound (exit 4)')
    .option('--memory-limit <MB>', `exact solver: the memory it may take (default ${DEFAULT_MEMORY_MB}); past it, as the time limit`);
}

export function parseNum(flag: string, value: string, check: 'positive' | 'nonnegative'): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new UserError(`${flag}: '${value}' is not a number`);
  if (check === 'positive' && n <= 0) throw new UserError(`${flag}: must be > 0, got ${value}`);
  if (check === 'nonnegative' && n < 0) throw new UserError(`${flag}: must be ≥ 0, got ${value}`);
  return n;
}

/** A bit-width flag's value, one mpq runs (SUPPORTED_BITS). */
export function parseBitWidth(flag: string, value: string): number {
  const problem = bitsProblem(value.trim() === '' ? NaN : Number(value), SUPPORTED_BITS, { shown: `'${value}'` });
  if (problem) throw new UserError(`${flag}: ${problem}`);
  return Number(value);
}

/** Candidate bit-widths (`--bits`), in the order given; none twice. */
export function parseBits(values: string[]): number[] {
  if (!values.length) throw new UserError('--bits: give at least one bit-width');
  const bits = values.map((v) => parseBitWidth('--bits', v));
  const dup = bits.find((b, i) => bits.indexOf(b) !== i);
  if (dup !== undefined) throw new UserError(`--bits: ${dup} is given twice`);
  return bits;
}

type Raw = Record<string, unknown>;

export async function parseCommon(o: Raw): Promise<CommonFlags> {
  const alpha = parseNum('--alpha', String(o.alpha), 'nonnegative');
  // a cost table's reader is loaded only when a table is given
  const tables: Partial<CommonFlags> = {};
  for (const [what, file, max] of [['latency', 'latencyTable', 'maxLatency'], ['cost', 'costTable', 'maxCost']] as const) {
    if (o[file] !== undefined && o[max] === undefined) throw new UserError(`--${what}-table needs --max-${what}`);
    if (o[file] === undefined && o[max] !== undefined) throw new UserError(`--max-${what} needs --${what}-table`);
    if (o[file] === undefined) continue;
    tables[file] = (await import('../search/cost-table.js')).readCostTable(String(o[file]), `${what} table`);
    tables[`${file}Path`] = String(o[file]);
  }
  const bits = parseBits(o.bits as string[]).sort((a, b) => b - a);
  const bitFlag = (key: string, flag: string): number | undefined => (o[key] === undefined ? undefined : parseBitWidth(flag, String(o[key])));
  const wMin = bitFlag('wBitMin', '--w-bit-min');
  const wMax = bitFlag('wBitMax', '--w-bit-max');
  let weightBitsRange: { min: number; max: number } | undefined;
  if (wMin !== undefined || wMax !== undefined) {
    weightBitsRange = { min: wMin ?? SUPPORTED_BITS.min, max: wMax ?? SUPPORTED_BITS.max };
    if (weightBitsRange.min > weightBitsRange.max) throw new UserError(`--w-bit-min ${weightBitsRange.min} is above --w-bit-max ${weightBitsRange.max}`);
    if (!bits.some((b) => b >= weightBitsRange!.min && b <= weightBitsRange!.max)) {
      throw new UserError(`--w-bit-min/--w-bit-max: no candidate of --bits ${bits.join(' ')} lies in [${weightBitsRange.min}, ${weightBitsRange.max}]`);
    }
  }
  return {
    bits,
    alpha,
    bops: o.bops !== false,
    ...tables,
    ...(o.keepWired === true ? { keepWired: true } : {}),
    ...(weightBitsRange ? { weightBitsRange } : {}),
    ...(o.equivalentBits !== undefined ? { equivalentBits: parseNum('--equivalent-bits', String(o.equivalentBits), 'positive') } : {}),
  };
}

/** Every combination of the budget lists (a single search is a grid of one point). */
export function budgetGrid(o: Raw): BudgetPoint[] {
  const list = (key: string, flag: string, check: 'positive' | 'nonnegative'): number[] | undefined => {
    const v = o[key];
    if (v === undefined) return undefined;
    const values = (Array.isArray(v) ? v : [v]).map((x) => parseNum(flag, String(x), check));
    const dup = values.find((x, i) => values.indexOf(x) !== i);
    if (dup !== undefined) throw new UserError(`${flag}: ${dup} is given twice`);
    return values;
  };
  const axes: [keyof BudgetPoint, number[] | undefined][] = [
    ['weightBits', list('weightBits', flagOf(o, 'weightBits', '--weight-bits'), 'positive')],
    ['actBits', list('actBits', flagOf(o, 'actBits', '--act-bits'), 'positive')],
    ['cr', list('cr', '--cr', 'nonnegative')],
    ['maxBitopsG', list('maxBitops', '--max-bitops', 'positive')],
    ['maxSizeMb', list('maxSizeMb', '--max-size-mb', 'positive')],
    ['maxLatency', list('maxLatency', '--max-latency', 'positive')],
    ['maxCost', list('maxCost', '--max-cost', 'positive')],
  ];
  let grid: Partial<BudgetPoint>[] = [{}];
  for (const [key, values] of axes) {
    if (!values) continue;
    grid = grid.flatMap((p) => values.map((x) => ({ ...p, [key]: x })));
  }
  return grid as BudgetPoint[];
}

/** --time-limit and --memory-limit, as the solvers take them. */
export function parseSolveLimits(o: Raw): Pick<SolveOptions, 'timeLimitMs' | 'memoryLimitMb'> {
  const out: Pick<SolveOptions, 'timeLimitMs' | 'memoryLimitMb'> = {};
  if (o.timeLimit !== undefined) out.timeLimitMs = parseNum('--time-limit', String(o.timeLimit), 'positive') * 1000;
  if (o.memoryLimit !== undefined) {
    const mb = parseNum('--memory-limit', String(o.memoryLimit), 'positive');
    if (mb > MAX_MEMORY_MB) throw new UserError(`--memory-limit: at most ${MAX_MEMORY_MB} MB (WebAssembly's 4 GiB less what the solver's code needs), got ${String(o.memoryLimit)}`);
    out.memoryLimitMb = mb;
  }
  return out;
}


export function inputSpec(o: Raw): InputSpec {
  if (o.indicators !== undefined && o.objectiveTable !== undefined) throw new UserError('--objective-table scores the choices in place of --indicators: give one of them');
  return {
    ...(o.model !== undefined ? { model: String(o.model) } : {}),
    ...(o.indicators !== undefined ? { indicators: String(o.indicators) } : {}),
    ...(o.objectiveTable !== undefined ? { objectiveTable: String(o.objectiveTable) } : {}),
    layers: layerSelection(o),
    ...(o.limpqMacs === true ? { limpqMacs: true } : {}),
  };
}

/** `--fixed`, `--searchable`, `--no-fix-first-last`: which layers keep fixed bits (every command takes them). */
export function layerSelection(o: Raw): LayerSelection {
  const list = (key: string) => (o[key] === undefined ? undefined : (o[key] as string[]).map(String));
  return {
    ...(list('fixed') ? { fixed: list('fixed') } : {}),
    ...(list('searchable') ? { searchable: list('searchable') } : {}),
    ...(o.fixFirstLast === false ? { fixFirstLast: false } : {}),
  };
}

/** Which searcher `mpq search` runs: the exact ILP (default) or the DDPG agent. */
export type SearcherChoice =
  | { kind: 'ilp' }
  | { kind: 'rl'; rollouts: number; warmup: number; seed: number; reward: RewardChoice; outDir?: string };

/** How the agent's rollouts are scored. `backend` is the raw flag value (checked where tfjs loads). */
export type RewardChoice =
  | { kind: 'indicators' }
  | { kind: 'accuracy'; from?: string; steps: number; holdout: number; backend: string; dataDir?: string };

export const REWARD_KINDS = ['indicators', 'accuracy'] as const;

/** Flags of the accuracy reward only. */
const ACCURACY_FLAGS: [key: string, flag: string][] = [['from', '--from'], ['rewardSteps', '--reward-steps'], ['rewardHoldout', '--reward-holdout'], ['backend', '--backend'], ['data', '--data']];
const RL_FLAGS: [key: string, flag: string][] = [['rollouts', '--rollouts'], ['warmup', '--warmup'], ['seed', '--seed'], ['reward', '--reward'], ['rlOut', '--rl-out'], ...ACCURACY_FLAGS];

export function addSearcherOptions(cmd: Command): Command {
  return cmd
    .option('--searcher <name>', 'ilp (exact, via --solver) | rl (DDPG agent, HAQ style)', 'ilp')
    .option('--rollouts <n>', 'rl: episodes of the agent (default 200)')
    .option('--warmup <n>', 'rl: first episodes with random actions, before learning (default: 10% of --rollouts, rounded up; 20 of 200)')
    .addOption(seedOption('rl: seed of the networks, the exploration and the reward\'s fine-tune', 0, false))
    .option('--reward <kind>', 'rl: indicators (−LIMPQ objective, instant; default) | accuracy (held-out top-1 after a short LSQ fine-tune)')
    .option('--from <dir>', 'rl accuracy: full-precision checkpoint of the model (mpq train) every fine-tune starts from (default: an imported model\'s own weights)')
    .option('--reward-steps <n>', 'rl accuracy: fine-tune batches (of 64) per scored policy (default 20)')
    .option('--reward-holdout <n>', 'rl accuracy: training images held out to score on (default 1000)')
    .addOption(backendOption('rl accuracy: tfjs backend', false))
    .addOption(dataOption('rl accuracy: dataset directory'))
    .option('--rl-out <dir>', 'rl: write reward-curve.csv, best-policy.json and rl-run.json (seed, reward settings) there');
}

/** HAQ's warm-up share: random episodes before the agent learns, 10% of the rollouts rounded up. */
export function defaultWarmup(rollouts: number): number {
  return Math.ceil(rollouts / 10);
}

/** `solverGiven`: --solver was on the command line (it picks the ILP's backend, so not with rl). */
export function parseSearcher(o: Raw, solverGiven: boolean): SearcherChoice {
  const name = String(o.searcher);
  if (name !== 'ilp' && name !== 'rl') throw new UserError(`--searcher: unknown searcher '${name}' (choose from ilp, rl)`);
  if (name === 'rl' && solverGiven) throw new UserError('--solver picks the ILP backend: it does not go with --searcher rl');
  if (name === 'ilp') {
    const stray = RL_FLAGS.find(([key]) => o[key] !== undefined);
    if (stray) throw new UserError(`${stray[1]} needs --searcher rl`);
    return { kind: 'ilp' };
  }
  const integer = (key: string, flag: string, fallback: number, min: number): number => {
    if (o[key] === undefined) return fallback;
    const n = parseNum(flag, String(o[key]), 'nonnegative');
    if (!Number.isInteger(n) || n < min || n > 0xffffffff) throw new UserError(`${flag}: must be an integer ≥ ${min}, got ${String(o[key])}`);
    return n;
  };
  const rollouts = integer('rollouts', '--rollouts', 200, 1);
  const warmup = integer('warmup', '--warmup', defaultWarmup(rollouts), 0);
  if (warmup > rollouts) throw new UserError(`--warmup: ${warmup} is more than --rollouts ${rollouts}`);
  const kind = o.reward === undefined ? 'indicators' : String(o.reward);
  if (!(REWARD_KINDS as readonly string[]).includes(kind)) throw new UserError(`--reward: unknown reward '${kind}' (choose from ${REWARD_KINDS.join(', ')})`);
  let reward: RewardChoice = { kind: 'indicators' };
  if (kind === 'accuracy') {
    reward = {
      kind: 'accuracy', ...(o.from !== undefined ? { from: String(o.from) } : {}),
      steps: integer('rewardSteps', '--reward-steps', 20, 1),
      holdout: integer('rewardHoldout', '--reward-holdout', 1000, 1),
      backend: o.backend === undefined ? 'auto' : String(o.backend),
      ...(o.data !== undefined ? { dataDir: String(o.data) } : {}),
    };
  } else {
    const stray = ACCURACY_FLAGS.find(([key]) => o[key] !== undefined);
    if (stray) throw new UserError(`${stray[1]} needs --reward accuracy`);
  }
  return {
    kind: 'rl', rollouts, warmup, seed: integer('seed', '--seed', 0, 0), reward,
    ...(o.rlOut !== undefined ? { outDir: String(o.rlOut) } : {}),
  };
}

/**
 * The `mpq search` flags that pose the same problem as these inputs and flags, less the budgets
 * (`budgetArgs`): the inverse of parsing them, so a sweep can say how to reproduce each point.
 */
export function searchArgs(spec: InputSpec, c: CommonFlags, solver: string): string[] {
  return [
    ...(spec.model !== undefined ? ['--model', spec.model] : []),
    ...(spec.indicators !== undefined ? ['--indicators', spec.indicators] : []),
    '--bits', ...c.bits.map(String),
    '--alpha', String(c.alpha),
    ...(c.bops ? [] : ['--no-bops']),
    ...(spec.objectiveTable !== undefined ? ['--objective-table', spec.objectiveTable] : []),
    ...(c.latencyTablePath !== undefined ? ['--latency-table', c.latencyTablePath] : []),
    ...(c.costTablePath !== undefined ? ['--cost-table', c.costTablePath] : []),
    ...(c.keepWired ? ['--keep-wired'] : []),
    ...(c.weightBitsRange ? ['--w-bit-min', String(c.weightBitsRange.min), '--w-bit-max', String(c.weightBitsRange.max)] : []),
    ...(c.equivalentBits !== undefined ? ['--equivalent-bits', String(c.equivalentBits)] : []),
    ...(spec.layers.fixed ? ['--fixed', ...spec.layers.fixed] : []),
    ...(spec.layers.searchable ? ['--searchable', ...spec.layers.searchable] : []),
    ...(spec.layers.fixFirstLast === false ? ['--no-fix-first-last'] : []),
    ...(spec.limpqMacs ? ['--limpq-macs'] : []),
    ...(solver !== 'exact' ? ['--solver', solver] : []),
  ];
}

/** One budget point's flags for `mpq search`. */
export function budgetArgs(c: CommonFlags, p: BudgetPoint): string[] {
  return [
    ...(c.bops ? ['--weight-bits', String(p.weightBits), '--act-bits', String(p.actBits)] : []),
    '--cr', String(p.cr),
    ...(p.maxBitopsG !== undefined ? ['--max-bitops', String(p.maxBitopsG)] : []),
    ...(p.maxSizeMb !== undefined ? ['--max-size-mb', String(p.maxSizeMb)] : []),
    ...(p.maxLatency !== undefined ? ['--max-latency', String(p.maxLatency)] : []),
    ...(p.maxCost !== undefined ? ['--max-cost', String(p.maxCost)] : []),
  ];
}

/** Arguments as a POSIX shell would need them typed: quoted where they hold anything but plain characters. */
export function shellWords(args: string[]): string {
  return args.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/**
 * Progress of a long solve on stderr (the solver reports after its first second): one line
 * rewritten in place on a terminal, a line a second otherwise.
 */
export function solverProgress(stream: NodeJS.WriteStream = process.stderr) {
  let shown = false, lastLine = 0;
  return {
    report(p: SolveProgress): void {
      const now = performance.now();
      if (!stream.isTTY && now - lastLine < 1000) return;
      lastLine = now;
      const gap = p.best === null ? 'no policy yet' : `best ${p.best.toPrecision(8)}, gap ≤ ${formatGap(Math.max(0, p.best - p.bound) / Math.abs(p.best))}`;
      const line = `mpq: solving ${(p.elapsedMs / 1000).toFixed(1)} s: ${p.detail}; bound ${p.bound.toPrecision(8)}, ${gap}`;
      stream.write(stream.isTTY ? `\r${line}\x1b[K` : `${line}\n`);
      shown = true;
    },
    done(): void {
      if (shown && stream.isTTY) stream.write('\n');
    },
  };
}
