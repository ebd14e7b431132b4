import type { LoadedIndicators } from '../src/indicators/indicators.js';
import type { LayerTable } from '../src/model/layer.js';
import type { CostTable } from '../src/search/cost-table.js';
import type { ObjectiveTable } from '../src/search/objective-table.js';
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
    weightBits: between(),
    actBits: between(),
    cr: mode === 0 ? 0 : 32 / between(),
  };
  return { table, ind, opts, f: formulate(table, ind, opts) };
}

/** A cost table in memory: a cost per layer and (w, a) pair, like a measured latency or energy table. */
function randomCostTable(rng: Prng, layers: { name: string; macs: number }[], unit: string): CostTable {
  const costs = new Map(layers.map((l) => [l.name, (w: number, a: number) => (l.macs / 1e6) * (0.3 + w * a * (0.5 + rng.next()) / 64)]));
  const memo = new Map<string, number>();
  const cost = (layer: string, w: number, a: number) => {
    const key = `${layer}/${w}/${a}`;
    if (!memo.has(key)) memo.set(key, costs.get(layer)!(w, a));
    return memo.get(key)!;
  };
  return { unit, cost, fixedCost: () => 0 };
}

/**
 * A random instance with three or four budget rows (BitOps, size, a latency table and, every other
 * seed, a user cost table), scored by indicators or by an objective table of (w, a) pairs.
 */
export function randomMultiRowInstance(seed: number): { f: FormulatedSearch } {
  const base = randomInstance(seed);
  const rng = new Prng(seed ^ 0x5eed);
  const { table, ind, opts } = base;
  const latency = randomCostTable(rng, table.layers, 'ms');
  const fullCost = (t: CostTable) => table.layers.reduce((s, l) => s + t.cost(l.name, opts.bits[0], opts.bits[0]), 0);
  const withRows: SearchOptions = {
    ...opts, bops: true, cr: opts.cr || 32 / opts.bits[1 % opts.bits.length],
    latency: { table: latency, max: fullCost(latency) * (0.3 + 0.6 * rng.next()) },
  };
  if (seed % 2 === 0) {
    const energy = randomCostTable(rng, table.layers, 'mJ');
    withRows.cost = { table: energy, max: fullCost(energy) * (0.3 + 0.6 * rng.next()) };
  }
  if (seed % 3 !== 0) return { f: formulate(table, ind, withRows) };
  // an objective table: a HAWQ-like trace x perturbation per pair, some of it not monotone
  const costs: Record<string, Record<string, number>> = {};
  for (const l of table.layers) {
    const trace = Math.exp(rng.normal());
    costs[l.name] = Object.fromEntries(opts.bits.flatMap((w) => opts.bits.map((a) => [`w${w}a${a}`, trace * (4 ** -w + 0.5 * 4 ** -a) * (0.8 + 0.4 * rng.next())])));
  }
  const objective: ObjectiveTable = { kind: 'objective-table', path: `random-${seed}-objective.json`, sha256: '0'.repeat(64), layerNames: table.layers.map((l) => l.name), costs, weightOnly: false };
  return { f: formulate(table, objective, withRows) };
}
