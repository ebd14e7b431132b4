import type { LoadedIndicators } from '../src/indicators/indicators.js';
import type { LayerTable } from '../src/model/layer.js';
import { formulate, type FormulatedSearch, type SearchOptions } from '../src/search/problem.js';
import { Prng } from '../src/util/prng.js';

/**
 * A random search instance shaped like the real ones: step sizes that grow as bits shrink (with
 * some non-monotone "wired points"), MACs and params over orders of magnitude, BitOps and/or
 * compression budgets from loose to infeasible.
 */
export function randomInstance(seed: number): { table: LayerTable; ind: LoadedIndicators; opts: SearchOptions; f: FormulatedSearch } {
  const rng = new Prng(seed);
  const n = 5 + rng.int(76);
  const pool = [8, 7, 6, 5, 4, 3, 2];
  const bits = rng.shuffle([...pool]).slice(0, 2 + rng.int(3)).sort((a, b) => b - a);
  const layers = Array.from({ length: n }, (_, i) => ({
    name: `layer${i}`,
    params: 64 * (1 + rng.int(4096)),
    macs: 1000 * (1 + rng.int(100000)),
  }));
  const fixed = Array.from({ length: rng.int(3) }, (_, i) => ({ name: `fixed${i}`, params: 1 + rng.int(50000), macs: 1 + rng.int(1e6), weightBits: 8, actBits: 8 }));
  const table: LayerTable = { model: `random-${seed}`, layers, fixed };
  const steps = (base: number) => {
    const out: Record<string, number> = {};
    for (const b of bits) out[String(b)] = base * 2 ** -b * (0.6 + 0.8 * rng.next());
    if (rng.next() < 0.15) {
      // a wired point: some lower candidate below its higher neighbour
      const i = 1 + rng.int(bits.length - 1);
      out[String(bits[i])] = out[String(bits[i - 1])] * (0.5 + 0.45 * rng.next());
    }
    return out;
  };
  const ind: LoadedIndicators = {
    weight: Object.fromEntries(layers.map((l) => [l.name, steps(1 + rng.next())])),
    act: Object.fromEntries(layers.map((l) => [l.name, steps(1 + 3 * rng.next())])),
    layerNames: layers.map((l) => l.name),
    path: `random-${seed}.json`,
    sha256: '0'.repeat(64),
  };
  const lo = bits[bits.length - 1], hi = bits[0];
  const mode = rng.int(3); // 0: BitOps, 1: size, 2: both
  const between = () => lo + (hi - lo) * (rng.next() * 1.1 - 0.05);
  const opts: SearchOptions = {
    bits,
    alpha: rng.choice([0.5, 1, 2, 4]),
    bops: mode !== 1,
    wb: between(),
    ab: between(),
    cr: mode === 0 ? 0 : 32 / between(),
  };
  return { table, ind, opts, f: formulate(table, ind, opts) };
}
