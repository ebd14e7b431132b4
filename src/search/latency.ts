import { z } from 'zod';
import { canonicalLayerName } from '../indicators/indicators.js';
import { UserError } from '../util/errors.js';
import { parseWithSchema, readJsonFile } from '../util/json-file.js';

/**
 * A user's hardware cost table: per layer, a measured cost for each (weight bits, act bits) pair,
 * keyed `w<W>a<A>`. File shape: `{ "unit": "ms", "layers": { "layer1.0.conv1": { "w4a4": 0.12, … } } }`.
 */
export interface LatencyTable {
  unit: string;
  /** cost of a searchable layer at (w, a); a missing entry is an error naming layer and key */
  cost(layer: string, w: number, a: number): number;
  /** cost of a fixed layer at its bits; 0 when the table does not list the layer */
  fixedCost(layer: string, w: number, a: number): number;
}

const latencySchema = z.object({
  unit: z.string().default('ms'),
  layers: z.record(z.string(), z.record(z.string().regex(/^w\d+a\d+$/, 'keys look like w4a8'), z.number().finite().nonnegative())),
});

export function readLatencyTable(path: string): LatencyTable {
  const parsed = parseWithSchema(latencySchema, readJsonFile(path, 'latency table'), path);
  const byLayer = new Map(Object.entries(parsed.layers).map(([k, v]) => [canonicalLayerName(k), v]));
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
