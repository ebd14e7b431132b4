/**
 * Layer tables of tfjs LayersModel files (`model.json`, as `model.save()` and tensorflowjs_converter
 * write them), read as plain JSON so that `mpq search` never loads tfjs. Feature-map shapes are
 * propagated from the input shape through every layer with Keras's arithmetic; each Conv2D,
 * DepthwiseConv2D, Dense (one row) and SeparableConv2D (two rows: depthwise, pointwise) becomes a
 * layer-table row with its weight count and per-sample MACs. Kernel shapes in `weightsManifest`,
 * when present, are checked against the derived ones.
 */
import { basename, dirname, resolve } from 'node:path';
import * as v from 'valibot';
import { UserError } from '../util/errors.js';
import { readJsonFile } from '../util/json-file.js';
import { describeIssues, nonNegativeInteger as count, parseWithSchema } from '../util/schema.js';
import { convLayer, tableWithFixedEnds, type Layer, type LayerTable } from './layer.js';

/** A tensor shape without the batch axis. */
type Shape = number[];

const positive = v.pipe(v.number(), v.integer('expected an integer'), v.minValue(1, 'expected a positive integer'));
const pair = v.pipe(
  v.union([positive, v.tuple([positive, positive])], 'expected n or [rows, cols] (positive integers)'),
  v.transform((x): [number, number] => (typeof x === 'number' ? [x, x] : x)),
);
const dataFormat = v.optional(v.picklist(['channels_last', 'channels_first'], "expected 'channels_last' or 'channels_first'"), 'channels_last');
const padding = v.optional(v.picklist(['valid', 'same'], "expected 'valid' or 'same'"), 'valid');
/** ZeroPadding2D / Cropping2D amounts: n, [rows, cols] or [[top, bottom], [left, right]] */
const sides = v.pipe(
  v.union([count, v.tuple([count, count]), v.tuple([v.tuple([count, count]), v.tuple([count, count])])],
    'expected n, [rows, cols] or [[top, bottom], [left, right]] (integers ≥ 0)'),
  v.transform((x): [[number, number], [number, number]] => {
    if (typeof x === 'number') return [[x, x], [x, x]];
    if (typeof x[0] === 'number') return [[x[0], x[0]], [x[1] as number, x[1] as number]];
    return x as [[number, number], [number, number]];
  }),
);
const shape = v.optional(v.array(v.nullable(positive)));
const windowed = {
  kernel_size: pair, strides: v.optional(pair, [1, 1]), padding, data_format: dataFormat, dilation_rate: v.optional(pair, [1, 1]),
};

const configSchemas = {
  Conv2D: v.object({ ...windowed, filters: positive, groups: v.optional(positive, 1) }),
  DepthwiseConv2D: v.object({ ...windowed, depth_multiplier: v.optional(positive, 1) }),
  SeparableConv2D: v.object({ ...windowed, filters: positive, depth_multiplier: v.optional(positive, 1) }),
  Dense: v.object({ units: positive }),
  Pooling2D: v.object({ pool_size: v.optional(pair, [2, 2]), strides: v.nullish(pair), padding, data_format: dataFormat }),
  GlobalPooling2D: v.object({ data_format: dataFormat, keepdims: v.optional(v.boolean(), false) }),
  ZeroPadding2D: v.object({ padding: v.optional(sides, [[1, 1], [1, 1]]), data_format: dataFormat }),
  Cropping2D: v.object({ cropping: v.optional(sides, [[0, 0], [0, 0]]), data_format: dataFormat }),
  UpSampling2D: v.object({ size: v.optional(pair, [2, 2]), data_format: dataFormat }),
  Reshape: v.object({
    target_shape: v.pipe(v.array(v.pipe(v.number(), v.integer('expected an integer'), v.minValue(-1, 'expected an integer ≥ -1'))), v.minLength(1, 'expected at least one dimension')),
  }),
  Concatenate: v.object({ axis: v.optional(v.pipe(v.number(), v.integer('expected an integer')), -1) }),
  Input: v.object({ batch_input_shape: shape, batch_shape: shape }),
};

/** Layers that change neither shape nor weight count the search sees. */
const ELEMENTWISE = new Set([
  'Activation', 'ReLU', 'LeakyReLU', 'PReLU', 'ELU', 'ThresholdedReLU', 'Softmax', 'BatchNormalization',
  'LayerNormalization', 'Dropout', 'SpatialDropout1D', 'SpatialDropout2D', 'AlphaDropout', 'GaussianNoise',
  'GaussianDropout', 'Masking', 'Rescaling', 'Identity', 'ActivityRegularization',
]);
const MERGE = new Set(['Add', 'Subtract', 'Multiply', 'Average', 'Maximum', 'Minimum']);
const POOLING = new Set(['MaxPooling2D', 'AveragePooling2D', 'MaxPool2D', 'AvgPool2D', 'AveragePool2D']);
const GLOBAL_POOLING = new Set(['GlobalAveragePooling2D', 'GlobalMaxPooling2D', 'GlobalAvgPool2D', 'GlobalMaxPool2D']);
const SHAPING = ['Flatten', 'Reshape', 'ZeroPadding2D', 'Cropping2D', 'UpSampling2D', 'Concatenate', 'InputLayer'];
const SUPPORTED = [
  'Conv2D', 'DepthwiseConv2D', 'SeparableConv2D', 'Dense', ...POOLING, ...GLOBAL_POOLING, ...SHAPING, ...MERGE, ...ELEMENTWISE,
];

const layerSchema = v.object({
  class_name: v.string(),
  name: v.optional(v.string()),
  config: v.record(v.string(), v.unknown()),
  inbound_nodes: v.optional(v.array(v.unknown())),
});
const topologySchema = v.object({
  class_name: v.string(),
  config: v.union([
    v.array(layerSchema),
    v.object({
      name: v.optional(v.string()),
      layers: v.array(layerSchema),
      input_layers: v.optional(v.unknown()),
      build_input_shape: shape,
    }),
  ], 'expected a list of layers or an object with layers'),
});
const fileSchema = v.object({
  modelTopology: v.looseObject({ model_config: v.optional(topologySchema) }),
  weightsManifest: v.optional(v.array(v.object({
    weights: v.array(v.object({ name: v.string(), shape: v.array(count) })),
  }))),
});

type LayerJson = v.InferOutput<typeof layerSchema>;

/** True for parsed JSON that is a tfjs model file (it has `modelTopology`) rather than a layer table. */

export interface TfjsImportOptions {
  /** first and last table layer at 8/8 bits (LIMPQ's default); false: every layer searchable */
  fixFirstLast?: boolean;
}

/** Read a tfjs `model.json` and derive its layer table. */
export function readTfjsLayerTable(path: string, opts: TfjsImportOptions = {}): LayerTable {
  return tfjsLayerTable(readJsonFile(path, 'tfjs model'), path, opts);
}

/**
 * The layer table of parsed tfjs model JSON (`path` names the file in errors). The model is named
 * after the file (after its directory for `model.json`, tfjs's one-model-per-directory layout).
 */
export function tfjsLayerTable(data: unknown, path: string, opts: TfjsImportOptions = {}): LayerTable {
  if ((data as { format?: unknown }).format === 'graph-model') {
    throw new UserError(`${path}: a tfjs graph model (format 'graph-model') has no layers to read; export a LayersModel (format 'layers-model')`);
  }
  const parsed = parseWithSchema(fileSchema, data, path);
  const rawTopology = parsed.modelTopology.model_config ?? parsed.modelTopology;
  const field = parsed.modelTopology.model_config ? 'modelTopology.model_config' : 'modelTopology';
  const topology = v.safeParse(topologySchema, rawTopology);
  if (!topology.success) throw new UserError(`${path}: ${field}.${describeIssues(topology.issues)}`);
  const manifest = new Map<string, number[]>();
  for (const group of parsed.weightsManifest ?? []) for (const w of group.weights) manifest.set(w.name, w.shape);

  const importer = new Importer(path, manifest);
  const { class_name: kind, config } = topology.output;
  const layers = Array.isArray(config) ? config : config.layers;
  let input: Shape;
  if (kind === 'Sequential') {
    input = importer.sequential(layers, Array.isArray(config) ? undefined : config.build_input_shape);
  } else if (kind === 'Model' || kind === 'Functional') {
    input = importer.functional(layers);
  } else {
    throw new UserError(`${path}: ${field}.class_name: '${kind}' is not a LayersModel (expected Sequential, Model or Functional)`);
  }
  const rows = importer.rows();
  if (rows.length === 0) throw new UserError(`${path}: no Conv2D, DepthwiseConv2D, SeparableConv2D or Dense layer to quantize`);
  const fixFirstLast = opts.fixFirstLast ?? true;
  if (fixFirstLast && rows.length < 3) {
    throw new UserError(`${path}: ${rows.length} quantizable layer(s): with the first and last fixed at 8 bits none is left to search (--no-fix-first-last searches all)`);
  }
  const file = basename(path);
  const model = /^model\.json$/i.test(file) ? basename(dirname(resolve(path))) : file.replace(/\.json$/i, '');
  return tableWithFixedEnds(model, importer.tableInput(input), rows, { fixFirstLast });
}

/** Keras output length of a windowed op along one axis. */
function windowOutput(size: number, kernel: number, stride: number, dilation: number, pad: 'valid' | 'same'): number {
  const span = (kernel - 1) * dilation + 1;
  return pad === 'same' ? Math.ceil(size / stride) : Math.floor((size - span) / stride) + 1;
}

/** The shape propagation and table rows of one model file. */
class Importer {
  private readonly rowsByLayer = new Map<string, Layer[]>();
  private readonly order: string[] = [];
  /** data format of the first layer that states one: how the input shape reads as [c, h, w] */
  private inputFormat?: 'channels_last' | 'channels_first';

  constructor(private readonly path: string, private readonly manifest: Map<string, number[]>) {}

  rows(): Layer[] {
    return this.order.flatMap((name) => this.rowsByLayer.get(name) ?? []);
  }

  /** The table's [c, h, w] input, for an image input. */
  tableInput(input: Shape): number[] | undefined {
    if (input.length !== 3) return undefined;
    const [a, b, c] = input;
    return this.inputFormat === 'channels_first' ? [a, b, c] : [c, a, b];
  }

  sequential(layers: LayerJson[], buildInputShape?: Array<number | null>): Shape {
    if (layers.length === 0) throw new UserError(`${this.path}: the Sequential model has no layers`);
    const first = layers[0];
    const declared = this.batchShape(first) ?? buildInputShape;
    if (!declared) {
      throw new UserError(`${this.path}: layer '${this.nameOf(first, 0)}': no batch_input_shape (the input shape is needed to count MACs)`);
    }
    const input = this.inputShape(declared, this.nameOf(first, 0));
    let shape = input;
    layers.forEach((layer, i) => {
      if (layer.class_name === 'InputLayer') return;
      shape = this.apply(layer, this.nameOf(layer, i), [shape]);
    });
    return input;
  }

  functional(layers: LayerJson[]): Shape {
    const byName = new Map<string, LayerJson>();
    layers.forEach((layer, i) => byName.set(this.nameOf(layer, i), layer));
    const shapes = new Map<string, Shape>();
    const inputs: Shape[] = [];
    const visiting = new Set<string>();
    const shapeOf = (name: string): Shape => {
      const known = shapes.get(name);
      if (known) return known;
      const layer = byName.get(name);
      if (!layer) throw new UserError(`${this.path}: layer '${name}' is used as an input but not defined`);
      if (visiting.has(name)) throw new UserError(`${this.path}: layer '${name}' depends on itself`);
      visiting.add(name);
      let shape: Shape;
      if (layer.class_name === 'InputLayer') {
        const declared = this.batchShape(layer);
        if (!declared) throw new UserError(`${this.path}: layer '${name}' (InputLayer): no batch_input_shape`);
        shape = this.inputShape(declared, name);
        inputs.push(shape);
      } else {
        shape = this.apply(layer, name, this.inboundNames(layer, name).map(shapeOf));
      }
      visiting.delete(name);
      shapes.set(name, shape);
      return shape;
    };
    // in listed order (Keras lists layers topologically), so table rows are in forward order
    for (const name of byName.keys()) shapeOf(name);
    if (inputs.length === 0) throw new UserError(`${this.path}: the model has no InputLayer`);
    return inputs[0];
  }

  private nameOf(layer: LayerJson, index: number): string {
    const name = layer.name ?? layer.config.name;
    return typeof name === 'string' && name !== '' ? name : `layer ${index}`;
  }

  private batchShape(layer: LayerJson): Array<number | null> | undefined {
    const c = this.config('Input', layer, this.nameOf(layer, 0));
    return c.batch_input_shape ?? c.batch_shape;
  }

  private inputShape(batchShape: Array<number | null>, name: string): Shape {
    const shape = batchShape.slice(1);
    if (shape.length === 0 || shape.some((d) => d === null)) {
      throw new UserError(`${this.path}: layer '${name}': input shape [${batchShape.map(String).join(', ')}] has unknown dimensions (MACs need a fixed input size)`);
    }
    return shape as Shape;
  }

  /** Names of the layers feeding `layer`: Keras 2 nodes ([[name, node, tensor, kwargs], …]) or Keras 3 (`keras_history`). */
  private inboundNames(layer: LayerJson, name: string): string[] {
    const nodes = layer.inbound_nodes ?? [];
    if (nodes.length !== 1) {
      throw new UserError(`${this.path}: layer '${name}' is applied ${nodes.length} times; shared or unconnected layers are not supported`);
    }
    const names: string[] = [];
    const visit = (v: unknown): void => {
      if (Array.isArray(v)) {
        if (typeof v[0] === 'string' && typeof v[1] === 'number') names.push(v[0]);
        else v.forEach(visit);
      } else if (typeof v === 'object' && v !== null) {
        const history = (v as { config?: { keras_history?: unknown } }).config?.keras_history;
        if (Array.isArray(history) && typeof history[0] === 'string') names.push(history[0]);
        else Object.values(v).forEach(visit);
      }
    };
    visit(nodes[0]);
    if (names.length === 0) throw new UserError(`${this.path}: layer '${name}': inbound_nodes name no input layer`);
    return names;
  }

  private config<K extends keyof typeof configSchemas>(key: K, layer: LayerJson, name: string): v.InferOutput<(typeof configSchemas)[K]> {
    const parsed = v.safeParse(configSchemas[key] as v.GenericSchema, layer.config);
    if (!parsed.success) throw new UserError(`${this.path}: layer '${name}' (${layer.class_name}): config.${describeIssues(parsed.issues)}`);
    const config = parsed.output as v.InferOutput<(typeof configSchemas)[K]>;
    if ('data_format' in config) this.inputFormat ??= config.data_format;
    return config;
  }

  private fail(layer: LayerJson, name: string, message: string): never {
    throw new UserError(`${this.path}: layer '${name}' (${layer.class_name}): ${message}`);
  }

  /** [h, w, c] of an image tensor in the layer's data format. */
  private image(shape: Shape, format: 'channels_last' | 'channels_first', layer: LayerJson, name: string): [number, number, number] {
    if (shape.length !== 3) this.fail(layer, name, `expects an image (3 dimensions besides the batch), got [${shape.join(', ')}]`);
    const [a, b, c] = shape;
    return format === 'channels_last' ? [a, b, c] : [b, c, a];
  }

  private imageShape(h: number, w: number, c: number, format: 'channels_last' | 'channels_first'): Shape {
    return format === 'channels_last' ? [h, w, c] : [c, h, w];
  }

  /** Checks a kernel's shape in weightsManifest (found by its name, with or without a scope prefix). */
  private checkWeight(layer: string, weight: string, expected: number[]): void {
    const key = `${layer}/${weight}`;
    let shape = this.manifest.get(key);
    if (!shape) for (const [k, s] of this.manifest) if (k.endsWith(`/${key}`)) shape = s;
    if (shape && (shape.length !== expected.length || shape.some((d, i) => d !== expected[i]))) {
      throw new UserError(`${this.path}: weightsManifest: '${key}' has shape [${shape.join(', ')}], but the layer's input makes it [${expected.join(', ')}]`);
    }
  }

  private addRows(name: string, rows: Layer[]): void {
    this.rowsByLayer.set(name, rows);
  }

  /** Output shape of one layer; table rows for the conv/dense ones. */
  private apply(layer: LayerJson, name: string, inputs: Shape[]): Shape {
    this.order.push(name);
    const cls = layer.class_name;
    const [x] = inputs;
    if (MERGE.has(cls)) {
      const mismatch = inputs.find((s) => s.length !== x.length || s.some((d, i) => d !== x[i]));
      if (mismatch) this.fail(layer, name, `inputs of different shapes [${x.join(', ')}] and [${mismatch.join(', ')}]`);
      return x;
    }
    if (cls === 'Concatenate') {
      const { axis } = this.config('Concatenate', layer, name);
      const a = axis < 0 ? x.length + axis : axis - 1; // Keras counts the batch axis
      if (a < 0 || a >= x.length) this.fail(layer, name, `axis ${axis} is out of range for [${x.join(', ')}]`);
      const out = [...x];
      for (const s of inputs.slice(1)) {
        if (s.length !== x.length || s.some((d, i) => i !== a && d !== x[i])) this.fail(layer, name, `cannot concatenate [${x.join(', ')}] and [${s.join(', ')}] on axis ${axis}`);
        out[a] += s[a];
      }
      return out;
    }
    if (inputs.length !== 1) this.fail(layer, name, `expects one input, got ${inputs.length}`);
    if (ELEMENTWISE.has(cls)) return x;
    if (cls === 'Flatten') return [x.reduce((a, b) => a * b, 1)];
    if (cls === 'Reshape') return this.reshape(layer, name, x);
    if (cls === 'Dense') return this.dense(layer, name, x);
    if (cls === 'Conv2D' || cls === 'DepthwiseConv2D' || cls === 'SeparableConv2D') return this.conv(layer, name, x);
    if (POOLING.has(cls)) {
      const c = this.config('Pooling2D', layer, name);
      const [h, w, ch] = this.image(x, c.data_format, layer, name);
      const strides = c.strides ?? c.pool_size;
      const oh = windowOutput(h, c.pool_size[0], strides[0], 1, c.padding);
      const ow = windowOutput(w, c.pool_size[1], strides[1], 1, c.padding);
      if (oh < 1 || ow < 1) this.fail(layer, name, `pool ${c.pool_size.join('x')} does not fit a ${h}x${w} input`);
      return this.imageShape(oh, ow, ch, c.data_format);
    }
    if (GLOBAL_POOLING.has(cls)) {
      const c = this.config('GlobalPooling2D', layer, name);
      const [, , ch] = this.image(x, c.data_format, layer, name);
      return c.keepdims ? this.imageShape(1, 1, ch, c.data_format) : [ch];
    }
    if (cls === 'ZeroPadding2D' || cls === 'Cropping2D') {
      const c = cls === 'ZeroPadding2D' ? this.config('ZeroPadding2D', layer, name) : this.config('Cropping2D', layer, name);
      const [[top, bottom], [left, right]] = 'padding' in c ? c.padding : c.cropping;
      const sign = cls === 'ZeroPadding2D' ? 1 : -1;
      const [h, w, ch] = this.image(x, c.data_format, layer, name);
      const oh = h + sign * (top + bottom);
      const ow = w + sign * (left + right);
      if (oh < 1 || ow < 1) this.fail(layer, name, `crops a ${h}x${w} input to nothing`);
      return this.imageShape(oh, ow, ch, c.data_format);
    }
    if (cls === 'UpSampling2D') {
      const c = this.config('UpSampling2D', layer, name);
      const [h, w, ch] = this.image(x, c.data_format, layer, name);
      return this.imageShape(h * c.size[0], w * c.size[1], ch, c.data_format);
    }
    if (cls === 'InputLayer') this.fail(layer, name, 'an InputLayer with an input');
    this.fail(layer, name, `class '${cls}' is not supported (supported: ${SUPPORTED.join(', ')})`);
  }

  private reshape(layer: LayerJson, name: string, x: Shape): Shape {
    const { target_shape: target } = this.config('Reshape', layer, name);
    const size = x.reduce((a, b) => a * b, 1);
    const known = target.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
    const unknown = target.filter((d) => d === -1).length;
    if (unknown > 1 || (unknown === 0 && known !== size) || (unknown === 1 && size % known !== 0)) {
      this.fail(layer, name, `cannot reshape [${x.join(', ')}] to [${target.join(', ')}]`);
    }
    return target.map((d) => (d === -1 ? size / known : d));
  }

  /** Dense acts on the last axis; MACs count every position of the leading axes. */
  private dense(layer: LayerJson, name: string, x: Shape): Shape {
    const { units } = this.config('Dense', layer, name);
    const inFeatures = x[x.length - 1];
    const positions = x.slice(0, -1).reduce((a, b) => a * b, 1);
    const params = inFeatures * units;
    this.checkWeight(name, 'kernel', [inFeatures, units]);
    const lead = x.slice(0, -1);
    this.addRows(name, [{
      name, kind: 'linear', inChannels: inFeatures, outChannels: units, kernel: [1, 1], stride: 1, groups: 1,
      outputSize: lead.length === 2 ? [lead[0], lead[1]] : [1, positions], params, macs: params * positions,
    }]);
    return [...lead, units];
  }

  private conv(layer: LayerJson, name: string, x: Shape): Shape {
    const cls = layer.class_name as 'Conv2D' | 'DepthwiseConv2D' | 'SeparableConv2D';
    const c = this.config(cls, layer, name);
    const [h, w, inChannels] = this.image(x, c.data_format, layer, name);
    const [kh, kw] = c.kernel_size;
    const [sh, sw] = c.strides;
    if ((sh > 1 || sw > 1) && (c.dilation_rate[0] > 1 || c.dilation_rate[1] > 1)) this.fail(layer, name, 'strides and dilation_rate cannot both exceed 1');
    const oh = windowOutput(h, kh, sh, c.dilation_rate[0], c.padding);
    const ow = windowOutput(w, kw, sw, c.dilation_rate[1], c.padding);
    if (oh < 1 || ow < 1) this.fail(layer, name, `kernel ${kh}x${kw} does not fit a ${h}x${w} input with padding '${c.padding}'`);
    const row = (rowName: string, cin: number, cout: number, k: [number, number], stride: number, groups: number): Layer =>
      convLayer({ name: rowName, inChannels: cin, outChannels: cout, kernel: k, stride, groups, outputSize: [oh, ow] });
    if ('groups' in c) {
      if (inChannels % c.groups !== 0 || c.filters % c.groups !== 0) this.fail(layer, name, `groups ${c.groups} must divide ${inChannels} input and ${c.filters} output channels`);
      this.checkWeight(name, 'kernel', [kh, kw, inChannels / c.groups, c.filters]);
      this.addRows(name, [row(name, inChannels, c.filters, [kh, kw], sh, c.groups)]);
      return this.imageShape(oh, ow, c.filters, c.data_format);
    }
    const mid = inChannels * c.depth_multiplier;
    this.checkWeight(name, 'depthwise_kernel', [kh, kw, inChannels, c.depth_multiplier]);
    const depthwise = row(cls === 'SeparableConv2D' ? `${name}/depthwise` : name, inChannels, mid, [kh, kw], sh, inChannels);
    if (!('filters' in c)) {
      this.addRows(name, [depthwise]);
      return this.imageShape(oh, ow, mid, c.data_format);
    }
    this.checkWeight(name, 'pointwise_kernel', [1, 1, mid, c.filters]);
    this.addRows(name, [depthwise, row(`${name}/pointwise`, mid, c.filters, [1, 1], 1, 1)]);
    return this.imageShape(oh, ow, c.filters, c.data_format);
  }
}
