/**
 * A layer table: what the search needs to know about a network. Zoo models fill every field;
 * user-supplied tables (e.g. LIMPQ's reference arithmetic) may carry only name, params and MACs.
 */
export type LayerKind = 'conv' | 'dwconv' | 'linear';

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
