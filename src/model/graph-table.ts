/**
 * A graph's layer table and its choice of fixed layers: one rule for the search's table and the
 * training engine's model, so their searchable layers are the same.
 */
import { FieldError, UserError, type FieldNamer } from '../util/errors.js';
import { graphLayers, inputShapeOf, nodeMap, quantizableNodes, tableInput, type Graph } from './graph.js';
import type { FixedLayer, Layer, LayerTable } from './layer.js';

/** Bits of the fixed layers (LIMPQ: the stem conv and the classifier at 8/8). */
export const FIXED_BITS = 8;

/** Which conv / dense layers keep fixed bits: `--fixed NAME…`, `--searchable NAME…`, or LIMPQ's first and last. */
export interface LayerSelection {
  fixed?: readonly string[];
  searchable?: readonly string[];
  /** false: nothing fixed (when neither list is given) */
  fixFirstLast?: boolean;
  /** where `fixed` came from, for messages (default the option field, `layers.fixed`) */
  fixedFrom?: string;
}

/** The names of the fixed layers, in forward order; unknown names are one line naming the field (`layers.fixed`, …). */
export function fixedLayerNames(graph: Graph, selection: LayerSelection = {}): string[] {
  const names = quantizableNodes(graph).map((n) => n.name);
  const check = (where: (n: FieldNamer) => string, list: readonly string[]) => {
    const unknown = list.find((n) => !names.includes(n));
    if (unknown !== undefined) throw new FieldError((n) => `${where(n)}: '${unknown}' is not a conv or dense layer of ${graph.name} (its layers: ${names.join(', ')})`);
  };
  if (selection.fixed && selection.searchable) throw new FieldError((n) => `${n('layers.fixed')} and ${n('layers.searchable')}: give one of them`);
  if (selection.fixed) {
    const { fixedFrom } = selection;
    check((n) => fixedFrom ?? n('layers.fixed'), selection.fixed);
    return names.filter((n) => selection.fixed!.includes(n));
  }
  if (selection.searchable) {
    check((n) => n('layers.searchable'), selection.searchable);
    return names.filter((n) => !selection.searchable!.includes(n));
  }
  if (selection.fixFirstLast === false || names.length === 0) return [];
  return names.length === 1 ? names : [names[0], names[names.length - 1]];
}

/**
 * MACs as LIMPQ's search script counts them: a searchable layer with a stride above 1 takes its
 * output size unfloored ((56 + 2 − 3) / 2 + 1 = 28.5) and the product floored (812 positions, not
 * 784). Their published policies are optimal in this arithmetic, so reproducing them needs it.
 */
function limpqMacs(graph: Graph, layer: Layer): number {
  const nodes = nodeMap(graph);
  const node = nodes.get(layer.name)!;
  if (node.op !== 'conv' || (node.strides[0] === 1 && node.strides[1] === 1)) return layer.macs;
  const [h, w] = inputShapeOf(graph, node, nodes);
  const span = (k: number, d: number) => d * (k - 1) + 1;
  const oh = (h + node.pads[0] + node.pads[2] - span(node.kernel[0], node.dilations[0])) / node.strides[0] + 1;
  const ow = (w + node.pads[1] + node.pads[3] - span(node.kernel[1], node.dilations[1])) / node.strides[1] + 1;
  return Math.floor(oh * ow) * layer.params;
}

/** The search's layer table of a graph (`path` names its file in errors); `macs: 'limpq'` counts as LIMPQ's script. */
export function graphLayerTable(graph: Graph, path: string, selection: LayerSelection = {}, opts: { macs?: 'exact' | 'limpq' } = {}): LayerTable {
  const rows = graphLayers(graph);
  if (rows.length === 0) throw new UserError(`${path}: no conv or dense layer to quantize`);
  const fixed = new Set(fixedLayerNames(graph, selection));
  const layers = rows.filter((l) => !fixed.has(l.name)).map((l) => (opts.macs === 'limpq' ? { ...l, macs: limpqMacs(graph, l) } : l));
  if (layers.length === 0) {
    throw new FieldError((n) => `${path}: ${rows.length} quantizable layer(s): with ${[...fixed].join(', ')} fixed at ${FIXED_BITS} bits none is left to search (${n('layers.searchable')} NAME… or ${n('layers.fixFirstLast=false')})`);
  }
  const fixedRows: FixedLayer[] = rows.filter((l) => fixed.has(l.name)).map((l) => ({ ...l, weightBits: FIXED_BITS, actBits: FIXED_BITS }));
  return { model: graph.name, input: tableInput(graph), layers, fixed: fixedRows };
}
