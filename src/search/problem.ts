import { costs, layerBitops, layerSizeBits, sizeBitsAtCompressionRatio } from '../model/costs.js';
import type { Layer, LayerTable } from '../model/layer.js';
import { allowedBits, matchIndicatorLayers, type LoadedIndicators, type WiredPoint } from '../indicators/indicators.js';
import type { CostTable } from './cost-table.js';
import { isObjectiveTable, matchTableLayers, tableChoices, type ObjectiveTable } from './objective-table.js';
import { FieldError, UserError, type FieldNamer } from '../util/errors.js';

/** LIMPQ's unit: 1 MB = 2^20 bytes. */
export const BITS_PER_MB = 8 * 1024 * 1024;
export const GIGA = 1e9;

/** What the user asks of the search (the CLI flags, checked). */
export interface SearchOptions {
  /** candidate bit-widths, e.g. [6, 5, 4, 3, 2] */
  bits: number[];
  /** weight of the weight indicators in the objective (LIMPQ: 2) */
  alpha: number;
  /** BitOps target Σ MACs·w·a over searchable layers at uniform weightBits / actBits (LIMPQ's constraint, its --wb / --ab) */
  bops: boolean;
  weightBits: number;
  actBits: number;
  /** compression-ratio constraint; 0 or undefined disables it */
  cr?: number;
  /** absolute BitOps budget for the whole model, in G */
  maxBitopsG?: number;
  /** absolute model-size budget, in MB (2^20 bytes) */
  maxSizeMb?: number;
  latency?: { table: CostTable; max: number };
  /** a budget on any other per-layer cost (energy, …), in the latency table's shape */
  cost?: { table: CostTable; max: number };
  /** keep wired points (candidates cheaper than the next higher bits), which are left out by default */
  keepWired?: boolean;
  /** weight bit-widths allowed, within `bits` (PocketFlow's w_bit_min / w_bit_max) */
  weightBitsRange?: { min: number; max: number };
  /**
   * PocketFlow's equivalent bits: Σ w·params over searchable layers ≤ B·Σ params (a size budget
   * of B bits per searchable weight on average)
   */
  equivalentBits?: number;
}

/** One (weight bits, act bits) choice of a layer: its objective cost and its use of each budget row. */
export interface Choice {
  w: number;
  a: number;
  cost: number;
  /** resource use per budget row, aligned with Problem.rows */
  use: number[];
}

/**
 * A budget row Σ_i use_i ≤ limit over searchable layers. Fixed layers' constant share has been
 * taken off `limit` already (`fixedUse`), so solvers see only the searchable part.
 */
export interface BudgetRow {
  name: 'bitops' | 'size' | 'latency' | 'cost';
  limit: number;
  fixedUse: number;
  /** which flags set this row (several flags on one row keep the tightest) */
  sources: string[];
  /** converts a row total (fixed included) to the unit shown to users */
  toUnit: (v: number) => number;
  unit: string;
}

/**
 * The search problem: one choice per layer, minimise Σ cost, every row within its limit. `choices`
 * is not changed once built: the exact solver and reports keep work per choices array, which a
 * sweep's points share.
 */
export interface Problem {
  layerNames: string[];
  choices: Choice[][];
  rows: BudgetRow[];
  /**
   * The searchable layers as the layer table describes them (shapes, params, MACs), for searchers
   * that look at the layers themselves (the RL agent's state); absent in hand-made problems.
   */
  layers?: readonly Layer[];
}

export interface FormulatedSearch {
  problem: Problem;
  removed: WiredPoint[];
  /** the indicator (or objective-table) layer name matched to each searchable layer */
  indicatorNames: string[];
}

/** What scores a choice: LIMPQ's indicators (with --alpha), or any sensitivity in an objective table. */
export type ObjectiveSource = LoadedIndicators | ObjectiveTable;

/** Build the problem once from (layer table, objective source, options); solvers and sweeps reuse it. */
export function formulate(table: LayerTable, source: ObjectiveSource, opts: SearchOptions): FormulatedSearch {
  const layers = table.layers;
  const byTable = isObjectiveTable(source);
  const indicatorNames = byTable ? matchTableLayers(source, layers.map((l) => l.name), table.model) : matchIndicatorLayers(source, layers.map((l) => l.name), table.model);
  checkCounts(table);
  const rows = budgetRows(table, opts);
  if (rows.length === 0) {
    throw new FieldError((n) => `no constraint given: enable BitOps (${n('weightBits')}/${n('actBits')}, on by default), ${n('cr')}, ${n('maxBitopsG')}, ${n('maxSizeMb')}, ${n('equivalentBits')}, ${n('latency.max')} or ${n('cost.max')}`);
  }
  const range = opts.weightBitsRange;
  const wBits = range ? opts.bits.filter((b) => b >= range.min && b <= range.max) : opts.bits;
  const keepWired = opts.keepWired ?? false;
  const removed: WiredPoint[] = [];
  const choices = layers.map((layer, i) => {
    const scored = byTable ? tableChoices(source, indicatorNames[i], wBits, opts.bits, keepWired) : indicatorChoices(source, indicatorNames[i], wBits, opts, keepWired);
    removed.push(...scored.removed);
    return scored.choices.map(({ w, a, cost }): Choice => ({ w, a, cost, use: rows.map((r) => rowUse(r.name, layer.name, layer.macs, layer.params, w, a, opts)) }));
  });
  checkObjectiveRange(layers.map((l) => l.name), choices, (i, c, tooLarge) => {
    const name = indicatorNames[i];
    if (byTable) return () => `${source.path}: layers['${name}']['${source.weightOnly ? `w${c.w}` : `w${c.w}a${c.a}`}']`;
    const act = source.act[name][String(c.a)], weight = opts.alpha * source.weight[name][String(c.w)];
    // alpha is to blame for an objective too large when the indicators alone stay in range
    if (tooLarge && weight > act && opts.alpha > 1 && source.weight[name][String(c.w)] * layers.length <= MAX_OBJECTIVE) return (n) => `${n('alpha')} ${opts.alpha}`;
    return () => `${source.path}: ${act >= weight ? `act['${name}']['${c.a}']` : `weight['${name}']['${c.w}']`}`;
  });
  return { problem: { layerNames: layers.map((l) => l.name), choices, rows, layers }, removed, indicatorNames };
}

/** One layer's choices scored by LIMPQ's objective, act[a] + α·weight[w], wired points left out unless kept. */
function indicatorChoices(ind: LoadedIndicators, name: string, wBits: number[], opts: SearchOptions, keepWired: boolean) {
  const wAllowed = allowedBits(ind, 'weight', name, wBits, ind.path, keepWired);
  const aAllowed = allowedBits(ind, 'act', name, opts.bits, ind.path, keepWired);
  const choices = wAllowed.allowed.flatMap((w) => aAllowed.allowed.map((a) => ({ w, a, cost: ind.act[name][String(a)] + opts.alpha * ind.weight[name][String(w)] })));
  return { choices, removed: [...wAllowed.removed, ...aAllowed.removed] };
}

/**
 * The range of objectives the solvers take: a policy's cost up to 1e300 (sums of costs stay far from
 * overflow) and, unless every cost is 0, from 1e-300 (far from the doubles that lose precision).
 * Within it the solvers work on costs scaled by a power of two (exact), so their arithmetic sees
 * the same numbers at every magnitude (see costScale).
 */
export const MAX_OBJECTIVE = 1e300;
export const MIN_OBJECTIVE = 1e-300;
/** The largest MAC or weight count of a layer: beyond any model by orders of magnitude, and far from where budget sums lose a layer. */
export const MAX_COUNT = 1e15;

function checkCounts(table: LayerTable): void {
  for (const l of [...table.layers, ...table.fixed]) {
    for (const field of ['macs', 'params'] as const) {
      if (!(l[field] <= MAX_COUNT)) throw new UserError(`model '${table.model}': layer '${l.name}': ${field} ${l[field]} is beyond ${MAX_COUNT.toExponential()}, the largest count accepted`);
    }
  }
}

/**
 * Refuse an objective outside [MIN_OBJECTIVE, MAX_OBJECTIVE] (its most expensive policy), naming
 * what makes it so: `blame` says which option field or file entry gives that layer's cost.
 */
function checkObjectiveRange(layerNames: string[], choices: Choice[][], blame: (layer: number, c: Choice, tooLarge: boolean) => (n: FieldNamer) => string): void {
  let total = 0, top = { layer: 0, choice: choices[0]?.[0] };
  for (const [i, cs] of choices.entries()) {
    for (const c of cs) if (!(Math.abs(c.cost) <= Math.abs(top.choice.cost))) top = { layer: i, choice: c };
    total += Math.max(...cs.map((c) => Math.abs(c.cost)));
  }
  if (total <= MAX_OBJECTIVE && (total === 0 || total >= MIN_OBJECTIVE)) return;
  const { layer, choice: c } = top;
  const where = blame(layer, c, !(total <= MAX_OBJECTIVE));
  throw new FieldError((n) => `${where(n)}: a policy's objective reaches ${total > MAX_OBJECTIVE ? '' : 'only '}${total.toPrecision(3)} (layer '${layerNames[layer]}' at W${c.w}A${c.a} costs ${c.cost.toPrecision(3)}); it must stay within ${MIN_OBJECTIVE.toExponential()}..${MAX_OBJECTIVE.toExponential()}`);
}

function rowUse(row: BudgetRow['name'], name: string, macs: number, params: number, w: number, a: number, opts: SearchOptions): number {
  switch (row) {
    case 'bitops': return layerBitops(macs, w, a);
    case 'size': return layerSizeBits(params, w);
    case 'latency': return opts.latency!.table.cost(name, w, a);
    case 'cost': return opts.cost!.table.cost(name, w, a);
  }
}

/** The budget rows the options ask for, with their limits (no choices: cheap). */
export function budgetRows(table: LayerTable, opts: SearchOptions): BudgetRow[] {
  const rows: BudgetRow[] = [];
  // `given`: the option fields that set the budget, for an error (`source` labels the row in reports, in words)
  const add = (name: BudgetRow['name'], limitTotal: number, fixedUse: number, source: string, toUnit: (v: number) => number, unit: string, given: (n: FieldNamer) => string) => {
    if (!Number.isFinite(limitTotal)) throw new FieldError((n) => `${given(n)}: the ${name} budget this gives is not a finite number`);
    const existing = rows.find((r) => r.name === name);
    const limit = limitTotal - fixedUse;
    if (!existing) rows.push({ name, limit, fixedUse, sources: [source], toUnit, unit });
    else {
      existing.sources.push(source);
      existing.limit = Math.min(existing.limit, limit);
    }
  };
  const toG = (v: number) => v / GIGA;
  const toMb = (v: number) => v / BITS_PER_MB;
  if (opts.bops) {
    // LIMPQ's BitOps row covers the searchable layers only: the target is theirs at wb x ab.
    const target = costs(table.layers, { weightBits: opts.weightBits, actBits: opts.actBits }).bitops;
    add('bitops', target, 0, `W${opts.weightBits}A${opts.actBits} BitOps target`, toG, 'G', (n) => `${n('weightBits')} ${opts.weightBits} ${n('actBits')} ${opts.actBits}`);
  }
  if (opts.maxBitopsG !== undefined) {
    add('bitops', opts.maxBitopsG * GIGA, costs(table.fixed).bitops, `max BitOps ${opts.maxBitopsG} G`, toG, 'G', (n) => `${n('maxBitopsG')} ${opts.maxBitopsG}`);
  }
  const fixedBits = costs(table.fixed).sizeBits;
  if (opts.cr !== undefined && opts.cr > 0) {
    const allParams = costs([...table.layers, ...table.fixed]).params;
    add('size', sizeBitsAtCompressionRatio(allParams, opts.cr), fixedBits, `compression ratio ${opts.cr}`, toMb, 'MB', (n) => `${n('cr')} ${opts.cr}`);
  }
  if (opts.equivalentBits !== undefined) {
    // like LIMPQ's BitOps row, over the searchable layers only
    const { params } = costs(table.layers);
    add('size', opts.equivalentBits * params, 0, `equivalent bits ${opts.equivalentBits}`, (v) => v / params, 'bits/weight', (n) => `${n('equivalentBits')} ${opts.equivalentBits}`);
  }
  if (opts.maxSizeMb !== undefined) add('size', opts.maxSizeMb * BITS_PER_MB, fixedBits, `max size ${opts.maxSizeMb} MB`, toMb, 'MB', (n) => `${n('maxSizeMb')} ${opts.maxSizeMb}`);
  for (const [name, budget] of [['latency', opts.latency], ['cost', opts.cost]] as const) {
    if (!budget) continue;
    const fixed = table.fixed.reduce((s, l) => s + budget.table.fixedCost(l.name, l.weightBits, l.actBits), 0);
    add(name, budget.max, fixed, `max ${name} ${budget.max}${budget.table.unit ? ` ${budget.table.unit}` : ''}`, (v) => v, budget.table.unit, (n) => `${n(`${name}.max`)} ${budget.max}`);
  }
  return rows;
}
