import type { LayerTable } from '../model/layer.js';
import type { LayerSelection } from '../model/graph-table.js';
import { searchLayerTable } from '../model/resolve.js';
import { readIndicators, type LoadedIndicators } from '../indicators/indicators.js';
import { findCachedIndicators } from '../indicators/cache.js';
import { UserError } from '../util/errors.js';
import type { LatencyTable } from './latency.js';
import type { SearchOptions } from './problem.js';

/** One point of the budget grid: the budget flags as single numbers. */
export interface BudgetPoint {
  wb: number;
  ab: number;
  cr: number;
  maxBitopsG?: number;
  maxSizeMb?: number;
  maxLatency?: number;
}

/** Checked, parsed flags other than the budgets. */
export interface CommonFlags {
  bits: number[];
  alpha: number;
  bops: boolean;
  /** the latency table file (kept so worker threads can read it again) */
  latencyTablePath?: string;
  latencyTable?: LatencyTable;
  weightBitsRange?: { min: number; max: number };
  equivalentBits?: number;
}

export function searchOptions(c: CommonFlags, p: BudgetPoint): SearchOptions {
  return {
    bits: c.bits,
    alpha: c.alpha,
    bops: c.bops,
    wb: p.wb,
    ab: p.ab,
    cr: p.cr,
    ...(p.maxBitopsG !== undefined ? { maxBitopsG: p.maxBitopsG } : {}),
    ...(p.maxSizeMb !== undefined ? { maxSizeMb: p.maxSizeMb } : {}),
    ...(c.latencyTable && p.maxLatency !== undefined ? { latency: { table: c.latencyTable, max: p.maxLatency } } : {}),
    ...(c.weightBitsRange ? { weightBitsRange: c.weightBitsRange } : {}),
    ...(c.equivalentBits !== undefined ? { equivalentBits: c.equivalentBits } : {}),
  };
}

/** A short, file-name-safe label of a budget point, e.g. `w3a4-cr12.2`. */
export function budgetLabel(c: CommonFlags, p: BudgetPoint): string {
  const parts = [c.bops ? `w${p.wb}a${p.ab}` : 'nobops'];
  if (p.cr > 0) parts.push(`cr${p.cr}`);
  if (p.maxBitopsG !== undefined) parts.push(`bops${p.maxBitopsG}g`);
  if (p.maxSizeMb !== undefined) parts.push(`size${p.maxSizeMb}mb`);
  if (p.maxLatency !== undefined) parts.push(`lat${p.maxLatency}`);
  if (c.equivalentBits !== undefined) parts.push(`eq${c.equivalentBits}b`);
  return parts.join('-');
}

/** Where a search's model and indicators come from. */
export interface InputSpec {
  model?: string;
  indicators?: string;
  /** which layers are fixed (LIMPQ: the first and last; `fixFirstLast: false` searches all) */
  layers: LayerSelection;
  /** count MACs as LIMPQ's search script (stride-2 output sizes unfloored) */
  limpqMacs?: boolean;
}

/** The model and indicators a search runs on: as given, or the cached indicators and their model. */
export async function loadSearchInputs(spec: InputSpec): Promise<{ table: LayerTable; indicators: LoadedIndicators }> {
  const indicators = readIndicators(spec.indicators ?? findCachedIndicators(spec.model));
  const modelSpec = spec.model ?? (typeof indicators.meta?.model === 'string' ? indicators.meta.model : undefined);
  if (modelSpec === undefined) throw new UserError(`--model: not given, and ${indicators.path} does not record its model`);
  return { table: await searchLayerTable(modelSpec, spec.layers, spec.limpqMacs ? { macs: 'limpq' } : {}), indicators };
}

/** Read the latency table named in the flags (again, in a worker thread). */
export async function withLatencyTable(c: CommonFlags): Promise<CommonFlags> {
  if (!c.latencyTablePath || c.latencyTable) return c;
  return { ...c, latencyTable: (await import('./latency.js')).readLatencyTable(c.latencyTablePath) };
}
