import type { Policy } from '../export/policy.js';
import { FULL_PRECISION_BITS } from '../quant/index.js';
import { UserError } from '../util/errors.js';
import { FIXED_LAYER_BITS, type BitsPolicy, type QuantModel } from './models.js';
import type { Prng } from '../util/prng.js';

/** No layer quantized. */
export const FULL_PRECISION: BitsPolicy = Object.freeze({});

export function withFixedLayers(model: QuantModel, searchable: BitsPolicy): BitsPolicy {
  const policy: BitsPolicy = { ...searchable };
  for (const name of model.fixedLayerNames) policy[name] = { weightBits: FIXED_LAYER_BITS, actBits: FIXED_LAYER_BITS };
  return policy;
}

/** Every searchable layer at `bits` for weights and activations; first/last at 8/8. */
export function uniformPolicy(model: QuantModel, bits: number): BitsPolicy {
  return withFixedLayers(model, Object.fromEntries(model.searchableLayerNames.map((n) => [n, { weightBits: bits, actBits: bits }])));
}

/** Each searchable layer's weight and activation bits drawn independently from the candidates. */
export function randomPolicy(model: QuantModel, rng: Prng): BitsPolicy {
  return withFixedLayers(model, Object.fromEntries(model.searchableLayerNames.map((n) => [
    n, { weightBits: rng.choice(model.bitsList), actBits: rng.choice(model.bitsList) },
  ])));
}

/** Bit-widths (other than full precision) a policy file asks the searchable layers for. */
export function policyBits(policy: Policy): number[] {
  const bits = new Set<number>();
  for (const l of policy.layers) for (const b of [l.weightBits, l.actBits]) if (b < FULL_PRECISION_BITS) bits.add(b);
  return [...bits].sort((a, b) => b - a);
}

/** The policy file must be for the model named `model`. */
export function assertPolicyModel(policy: Policy, model: string, path: string): void {
  if (policy.model !== model) throw new UserError(`${path}: policy is for model '${policy.model}', not '${model}'`);
}

/**
 * A policy file as the bits of a model's layers. The file must be for this model, name exactly
 * its searchable layers, and keep the fixed layers at 8/8 (the bits the model's first and last
 * layers are built for).
 */
export function policyFromFile(model: QuantModel, policy: Policy, path: string): BitsPolicy {
  assertPolicyModel(policy, model.name, path);
  const names = policy.layers.map((l) => l.name);
  const expected = model.searchableLayerNames;
  if (names.length !== expected.length || names.some((n, i) => n !== expected[i])) {
    throw new UserError(`${path}: field 'layers' names [${names.join(', ')}], ${model.name} has searchable layers [${expected.join(', ')}]`);
  }
  for (const f of policy.fixed) {
    if (!model.fixedLayerNames.includes(f.name)) throw new UserError(`${path}: field 'fixed': '${f.name}' is not a fixed layer of ${model.name}`);
    if (f.weightBits !== FIXED_LAYER_BITS || f.actBits !== FIXED_LAYER_BITS) {
      throw new UserError(`${path}: field 'fixed': ${f.name} at W${f.weightBits}A${f.actBits}; the engine keeps fixed layers at ${FIXED_LAYER_BITS}/${FIXED_LAYER_BITS}`);
    }
  }
  return withFixedLayers(model, Object.fromEntries(policy.layers.map((l) => [l.name, { weightBits: l.weightBits, actBits: l.actBits }])));
}
