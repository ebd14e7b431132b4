import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as v from 'valibot';
import { UserError } from '../util/errors.js';
import { readJsonFile } from '../util/json-file.js';
import { jsonObject, parseWithSchema } from '../util/schema.js';
import type { ObjectiveTable } from './objective-table.js';

const tableSchema = jsonObject(v.object({
  meta: v.optional(v.record(v.string(), v.unknown())),
  act_bits: v.optional(v.pipe(v.number(), v.integer('expected a bit-width in 1..32'), v.minValue(1, 'expected a bit-width in 1..32'), v.maxValue(32, 'expected a bit-width in 1..32'))),
  layers: v.pipe(
    v.record(v.string(), v.record(
      v.pipe(v.string(), v.regex(/^w\d+(a\d+)?$/, 'keys look like w4a8, or w4 in a weight-only table')),
      v.pipe(v.number(), v.finite('expected a finite number')),
    )),
    v.check((layers) => Object.keys(layers).length > 0, 'expected at least one layer'),
  ),
}), 'expected a JSON object (an objective table)');

/** Read an objective table (see ObjectiveTable): every problem is one line naming the file and field. */
export function readObjectiveTable(path: string): ObjectiveTable {
  const parsed = parseWithSchema(tableSchema, readJsonFile(path, 'objective table'), path);
  const keys = Object.values(parsed.layers).flatMap((costs) => Object.keys(costs));
  const weightOnly = keys.length > 0 && keys.every((k) => !k.includes('a'));
  if (!weightOnly && keys.some((k) => !k.includes('a'))) {
    throw new UserError(`${path}: layers: keys mix w<W>a<A> and w<W>; a table is either per (weight, act) pair or weight-only`);
  }
  if (!weightOnly && parsed.act_bits !== undefined) throw new UserError(`${path}: act_bits: only a weight-only table (keys w<W>) fixes the activation bits`);
  return {
    kind: 'objective-table', path, sha256: createHash('sha256').update(readFileSync(path)).digest('hex'),
    ...(parsed.meta ? { meta: parsed.meta } : {}),
    layerNames: Object.keys(parsed.layers), costs: parsed.layers, weightOnly,
    ...(parsed.act_bits !== undefined ? { actBits: parsed.act_bits } : {}),
  };
}

