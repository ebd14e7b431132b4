import type { LayerTable } from '../model/layer.js';
import type { ObjectiveSource } from '../search/problem.js';
import { isObjectiveTable } from '../search/objective-table.js';
import type { SearchResult } from '../search/search.js';
import type { BudgetPoint, CommonFlags } from '../search/spec.js';
import type { Policy } from './policy.js';

/** A policy file from a search: the bits, plus what traces it to its inputs. */
export function policyFromSearch(
  table: LayerTable, ind: ObjectiveSource, c: CommonFlags, p: BudgetPoint, r: SearchResult, command: string,
): Policy {
  return {
    format: 'mpq-policy',
    version: 1,
    model: table.model,
    bits: c.bits,
    layers: r.layers,
    fixed: r.fixed,
    objective: r.objective ?? undefined,
    bitops: r.bitops ?? undefined,
    compressionRatio: r.compressionRatio ?? undefined,
    sizeMb: r.sizeMb ?? undefined,
    constraints: {
      // the objective: LIMPQ's indicators weighed by alpha, or an objective table (the file below)
      objective: isObjectiveTable(ind) ? 'objective-table' : 'indicators',
      alpha: isObjectiveTable(ind) ? null : c.alpha,
      bops: c.bops,
      wb: c.bops ? p.weightBits : null,
      ab: c.bops ? p.actBits : null,
      cr: p.cr > 0 ? p.cr : null,
      maxBitopsG: p.maxBitopsG ?? null,
      maxSizeMb: p.maxSizeMb ?? null,
      maxLatency: p.maxLatency ?? null,
      ...(p.maxCost !== undefined ? { maxCost: p.maxCost } : {}),
      ...(c.keepWired ? { keepWired: true } : {}),
      ...(c.equivalentBits !== undefined ? { equivalentBits: c.equivalentBits } : {}),
      ...(c.weightBitsRange ? { wBitMin: c.weightBitsRange.min, wBitMax: c.weightBitsRange.max } : {}),
    },
    indicators: { path: ind.path, sha256: ind.sha256 },
    solver: r.solver,
    seed: typeof ind.meta?.seed === 'number' ? ind.meta.seed : null,
    command,
    createdAt: new Date().toISOString(),
  };
}
