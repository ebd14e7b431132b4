import type { LayerTable } from '../model/layer.js';
import type { LayerSelection } from '../model/graph-table.js';
import { assertModelExists, indicatorsHowTo, searchLayerTable } from '../model/resolve.js';
import { readIndicators } from '../indicators/indicators.js';
import { findCachedIndicators } from '../indicators/cache.js';
import { FieldError } from '../util/errors.js';
import type { CostTable } from './cost-table.js';
import type { ObjectiveSource, SearchOptions } from './problem.js';

/** One point of the budget grid: the budget flags as single numbers. */
export interface BudgetPoint {
  weightBits: number;
  actBits: number;
  cr: number;
  maxBitopsG?: number;
  maxSizeMb?: number;
  maxLatency?: number;
  maxCost?: number;
}

/** Checked, parsed flags other than the budgets. */
export interface CommonFlags {
  bits: number[];
  alpha: number;
  bops: boolean;
  /** the latency and cost table files (kept so worker threads can read them again) */
  latencyTablePath?: string;
  latencyTable?: CostTable;
  costTablePath?: string;
  costTable?: CostTable;
  keepWired?: boolean;
  weightBitsRange?: { min: number; max: number };
  equivalentBits?: number;
}

export function searchOptions(c: CommonFlags, p: BudgetPoint): SearchOptions {
  return {
    bits: c.bits,
    alpha: c.alpha,
    bops: c.bops,
    weightBits: p.weightBits,
    actBits: p.actBits,
    cr: p.cr,
    ...(p.maxBitopsG !== undefined ? { maxBitopsG: p.maxBitopsG } : {}),
    ...(p.maxSizeMb !== undefined ? { maxSizeMb: p.maxSizeMb } : {}),
    ...(c.latencyTable && p.maxLatency !== undefined ? { latency: { table: c.latencyTable, max: p.maxLatency } } : {}),
    ...(c.costTable && p.maxCost !== undefined ? { cost: { table: c.costTable, max: p.maxCost } } : {}),
    ...(c.keepWired ? { keepWired: true } : {}),
    ...(c.weightBitsRange ? { weightBitsRange: c.weightBitsRange } : {}),
    ...(c.equivalentBits !== undefined ? { equivalentBits: c.equivalentBits } : {}),
  };
}

/** The uniform bits whose BitOps are a point's target (runSearch's `targetBits`); null with BitOps off. */
export function bitopsTargetBits(c: CommonFlags, p: BudgetPoint): { weightBits: number; actBits: number } | null {
  return c.bops ? { weightBits: p.weightBits, actBits: p.actBits } : null;
}

/** A short, file-name-safe label of a budget point, e.g. `w3a4-cr12.2`. */
export function budgetLabel(c: CommonFlags, p: BudgetPoint): string {
  const parts = [c.bops ? `w${p.weightBits}a${p.actBits}` : 'nobops'];
  if (p.cr > 0) parts.push(`cr${p.cr}`);
  if (p.maxBitopsG !== undefined) parts.push(`bops${p.maxBitopsG}g`);
  if (p.maxSizeMb !== undefined) parts.push(`size${p.maxSizeMb}mb`);
  if (p.maxLatency !== undefined) parts.push(`lat${p.maxLatency}`);
  if (p.maxCost !== undefined) parts.push(`cost${p.maxCost}`);
  if (c.equivalentBits !== undefined) parts.push(`eq${c.equivalentBits}b`);
  return parts.join('-');
}

/** Where a search's model and objective (indicators or an objective table) come from. */
export interface InputSpec {
  model?: string;
  indicators?: string;
  objectiveTable?: string;
  /** which layers are fixed (LIMPQ: the first and last; `fixFirstLast: false` searches all) */
  layers: LayerSelection;
  /** count MACs as LIMPQ's search script (stride-2 output sizes unfloored) */
  limpqMacs?: boolean;
}

/** The model and objective a search runs on: as given, or the cached indicators and their model. */
export async function loadSearchInputs(spec: InputSpec): Promise<{ table: LayerTable; indicators: ObjectiveSource }> {
  // an unknown model is said first, before its (missing) indicators
  if (spec.model !== undefined) assertModelExists(spec.model);
  const cached = () => findCachedIndicators(spec.model, spec.model === undefined ? undefined : indicatorsHowTo(spec.model));
  const indicators = spec.objectiveTable !== undefined
    ? (await import('./objective-table-file.js')).readObjectiveTable(spec.objectiveTable)
    : readIndicators(spec.indicators ?? cached());
  const modelSpec = spec.model ?? (typeof indicators.meta?.model === 'string' ? indicators.meta.model : undefined);
  if (modelSpec === undefined) throw new FieldError((n) => `${n('model')}: not given, and ${indicators.path} does not record its model`);
  return { table: await searchLayerTable(modelSpec, spec.layers, spec.limpqMacs ? { macs: 'limpq' } : {}), indicators };
}

/** Read the latency and cost tables named in the flags (again, in a worker thread). */
export async function withCostTables(c: CommonFlags): Promise<CommonFlags> {
  const out = { ...c };
  if (c.latencyTablePath && !c.latencyTable) out.latencyTable = (await import('./cost-table.js')).readCostTable(c.latencyTablePath, 'latency table');
  if (c.costTablePath && !c.costTable) out.costTable = (await import('./cost-table.js')).readCostTable(c.costTablePath, 'cost table');
  return out;
}
