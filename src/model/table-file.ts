import { z } from 'zod';
import { UserError } from '../util/errors.js';
import { parseWithSchema, readJsonFile } from '../util/json-file.js';
import type { FixedLayer, Layer, LayerTable } from './layer.js';

const count = z.number().int('expected an integer').nonnegative('expected a count ≥ 0');
const layerSchema = z.object({
  name: z.string().min(1),
  params: count,
  macs: z.number().nonnegative().finite(),
  kind: z.enum(['conv', 'dwconv', 'linear']).optional(),
  in_channels: count.optional(),
  out_channels: count.optional(),
  kernel: z.tuple([count, count]).optional(),
  stride: count.optional(),
  groups: count.optional(),
  output_size: z.tuple([count, count]).optional(),
});
const bits = z.number().int().min(1).max(32);
const tableSchema = z.object({
  model: z.string().default('custom'),
  input: z.array(count).optional(),
  layers: z.array(layerSchema).min(1, 'expected at least one searchable layer'),
  fixed: z.array(layerSchema.extend({ weight_bits: bits, act_bits: bits })).default([]),
});

type LayerJson = z.infer<typeof layerSchema>;

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
