/**
 * A graph's layer table and its choice of fixed layers: one rule for the search's table and the
 * training engine's model, so their searchable layers are the same.
 */
import { UserError } from '../util/errors.js';
import { graphLayers, quantizableNodes, tableInput, type Graph } from './graph.js';
import type { FixedLayer, LayerTable } from './layer.js';

/** Bits of the fixed layers (LIMPQ: the stem conv and the classifier at 8/8). */
export const FIXED_BITS = 8;

/** Which conv / dense layers keep fixed bits: `--fixed NAME…`, `--searchable NAME…`, or LIMPQ's first and last. */
export interface LayerSelection {
  fixed?: readonly string[];
  searchable?: readonly string[];
  /** false: nothing fixed (when neither list is given) */
  fixFirstLast?: boolean;
  /** where `fixed` came from, for messages (default the flag, `--fixed`) */
  fixedFrom?: string;
}

/** The names of the fixed layers, in forward order; unknown names are one line naming the flag. */
export function fixedLayerNames(graph: Graph, selection: LayerSelection = {}): string[] {
  const names = quantizableNodes(graph).map((n) => n.name);
  const check = (flag: string, list: readonly string[]) => {
    const unknown = list.find((n) => !names.includes(n));
    if (unknown !== undefined) throw new UserError(`${flag}: '${unknown}' is not a conv or dense layer of ${graph.name} (its layers: ${names.join(', ')})`);
  };
  if (selection.fixed && selection.searchable) throw new UserError('--fixed and --searchable: give one of them');
  if (selection.fixed) {
    check(selection.fixedFrom ?? '--fixed', selection.fixed);
    return names.filter((n) => selection.fixed!.includes(n));
  }
  if (selection.searchable) {
    check('--searchable', selection.searchable);
    return names.filter((n) => !selection.searchable!.includes(n));
  }
  if (selection.fixFirstLast === false || names.length === 0) return [];
  return names.length === 1 ? names : [names[0], names[names.length - 1]];
}

/** The search's layer table of a graph (`path` names its file in errors). */
export function graphLayerTable(graph: Graph, path: string, selection: LayerSelection = {}): LayerTable {
  const rows = graphLayers(graph);
  if (rows.length === 0) throw new UserError(`${path}: no conv or dense layer to quantize`);
  const fixed = new Set(fixedLayerNames(graph, selection));
  const layers = rows.filter((l) => !fixed.has(l.name));
  if (layers.length === 0) {
    throw new UserError(`${path}: ${rows.length} quantizable layer(s): with ${[...fixed].join(', ')} fixed at ${FIXED_BITS} bits none is left to search (--searchable NAME… or --no-fix-first-last)`);
  }
  const fixedRows: FixedLayer[] = rows.filter((l) => fixed.has(l.name)).map((l) => ({ ...l, weightBits: FIXED_BITS, actBits: FIXED_BITS }));
  return { model: graph.name, input: tableInput(graph), layers, fixed: fixedRows };
}
