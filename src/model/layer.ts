/**
 * A layer table: what the search needs to know about a network. Zoo models fill every field;
 * user-supplied tables (e.g. LIMPQ's reference arithmetic) may carry only name, params and MACs.
 */
export type LayerKind = 'conv' | 'dwconv' | 'linear';

/** A convolution is depthwise when every input channel is its own group (PyTorch's groups = channels). */
export function convKind(inChannels: number, groups: number): LayerKind {
  return groups > 1 && groups === inChannels ? 'dwconv' : 'conv';
}

export interface Layer {
  /** torchvision-style name, e.g. `layer1.0.conv1`, `features.stage1.unit1.dw_conv.conv`, `fc` */
  name: string;
  /** weight count (no bias: the LIMPQ arithmetic counts weights only) */
  params: number;
  /** multiply-accumulates for one input sample */
  macs: number;
  kind?: LayerKind;
  inChannels?: number;
  outChannels?: number;
  /** [kh, kw] */
  kernel?: [number, number];
  stride?: number;
  groups?: number;
  /** [h, w] of the output feature map (1x1 for linear layers) */
  outputSize?: [number, number];
}

/**
 * A convolution's table row from its shape: weights cout·(cin/groups)·kh·kw, and MACs that many
 * per output position (one sample).
 */
export function convLayer(c: {
  name: string; inChannels: number; outChannels: number; kernel: [number, number]; stride: number; groups: number; outputSize: [number, number];
}): Layer {
  const params = c.outChannels * (c.inChannels / c.groups) * c.kernel[0] * c.kernel[1];
  return {
    name: c.name, kind: convKind(c.inChannels, c.groups), inChannels: c.inChannels, outChannels: c.outChannels,
    kernel: c.kernel, stride: c.stride, groups: c.groups, outputSize: c.outputSize,
    params, macs: params * c.outputSize[0] * c.outputSize[1],
  };
}

/** A layer that is not searched: it keeps fixed bit-widths (LIMPQ: stem conv and classifier at 8/8). */
export interface FixedLayer extends Layer {
  weightBits: number;
  actBits: number;
}

export interface LayerTable {
  /** model name (zoo name, or the file's `model` field) */
  model: string;
  /** input shape [c, h, w] when known */
  input?: number[];
  /** searchable layers, in search order */
  layers: Layer[];
  /** layers kept at fixed bits; they count in model size, not in the BitOps budget */
  fixed: FixedLayer[];
}

/**
 * A layer table with LIMPQ's default: the first and last layer (stem conv, classifier) fixed at
 * `fixedBits` (8) for weights and activations, the rest searchable. `fixFirstLast: false` searches all.
 */
export function tableWithFixedEnds(
  model: string,
  input: number[] | undefined,
  layers: Layer[],
  opts: { fixFirstLast?: boolean; fixedBits?: number } = {},
): LayerTable {
  const { fixFirstLast = true, fixedBits = 8 } = opts;
  const base = { model, ...(input ? { input } : {}) };
  if (!fixFirstLast) return { ...base, layers, fixed: [] };
  const fix = (layer: Layer): FixedLayer => ({ ...layer, weightBits: fixedBits, actBits: fixedBits });
  return { ...base, layers: layers.slice(1, -1), fixed: [fix(layers[0]), fix(layers[layers.length - 1])] };
}

/** A parsed JSON file is a tfjs LayersModel's model.json (rather than a layer table). */
export function isTfjsModelJson(data: unknown): boolean {
  return typeof data === 'object' && data !== null && 'modelTopology' in data;
}
