/**
 * Seeded search instances at scale, for the bench and the tests:
 * - LLM-like (issue 15): 7 linear layers per transformer block (q, k, v, o, up, gate, down) with a
 *   7B model's shapes (4096×4096, 4096×1024 for k and v, 4096×11008 for the MLP), MACs = params ×
 *   128 tokens, the embedding and the head fixed at 8 bits;
 * - CNN-like (issue 22): convolutions whose weights and MACs span orders of magnitude;
 * both with LIMPQ-like indicators s·2^(−b): a lognormal s per layer and ±10% noise per entry.
 */
import type { LoadedIndicators } from '../src/indicators/indicators.js';
import type { Layer, LayerTable } from '../src/model/layer.js';
import { Prng } from '../src/util/prng.js';

const HIDDEN = 4096, KV = 1024, MLP = 11008, VOCAB = 32000, TOKENS = 128;
const BLOCK: [string, number, number][] = [
  ['q_proj', HIDDEN, HIDDEN], ['k_proj', HIDDEN, KV], ['v_proj', HIDDEN, KV], ['o_proj', HIDDEN, HIDDEN],
  ['up_proj', HIDDEN, MLP], ['gate_proj', HIDDEN, MLP], ['down_proj', MLP, HIDDEN],
];
export const LLM_BITS = [8, 6, 5, 4, 3, 2];

/** `layers` searchable layers (a multiple of 7 is whole blocks; others cut the last block short). */
export function llmTable(layers: number): LayerTable {
  const searchable: Layer[] = Array.from({ length: layers }, (_, i) => {
    const [name, inF, outF] = BLOCK[i % BLOCK.length];
    const params = inF * outF;
    return { name: `layers.${Math.floor(i / BLOCK.length)}.${name}`, kind: 'linear', params, macs: params * TOKENS };
  });
  return {
    model: `llm-${layers}`,
    layers: searchable,
    fixed: [
      { name: 'embed_tokens', kind: 'linear', params: VOCAB * HIDDEN, macs: 0, weightBits: 8, actBits: 8 },
      { name: 'lm_head', kind: 'linear', params: HIDDEN * VOCAB, macs: HIDDEN * VOCAB * TOKENS, weightBits: 8, actBits: 8 },
    ],
  };
}

/** s·2^(−b) per layer, weight and activation, s lognormal, ±10% noise per entry (monotone: no wired points). */
export function limpqLikeIndicators(table: LayerTable, seed: number, bits = LLM_BITS): LoadedIndicators {
  const rng = new Prng(seed);
  const steps = () => {
    const s = Math.exp(rng.normal());
    return Object.fromEntries(bits.map((b) => [String(b), s * 2 ** -b * (0.9 + 0.2 * rng.next())]));
  };
  const names = table.layers.map((l) => l.name);
  const weight: Record<string, Record<string, number>> = {}, act: Record<string, Record<string, number>> = {};
  for (const n of names) {
    weight[n] = steps();
    act[n] = steps();
  }
  return { weight, act, layerNames: names, path: `${table.model}-seed${seed}.json`, sha256: '0'.repeat(64) };
}

/** `layers` convolutions of random shape (weights 64..262k, 1..3,136 output positions), stem and classifier fixed at 8 bits. */
export function cnnTable(layers: number, seed: number): LayerTable {
  const rng = new Prng(seed);
  const conv = (name: string): Layer => {
    const params = 64 * (1 + rng.int(4096));
    return { name, kind: 'conv', params, macs: params * (1 + rng.int(3136)) };
  };
  return {
    model: `cnn-${layers}`,
    layers: Array.from({ length: layers }, (_, i) => conv(`conv${i}`)),
    fixed: [{ ...conv('stem'), weightBits: 8, actBits: 8 }, { ...conv('fc'), weightBits: 8, actBits: 8 }],
  };
}
