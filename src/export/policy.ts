import type { FixedLayer, Layer } from '../model/layer.js';

/** One layer's bit-widths in a policy. */
export interface PolicyLayer {
  name: string;
  weightBits: number;
  actBits: number;
  macs: number;
  params: number;
}

/**
 * A searched mixed-precision policy as saved under `policies/`: the bits per layer plus everything
 * needed to trace it back to its inputs (constraints, indicators file and its hash, solver).
 */
export interface Policy {
  format: 'mpq-policy';
  version: 1;
  model: string;
  /** candidate bit-widths the search chose from */
  bits: number[];
  /** searchable layers, in search order */
  layers: PolicyLayer[];
  /** layers not searched, with their fixed bits */
  fixed: PolicyLayer[];
  objective?: number;
  bitops?: number;
  compressionRatio?: number;
  sizeMb?: number;
  constraints?: Record<string, number | boolean | string | null>;
  indicators?: { path: string; sha256: string } | null;
  solver?: string;
  seed?: number | null;
  command?: string;
  createdAt?: string;
}

export function policyLayer(l: Layer, weightBits: number, actBits: number): PolicyLayer {
  return { name: l.name, weightBits, actBits, macs: l.macs, params: l.params };
}

export function fixedPolicyLayer(l: FixedLayer): PolicyLayer {
  return policyLayer(l, l.weightBits, l.actBits);
}
