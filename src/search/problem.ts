import type { LayerTable } from '../model/layer.js';
import { allowedBits, matchIndicatorLayers, type LoadedIndicators, type WiredPoint } from '../indicators/indicators.js';
import type { LatencyTable } from './latency.js';
import { UserError } from '../util/errors.js';

/** LIMPQ's unit: 1 MB = 2^20 bytes. */
export const BITS_PER_MB = 8 * 1024 * 1024;
export const GIGA = 1e9;

/** What the user asks of the search (the CLI flags, checked). */
export interface SearchOptions {
  /** candidate bit-widths, e.g. [6, 5, 4, 3, 2] */
  bits: number[];
  /** weight of the weight indicators in the objective (LIMPQ: 2) */
  alpha: number;
  /** BitOps target Σ MACs·wb·ab over searchable layers (LIMPQ's constraint) */
  bops: boolean;
  wb: number;
  ab: number;
  /** compression-ratio constraint; 0 or undefined disables it */
  cr?: number;
  /** absolute BitOps budget for the whole model, in G */
  maxBitopsG?: number;
  /** absolute model-size budget, in MB (2^20 bytes) */
  maxSizeMb?: number;
  latency?: { table: LatencyTable; max: number };
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
  name: 'bitops' | 'size' | 'latency';
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
}

export interface FormulatedSearch {
  problem: Problem;
  removed: WiredPoint[];
  /** the indicator layer name matched to each searchable layer */
  indicatorNames: string[];
}

/** Build the problem once from (layer table, indicators, options); solvers and sweeps reuse it. */
export function formulate(table: LayerTable, ind: LoadedIndicators, opts: SearchOptions): FormulatedSearch {
  const layers = table.layers;
  const indicatorNames = matchIndicatorLayers(ind, layers.map((l) => l.name), table.model);
  checkCounts(table);
  const rows = budgetRows(table, opts);
  if (rows.length === 0) {
    throw new UserError('no constraint given: enable BitOps (--wb/--ab, on by default), --cr, --max-bitops, --max-size-mb, --equivalent-bits or --max-latency');
  }
  const removed: WiredPoint[] = [];
  const choices = layers.map((layer, i) => {
    const indName = indicatorNames[i];
    const range = opts.weightBitsRange;
    const wBits = range ? opts.bits.filter((b) => b >= range.min && b <= range.max) : opts.bits;
    const wAllowed = allowedBits(ind, 'weight', indName, wBits, ind.path);
    const aAllowed = allowedBits(ind, 'act', indName, opts.bits, ind.path);
    removed.push(...wAllowed.removed, ...aAllowed.removed);
    const out: Choice[] = [];
    for (const w of wAllowed.allowed) {
      for (const a of aAllowed.allowed) {
        const cost = ind.act[indName][String(a)] + opts.alpha * ind.weight[indName][String(w)];
        out.push({ w, a, cost, use: rows.map((r) => rowUse(r.name, layer.name, layer.macs, layer.params, w, a, opts)) });
      }
    }
    return out;
  });
  checkObjectiveRange(layers.map((l) => l.name), choices, (i, c, tooLarge) => {
    const name = indicatorNames[i];
    const act = ind.act[name][String(c.a)], weight = opts.alpha * ind.weight[name][String(c.w)];
    // --alpha is to blame for an objective too large when the indicators alone stay in range
    if (tooLarge && weight > act && opts.alpha > 1 && ind.weight[name][String(c.w)] * layers.length <= MAX_OBJECTIVE) return `--alpha ${opts.alpha}`;
    return `${ind.path}: ${act >= weight ? `act['${name}']['${c.a}']` : `weight['${name}']['${c.w}']`}`;
  });
  return { problem: { layerNames: layers.map((l) => l.name), choices, rows }, removed, indicatorNames };
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
 * what makes it so: `blame` says which flag or file entry gives that layer's cost.
 */
function checkObjectiveRange(layerNames: string[], choices: Choice[][], blame: (layer: number, c: Choice, tooLarge: boolean) => string): void {
  let total = 0, top = { layer: 0, choice: choices[0]?.[0] };
  for (const [i, cs] of choices.entries()) {
    for (const c of cs) if (!(Math.abs(c.cost) <= Math.abs(top.choice.cost))) top = { layer: i, choice: c };
    total += Math.max(...cs.map((c) => Math.abs(c.cost)));
  }
  if (total <= MAX_OBJECTIVE && (total === 0 || total >= MIN_OBJECTIVE)) return;
  const { layer, choice: c } = top;
  throw new UserError(`${blame(layer, c, !(total <= MAX_OBJECTIVE))}: a policy's objective reaches ${total > MAX_OBJECTIVE ? '' : 'only '}${total.toPrecision(3)} (layer '${layerNames[layer]}' at W${c.w}A${c.a} costs ${c.cost.toPrecision(3)}); it must stay within ${MIN_OBJECTIVE.toExponential()}..${MAX_OBJECTIVE.toExponential()}`);
}

function rowUse(row: BudgetRow['name'], name: string, macs: number, params: number, w: number, a: number, opts: SearchOptions): number {
  switch (row) {
    case 'bitops': return macs * w * a;
    case 'size': return params * w;
    case 'latency': return opts.latency!.table.cost(name, w, a);
  }
}

/** The budget rows the options ask for, with their limits (no choices: cheap). */
export function budgetRows(table: LayerTable, opts: SearchOptions): BudgetRow[] {
  const rows: BudgetRow[] = [];
  const add = (name: BudgetRow['name'], limitTotal: number, fixedUse: number, source: string, toUnit: (v: number) => number, unit: string, flag = source) => {
    if (!Number.isFinite(limitTotal)) throw new UserError(`${flag}: the ${name} budget this gives is not a finite number`);
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
    const target = table.layers.reduce((s, l) => s + l.macs * opts.wb * opts.ab, 0);
    add('bitops', target, 0, `W${opts.wb}A${opts.ab} BitOps target`, toG, 'G', `--wb ${opts.wb} --ab ${opts.ab}`);
  }
  if (opts.maxBitopsG !== undefined) {
    const fixed = table.fixed.reduce((s, l) => s + l.macs * l.weightBits * l.actBits, 0);
    add('bitops', opts.maxBitopsG * GIGA, fixed, `--max-bitops ${opts.maxBitopsG}`, toG, 'G');
  }
  const fixedBits = table.fixed.reduce((s, l) => s + l.params * l.weightBits, 0);
  if (opts.cr !== undefined && opts.cr > 0) {
    const allParams = [...table.layers, ...table.fixed].reduce((s, l) => s + l.params, 0);
    add('size', (32 * allParams) / opts.cr, fixedBits, `compression ratio ${opts.cr}`, toMb, 'MB', `--cr ${opts.cr}`);
  }
  if (opts.equivalentBits !== undefined) {
    // like LIMPQ's BitOps row, over the searchable layers only
    const params = table.layers.reduce((s, l) => s + l.params, 0);
    add('size', opts.equivalentBits * params, 0, `--equivalent-bits ${opts.equivalentBits}`, (v) => v / params, 'bits/weight');
  }
  if (opts.maxSizeMb !== undefined) add('size', opts.maxSizeMb * BITS_PER_MB, fixedBits, `--max-size-mb ${opts.maxSizeMb}`, toMb, 'MB');
  if (opts.latency) {
    const fixed = table.fixed.reduce((s, l) => s + opts.latency!.table.fixedCost(l.name, l.weightBits, l.actBits), 0);
    add('latency', opts.latency.max, fixed, `--max-latency ${opts.latency.max}`, (v) => v, opts.latency.table.unit);
  }
  return rows;
}
