import * as v from 'valibot';
import { canonicalLayerName } from '../indicators/indicators.js';
import { UserError } from '../util/errors.js';
import { readJsonFile } from '../util/json-file.js';
import { jsonObject, parseWithSchema } from '../util/schema.js';
import { MAX_COUNT } from './problem.js';

/**
 * A user's per-layer cost table for a budget row: per layer, a measured cost (latency, energy, …)
 * for each (weight bits, act bits) pair, keyed `w<W>a<A>`. File shape:
 * `{ "unit": "ms", "layers": { "layer1.0.conv1": { "w4a4": 0.12, … } } }`.
 */
export interface CostTable {
  unit: string;
  /** cost of a searchable layer at (w, a); a missing entry is an error naming layer and key */
  cost(layer: string, w: number, a: number): number;
  /** cost of a fixed layer at its bits; 0 when the table does not list the layer */
  fixedCost(layer: string, w: number, a: number): number;
}

const costTableSchema = jsonObject(v.object({
  unit: v.optional(v.string(), 'ms'),
  layers: v.record(v.string(), v.record(
    v.pipe(v.string(), v.regex(/^w\d+a\d+$/, 'keys look like w4a8')),
    v.pipe(v.number(), v.finite('expected a finite number'), v.minValue(0, 'expected a cost ≥ 0'), v.maxValue(MAX_COUNT, `expected a cost ≤ ${MAX_COUNT.toExponential()}`)),
  )),
}), 'expected a JSON object (a cost table)');

/** Read a cost table (`what`: 'latency table' or 'cost table', for messages). */
export function readCostTable(path: string, what: string): CostTable {
  const parsed = parseWithSchema(costTableSchema, readJsonFile(path, what), path);
  const byLayer = new Map(Object.entries(parsed.layers).map(([name, costs]) => [canonicalLayerName(name), costs]));
  const lookup = (layer: string, w: number, a: number) => byLayer.get(canonicalLayerName(layer))?.[`w${w}a${a}`];
  return {
    unit: parsed.unit,
    cost(layer, w, a) {
      const v = lookup(layer, w, a);
      if (v === undefined) throw new UserError(`${path}: layers['${layer}']: no entry 'w${w}a${a}'`);
      return v;
    },
    fixedCost(layer, w, a) {
      return lookup(layer, w, a) ?? 0;
    },
  };
}
