/**
 * Seeded LLM-like search instances (issue 15): 7 linear layers per transformer block (q, k, v, o,
 * up, gate, down) with a 7B model's shapes (4096×4096, 4096×1024 for k and v, 4096×11008 for the
 * MLP), MACs = params × 128 tokens, the embedding and the head fixed at 8 bits, and LIMPQ-like
 * indicators s·2^(−b) with a lognormal s per layer and ±10% noise per entry.
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

/** LIMPQ-like indicators for the table's layers: s·2^(−b), s lognormal per layer and kind, ±10% noise. */
export function llmIndicators(table: LayerTable, seed: number, bits = LLM_BITS): LoadedIndicators {
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
  return { weight, act, layerNames: names, path: `llm-${table.layers.length}-seed${seed}.json`, sha256: '0'.repeat(64) };
}
