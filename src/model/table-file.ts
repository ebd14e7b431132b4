import * as v from 'valibot';
import { bitsProblem, FULL_PRECISION_BITS, SUPPORTED_BITS } from '../quant/bits.js';
import { UserError } from '../util/errors.js';
import { readJsonFile } from '../util/json-file.js';
import { jsonObject, parseWithSchema } from '../util/schema.js';
import type { FixedLayer, Layer, LayerTable } from './layer.js';

const count = v.pipe(v.number(), v.integer('expected an integer'), v.minValue(0, 'expected a count ≥ 0'));
const layerEntries = {
  name: v.pipe(v.string(), v.minLength(1, 'expected a non-empty name')),
  params: count,
  macs: v.pipe(v.number(), v.minValue(0, 'expected a number ≥ 0'), v.finite('expected a finite number')),
  kind: v.optional(v.picklist(['conv', 'dwconv', 'linear'], "expected 'conv', 'dwconv' or 'linear'")),
  in_channels: v.optional(count),
  out_channels: v.optional(count),
  kernel: v.optional(v.tuple([count, count])),
  stride: v.optional(count),
  groups: v.optional(count),
  output_size: v.optional(v.tuple([count, count])),
};
const layerSchema = v.object(layerEntries);
const BITS_MESSAGE = `expected a bit-width in ${SUPPORTED_BITS.min}..${SUPPORTED_BITS.max} or ${FULL_PRECISION_BITS} (full precision)`;
const bits = v.pipe(v.number(BITS_MESSAGE), v.check((b) => bitsProblem(b, SUPPORTED_BITS, { fullPrecision: true }) === undefined, BITS_MESSAGE));
const tableSchema = jsonObject(v.object({
  model: v.optional(v.string(), 'custom'),
  input: v.optional(v.array(count)),
  layers: v.pipe(v.array(layerSchema), v.minLength(1, 'expected at least one searchable layer')),
  fixed: v.optional(v.array(v.object({ ...layerEntries, weight_bits: bits, act_bits: bits })), []),
}), 'expected a JSON object (a layer table)');

type LayerJson = v.InferOutput<typeof layerSchema>;

function fromJson(l: LayerJson): Layer {
  const out: Layer = { name: l.name, params: l.params, macs: l.macs };
  if (l.kind) out.kind = l.kind;
  if (l.in_channels !== undefined) out.inChannels = l.in_channels;
  if (l.out_channels !== undefined) out.outChannels = l.out_channels;
  if (l.kernel) out.kernel = l.kernel;
  if (l.stride !== undefined) out.stride = l.stride;
  if (l.groups !== undefined) out.groups = l.groups;
  if (l.output_size) out.outputSize = l.output_size;
  return out;
}

/**
 * A layer table from JSON: `{ model, input?, layers: [{name, params, macs, …}], fixed: [{…,
 * weight_bits, act_bits}] }` (the shape of LIMPQ's reference arithmetic). This is how users bring
 * any model and any cost model.
 */
export function readLayerTable(path: string): LayerTable {
  return layerTableFrom(readJsonFile(path, 'layer table'), path);
}

/** A layer table from parsed JSON (`path` names the file in errors). */
export function layerTableFrom(data: unknown, path: string): LayerTable {
  const t = parseWithSchema(tableSchema, data, path);
  const names = [...t.layers, ...t.fixed].map((l) => l.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) throw new UserError(`${path}: layer '${dup}' appears twice`);
  const fixed: FixedLayer[] = t.fixed.map((l) => ({ ...fromJson(l), weightBits: l.weight_bits, actBits: l.act_bits }));
  return { model: t.model, ...(t.input ? { input: t.input } : {}), layers: t.layers.map(fromJson), fixed };
}
