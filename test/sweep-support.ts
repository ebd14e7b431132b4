import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Prng } from '../src/util/prng.js';
import type { BudgetPoint } from '../src/search/spec.js';

/** Ten values from `from` in steps of `step`, as the bench writes them on the command line. */
const ten = (from: number, step: number) => Array.from({ length: 10 }, (_, i) => +(from + i * step).toFixed(2));

/** The 1,000-point grid of the bench sweep (bench/search.ts): 10 × 10 × 10 of --wb, --ab, --cr. */
export const BENCH_LISTS = { wb: ten(2, 0.25), ab: ten(2.5, 0.3), cr: ten(8, 0.5) };

export function benchGrid(): BudgetPoint[] {
  return BENCH_LISTS.wb.flatMap((wb) => BENCH_LISTS.ab.flatMap((ab) => BENCH_LISTS.cr.map((cr) => ({ weightBits: wb, actBits: ab, cr }))));
}

/** The same grid as `mpq sweep` flags. */
export function benchGridArgs(): string[] {
  return (['wb', 'ab', 'cr'] as const).flatMap((k) => [`--${k}`, ...BENCH_LISTS[k].map(String)]);
}

/**
 * A search input slow enough to interrupt: 60 layers whose indicators are less regular than
 * LIMPQ's, so most of a 1,000-point grid is searched afresh (seconds, not a fraction of one).
 */
export function writeSlowSearchInputs(dir: string): { model: string; indicators: string } {
  const rng = new Prng(7);
  const layers = Array.from({ length: 60 }, (_, i) => ({ name: `l${i}`, params: 64 * (1 + rng.int(4096)), macs: 1000 * (1 + rng.int(100000)) }));
  const steps = (base: number) => Object.fromEntries([6, 5, 4, 3, 2].map((b) => [String(b), base * 2 ** -b * (0.8 + 0.4 * rng.next())]));
  const model = join(dir, 'slow.json');
  const indicators = join(dir, 'slow-ind.json');
  writeFileSync(model, JSON.stringify({ model: 'slow', layers, fixed: [] }));
  writeFileSync(indicators, JSON.stringify({
    weight: Object.fromEntries(layers.map((l) => [l.name, steps(1 + rng.next())])),
    act: Object.fromEntries(layers.map((l) => [l.name, steps(1 + 3 * rng.next())])),
    layer_name: layers.map((l) => l.name),
  }));
  return { model, indicators };
}
