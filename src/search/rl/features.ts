import type { Layer } from '../../model/layer.js';
import type { Problem } from '../problem.js';

/** HAQ's per-layer state, without the previous action (the agent appends it while acting). */
export const STATIC_FEATURES = ['index', 'in_channels', 'out_channels', 'kernel', 'stride', 'log_params', 'log_macs', 'depthwise'] as const;

/**
 * One row of static features per searchable layer, each column min-max scaled to [0, 1] over the
 * model as HAQ does (a constant column becomes 0). Layer tables read from files may lack the
 * shape fields: those count as 0. Params and MACs span orders of magnitude, hence the logs.
 */
export function layerFeatures(problem: Problem): number[][] {
  const { layers } = problem;
  if (layers === undefined) throw new Error('rl: the problem carries no layer descriptors (formulate it from a layer table)');
  if (layers.length !== problem.layerNames.length || layers.some((l, i) => l.name !== problem.layerNames[i])) {
    throw new Error('rl: the problem\'s layer descriptors do not match its layers');
  }
  const raw = layers.map((l, i) => [
    i,
    l.inChannels ?? 0,
    l.outChannels ?? 0,
    l.kernel ? l.kernel[0] * l.kernel[1] : 0,
    l.stride ?? 0,
    Math.log1p(l.params),
    Math.log1p(l.macs),
    isDepthwise(l) ? 1 : 0,
  ]);
  const lo = STATIC_FEATURES.map((_, c) => Math.min(...raw.map((r) => r[c])));
  const hi = STATIC_FEATURES.map((_, c) => Math.max(...raw.map((r) => r[c])));
  return raw.map((row) => row.map((x, c) => (hi[c] > lo[c] ? (x - lo[c]) / (hi[c] - lo[c]) : 0)));
}

function isDepthwise(l: Layer): boolean {
  return l.kind === 'dwconv' || (l.groups !== undefined && l.groups > 1 && l.groups === l.inChannels);
}
