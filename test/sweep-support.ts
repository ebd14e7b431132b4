import type { BudgetPoint } from '../src/search/spec.js';

/** Ten values from `from` in steps of `step`, as the bench writes them on the command line. */
const ten = (from: number, step: number) => Array.from({ length: 10 }, (_, i) => +(from + i * step).toFixed(2));

/** The 1,000-point grid of the bench sweep (bench/search.ts): 10 × 10 × 10 of --wb, --ab, --cr. */
export const BENCH_LISTS = { wb: ten(2, 0.25), ab: ten(2.5, 0.3), cr: ten(8, 0.5) };

export function benchGrid(): BudgetPoint[] {
  return BENCH_LISTS.wb.flatMap((wb) => BENCH_LISTS.ab.flatMap((ab) => BENCH_LISTS.cr.map((cr) => ({ wb, ab, cr }))));
}

/** The same grid as `mpq sweep` flags. */
export function benchGridArgs(): string[] {
  return (['wb', 'ab', 'cr'] as const).flatMap((k) => [`--${k}`, ...BENCH_LISTS[k].map(String)]);
}
