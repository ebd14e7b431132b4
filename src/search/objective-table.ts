import { matchIndicatorLayers, type WiredPoint } from '../indicators/indicators.js';
import { UserError } from '../util/errors.js';

/**
 * Any per-layer sensitivity as the search's objective, in place of LIMPQ's indicators: per layer,
 * a cost for each (weight bits, act bits) pair (`w4a8`), or for each weight bit-width alone (`w4`)
 * in a weight-only table, whose activations stay at `act_bits` (default: the largest of --bits).
 * The search minimises the sum over layers. File shape (the latency table's):
 * `{ "meta": {…}, "act_bits": 16, "layers": { "layer1.0.conv1": { "w4a4": 0.12, … } } }`
 * (read by objective-table-file.ts, loaded only when a table is given: its schema checks load valibot).
 */
export interface ObjectiveTable {
  kind: 'objective-table';
  path: string;
  sha256: string;
  meta?: Record<string, unknown>;
  /** searchable layer names, as the file lists them */
  layerNames: string[];
  /** per layer name (as listed), its costs by key */
  costs: Record<string, Record<string, number>>;
  /** keys are `w<W>` and activations are not searched */
  weightOnly: boolean;
  /** a weight-only table's activation bit-width, when the file gives it */
  actBits?: number;
}

export function isObjectiveTable(x: unknown): x is ObjectiveTable {
  return typeof x === 'object' && x !== null && (x as { kind?: unknown }).kind === 'objective-table';
}

/** One layer's choices from an objective table: candidate (w, a) pairs with their costs, wired points left out unless kept. */
export function tableChoices(
  t: ObjectiveTable, layer: string, wBits: number[], aBits: number[], keepWired: boolean,
): { choices: { w: number; a: number; cost: number }[]; removed: WiredPoint[] } {
  const costs = t.costs[layer];
  const key = (w: number, a: number) => (t.weightOnly ? `w${w}` : `w${w}a${a}`);
  const acts = t.weightOnly ? [t.actBits ?? Math.max(...aBits)] : [...aBits].sort((x, y) => y - x);
  const weights = [...wBits].sort((x, y) => y - x);
  const at = (w: number, a: number) => {
    const c = costs[key(w, a)];
    if (c === undefined) throw new UserError(`${t.path}: layers['${layer}']: no entry '${key(w, a)}'`);
    return c;
  };
  const removed: WiredPoint[] = [];
  const choices: { w: number; a: number; cost: number }[] = [];
  for (const [wi, w] of weights.entries()) {
    for (const [ai, a] of acts.entries()) {
      const cost = at(w, a);
      // a wired point: cheaper than the same choice with the next higher weight (or act) bits
      const higher = wi > 0 && cost < at(weights[wi - 1], a) ? { kind: 'weight' as const, bits: weights[wi - 1], value: at(weights[wi - 1], a) }
        : ai > 0 && cost < at(w, acts[ai - 1]) ? { kind: 'act' as const, bits: acts[ai - 1], value: at(w, acts[ai - 1]) } : null;
      if (higher && !keepWired) {
        removed.push({ layer, kind: higher.kind, bits: higher.kind === 'weight' ? w : a, value: cost, higherBits: higher.bits, higherValue: higher.value, ...(t.weightOnly ? {} : { at: higher.kind === 'weight' ? a : w }) });
        continue;
      }
      choices.push({ w, a, cost });
    }
  }
  return { choices, removed };
}

/** The table's layer for each model layer (names match as indicators' do). */
export function matchTableLayers(t: ObjectiveTable, modelLayers: string[], modelName: string): string[] {
  return matchIndicatorLayers(t, modelLayers, modelName);
}
