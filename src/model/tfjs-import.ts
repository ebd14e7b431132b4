/**
 * tfjs LayersModel files (`model.json` and its weight shards, as `model.save()` and
 * tensorflowjs_converter write them) as mpq graphs (src/model/graph.ts), read as plain JSON so
 * that `mpq search` never loads tfjs. Keras's `same` / `valid` arithmetic becomes explicit pads;
 * each Conv2D, DepthwiseConv2D and Dense is one node named after its layer, a SeparableConv2D two
 * (`name/depthwise`, `name/pointwise`); fused activations become nodes of their own. Layers the
 * training engine cannot run (upsampling, merges other than Add, …) are kept as opaque nodes of
 * known shape: such a model can be searched but not trained. With `weights`, the shards named by
 * `weightsManifest` are read into the graph (float32, float16, and tfjs's uint8/uint16 affine
 * quantization).
 */
import { existsSync } from 'node:fs';
import { dirname, resolve, sep } from 'node:path';
import * as v from 'valibot';
import { UserError } from '../util/errors.js';
import { readJsonFile } from '../util/json-file.js';
import { MAX_BINARY_INPUT_BYTES, readInputFile } from '../util/fs.js';
import { describeIssues, nonNegativeInteger as count, parseWithSchema } from '../util/schema.js';
import {
  ACTIVATIONS, GraphBuilder, GraphError, samePadding, windowOutput,
  type ActivationFn, type GraphModel, type NodeSpec, type Pads2d, type Shape,
} from './graph.js';
import { graphLayerTable, type LayerSelection } from './graph-table.js';
import type { LayerTable } from './layer.js';
import { modelName } from './names.js';

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
const activationName = v.optional(v.nullable(v.string()), 'linear');
const windowed = {
  kernel_size: pair, strides: v.optional(pair, [1, 1]), padding, data_format: dataFormat, dilation_rate: v.optional(pair, [1, 1]),
  use_bias: v.optional(v.boolean(), true), activation: activationName,
};

const configSchemas = {
  Conv2D: v.object({ ...windowed, filters: positive, groups: v.optional(positive, 1) }),
  DepthwiseConv2D: v.object({ ...windowed, depth_multiplier: v.optional(positive, 1) }),
  SeparableConv2D: v.object({ ...windowed, filters: positive, depth_multiplier: v.optional(positive, 1) }),
  Dense: v.object({ units: positive, use_bias: v.optional(v.boolean(), true), activation: activationName }),
  BatchNormalization: v.object({
    axis: v.optional(v.union([v.number(), v.array(v.number())]), -1), epsilon: v.optional(v.number(), 1e-3),
    center: v.optional(v.boolean(), true), scale: v.optional(v.boolean(), true),
  }),
  Activation: v.object({ activation: activationName }),
  ReLU: v.object({ max_value: v.optional(v.nullable(v.number())), negative_slope: v.optional(v.number(), 0), threshold: v.optional(v.number(), 0) }),
  LeakyReLU: v.object({ alpha: v.optional(v.number(), 0.3) }),
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

/** Layers that pass their input through unchanged at inference. */
const IDENTITY = new Set([
  'Dropout', 'SpatialDropout1D', 'SpatialDropout2D', 'AlphaDropout', 'GaussianNoise', 'GaussianDropout', 'Identity', 'ActivityRegularization',
]);
/** Layers that keep their input's shape but that the training engine does not run. */
const ELEMENTWISE_OPAQUE = new Set(['PReLU', 'ELU', 'ThresholdedReLU', 'LayerNormalization', 'Masking', 'Rescaling']);
const MERGE = new Set(['Add', 'Subtract', 'Multiply', 'Average', 'Maximum', 'Minimum']);
const POOLING: Record<string, 'maxpool' | 'avgpool'> = {
  MaxPooling2D: 'maxpool', MaxPool2D: 'maxpool', AveragePooling2D: 'avgpool', AvgPool2D: 'avgpool', AveragePool2D: 'avgpool',
};
const GLOBAL_POOLING: Record<string, 'globalavgpool' | 'globalmaxpool'> = {
  GlobalAveragePooling2D: 'globalavgpool', GlobalAvgPool2D: 'globalavgpool', GlobalMaxPooling2D: 'globalmaxpool', GlobalMaxPool2D: 'globalmaxpool',
};
const SHAPING = ['Flatten', 'Reshape', 'ZeroPadding2D', 'Cropping2D', 'UpSampling2D', 'Concatenate', 'InputLayer'];
const SUPPORTED = [
  'Conv2D', 'DepthwiseConv2D', 'SeparableConv2D', 'Dense', 'BatchNormalization', 'Activation', 'ReLU', 'LeakyReLU', 'Softmax',
  ...Object.keys(POOLING), ...Object.keys(GLOBAL_POOLING), ...SHAPING, ...MERGE, ...IDENTITY, ...ELEMENTWISE_OPAQUE,
];
/** Keras activation names → graph activations (others are kept as opaque nodes) */
const KERAS_ACTIVATIONS: Record<string, ActivationFn> = {
  relu: 'relu', relu6: 'relu6', sigmoid: 'sigmoid', tanh: 'tanh', softmax: 'softmax', elu: 'elu', gelu: 'gelu', swish: 'swish', silu: 'swish',
  hard_sigmoid: 'hardsigmoid', hardSigmoid: 'hardsigmoid', hard_swish: 'hardswish',
};

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
      output_layers: v.optional(v.unknown()),
      build_input_shape: shape,
    }),
  ], 'expected a list of layers or an object with layers'),
});
const weightEntry = v.object({
  name: v.string(),
  shape: v.array(count),
  dtype: v.optional(v.string(), 'float32'),
  quantization: v.optional(v.object({
    dtype: v.picklist(['uint8', 'uint16', 'float16'], "expected 'uint8', 'uint16' or 'float16'"),
    scale: v.optional(v.number()), min: v.optional(v.number()),
  })),
});
const fileSchema = v.object({
  modelTopology: v.looseObject({ model_config: v.optional(topologySchema) }),
  weightsManifest: v.optional(v.array(v.object({ paths: v.optional(v.array(v.string()), []), weights: v.array(weightEntry) }))),
});

type LayerJson = v.InferOutput<typeof layerSchema>;
type WeightEntry = v.InferOutput<typeof weightEntry>;
type Manifest = NonNullable<v.InferOutput<typeof fileSchema>['weightsManifest']>;

/** Which layers of the table are fixed (default: the first and last at 8/8 bits, as LIMPQ). */
export type TfjsImportOptions = LayerSelection;

/** Read a tfjs `model.json` and derive its layer table (no weights are read). */
export function readTfjsLayerTable(path: string, opts: TfjsImportOptions = {}): LayerTable {
  return tfjsLayerTable(readJsonFile(path, 'tfjs model'), path, opts);
}

/**
 * The layer table of parsed tfjs model JSON (`path` names the file in errors). The model is named
 * after the file (after its directory for `model.json`, tfjs's one-model-per-directory layout).
 */
export function tfjsLayerTable(data: unknown, path: string, opts: TfjsImportOptions = {}): LayerTable {
  return graphLayerTable(tfjsGraph(data, path).graph, path, opts);
}

/** A tfjs model file as a graph, with the weights of its shards (beside the file). */
export function readTfjsModel(path: string, opts: { weights?: boolean } = {}): GraphModel {
  return tfjsGraph(readJsonFile(path, 'tfjs model'), path, opts.weights ? { weightsDir: dirname(path) } : {});
}

/** Parsed tfjs model JSON as a graph; with `weightsDir`, its weight shards are read from there. */
export function tfjsGraph(data: unknown, path: string, opts: { weightsDir?: string } = {}): GraphModel {
  if ((data as { format?: unknown } | null)?.format === 'graph-model') {
    throw new UserError(`${path}: a tfjs graph model (format 'graph-model') has no layers to read; export a LayersModel (format 'layers-model')`);
  }
  const parsed = parseWithSchema(fileSchema, data, path);
  const rawTopology = parsed.modelTopology.model_config ?? parsed.modelTopology;
  const field = parsed.modelTopology.model_config ? 'modelTopology.model_config' : 'modelTopology';
  const topology = v.safeParse(topologySchema, rawTopology);
  if (!topology.success) throw new UserError(`${path}: ${field}.${describeIssues(topology.issues)}`);
  const manifest = parsed.weightsManifest ?? [];
  const weights = opts.weightsDir === undefined ? undefined : readWeightShards(path, opts.weightsDir, manifest);
  const { class_name: kind, config } = topology.output;
  const layers = Array.isArray(config) ? config : config.layers;
  const importer = new Importer(path, modelName(path), layers, manifest, weights);
  if (kind === 'Sequential') return importer.sequential(Array.isArray(config) ? undefined : config.build_input_shape);
  if (kind === 'Model' || kind === 'Functional') return importer.functional(Array.isArray(config) ? undefined : config.output_layers);
  throw new UserError(`${path}: ${field}.class_name: '${kind}' is not a LayersModel (expected Sequential, Model or Functional)`);
}

/** IEEE half → float. */
function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const fraction = h & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 31) return fraction ? NaN : sign * Infinity;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

const BYTES: Record<string, number> = { float32: 4, int32: 4, bool: 1, uint8: 1, uint16: 2, float16: 2 };

/**
 * Every weight of the manifest as float32, by its name: each group's shards are concatenated and
 * its weights read in order, as tfjs's loader does. A missing shard, or shards of the wrong size,
 * is one line naming the file.
 */
function readWeightShards(path: string, dir: string, manifest: Manifest): Map<string, Float32Array> {
  const weights = new Map<string, Float32Array>();
  manifest.forEach((group, g) => {
    const buffers = group.paths.map((p) => {
      const file = resolve(dir, p);
      if (!file.startsWith(resolve(dir) + sep)) throw new UserError(`${path}: weightsManifest[${g}].paths: '${p}' is outside the model's directory`);
      if (!existsSync(file)) throw new UserError(`${path}: weight shard ${file} is missing`);
      return readInputFile(file, 'weight shard', MAX_BINARY_INPUT_BYTES);
    });
    const bytes = Buffer.concat(buffers);
    const stored = (w: WeightEntry) => w.quantization?.dtype ?? w.dtype;
    const needed = group.weights.reduce((n, w) => n + (BYTES[stored(w)] ?? 0) * w.shape.reduce((a, b) => a * b, 1), 0);
    for (const w of group.weights) {
      if (BYTES[stored(w)] === undefined) throw new UserError(`${path}: weightsManifest: '${w.name}' has dtype '${stored(w)}' (expected float32, int32, float16, uint8 or uint16)`);
    }
    if (bytes.length !== needed) {
      throw new UserError(`${path}: weight shards of group ${g} (${group.paths.join(', ')}) hold ${bytes.length} bytes, the manifest needs ${needed}`);
    }
    let at = 0;
    for (const w of group.weights) {
      const n = w.shape.reduce((a, b) => a * b, 1);
      const dtype = stored(w);
      const view = new DataView(bytes.buffer, bytes.byteOffset + at, n * BYTES[dtype]);
      const values = new Float32Array(n);
      const { scale = 1, min = 0 } = w.quantization ?? {};
      for (let i = 0; i < n; i++) {
        if (dtype === 'float32') values[i] = view.getFloat32(4 * i, true);
        else if (dtype === 'int32') values[i] = view.getInt32(4 * i, true);
        else if (dtype === 'float16') values[i] = halfToFloat(view.getUint16(2 * i, true));
        else if (dtype === 'uint16') values[i] = view.getUint16(2 * i, true) * scale + min;
        else values[i] = view.getUint8(i) * (w.quantization ? scale : 1) + (w.quantization ? min : 0);
      }
      weights.set(w.name.replace(/:0$/, ''), values);
      at += n * BYTES[dtype];
    }
  });
  return weights;
}

/** The graph of one model file: layers → nodes in forward order, shapes, weights. */
class Importer {
  private readonly b: GraphBuilder;
  /** layer name → the node its output is */
  private readonly outputOf = new Map<string, string>();
  /** weight shapes by name, from the manifest */
  private readonly shapes = new Map<string, number[]>();
  private readonly format: 'channels_last' | 'channels_first';

  constructor(
    private readonly path: string,
    name: string,
    private readonly layers: LayerJson[],
    manifest: Manifest,
    private readonly weights?: Map<string, Float32Array>,
  ) {
    for (const group of manifest) for (const w of group.weights) this.shapes.set(w.name.replace(/:0$/, ''), w.shape);
    // the first layer that states a data format says how the input reads
    const stated = layers.map((l) => l.config.data_format).find((f) => f === 'channels_first' || f === 'channels_last');
    this.format = stated === 'channels_first' ? 'channels_first' : 'channels_last';
    this.b = new GraphBuilder(name, 'tfjs', this.format === 'channels_first' ? 'nchw' : 'nhwc');
  }

  sequential(buildInputShape?: Array<number | null>): GraphModel {
    const { layers } = this;
    if (layers.length === 0) throw new UserError(`${this.path}: the Sequential model has no layers`);
    const first = layers[0];
    const declared = this.batchShape(first) ?? buildInputShape;
    if (!declared) {
      throw new UserError(`${this.path}: layer '${this.nameOf(first, 0)}': no batch_input_shape (the input shape is needed to count MACs)`);
    }
    const names = layers.map((l, i) => this.nameOf(l, i));
    const inputName = first.class_name === 'InputLayer' ? names[0] : names.includes('input') ? 'input:0' : 'input';
    let at = this.addInput(inputName, declared, names[0]);
    layers.forEach((layer, i) => {
      if (layer.class_name === 'InputLayer') return;
      at = this.apply(layer, this.nameOf(layer, i), [at]);
    });
    return this.b.build(at);
  }

  functional(outputLayers: unknown): GraphModel {
    const byName = new Map<string, LayerJson>();
    this.layers.forEach((layer, i) => {
      const name = this.nameOf(layer, i);
      if (byName.has(name)) throw new UserError(`${this.path}: layer '${name}' is defined twice (layer names must be unique)`);
      byName.set(name, layer);
    });
    const visiting = new Set<string>();
    let inputs = 0;
    const visit = (name: string): string => {
      const done = this.outputOf.get(name);
      if (done) return done;
      const layer = byName.get(name);
      if (!layer) throw new UserError(`${this.path}: layer '${name}' is used as an input but not defined`);
      if (visiting.has(name)) throw new UserError(`${this.path}: layer '${name}' depends on itself`);
      visiting.add(name);
      let out: string;
      if (layer.class_name === 'InputLayer') {
        const declared = this.batchShape(layer);
        if (!declared) throw new UserError(`${this.path}: layer '${name}' (InputLayer): no batch_input_shape`);
        if (inputs++ > 0) throw new UserError(`${this.path}: layer '${name}': a second InputLayer (models with one input only)`);
        out = this.addInput(name, declared, name);
      } else {
        out = this.apply(layer, name, this.inboundNames(layer, name).map(visit));
      }
      visiting.delete(name);
      this.outputOf.set(name, out);
      return out;
    };
    // in listed order (Keras lists layers topologically), so nodes are in forward order
    for (const name of byName.keys()) visit(name);
    if (inputs === 0) throw new UserError(`${this.path}: the model has no InputLayer`);
    const named = Array.isArray(outputLayers) && Array.isArray(outputLayers[0]) ? outputLayers[0][0] : undefined;
    return this.b.build(typeof named === 'string' ? this.outputOf.get(named) : undefined);
  }

  private nameOf(layer: LayerJson, index: number): string {
    const name = layer.name ?? layer.config.name;
    return typeof name === 'string' && name !== '' ? name : `layer ${index}`;
  }

  private batchShape(layer: LayerJson): Array<number | null> | undefined {
    const c = this.config('Input', layer, this.nameOf(layer, 0));
    return c.batch_input_shape ?? c.batch_shape;
  }

  private addInput(node: string, batchShape: Array<number | null>, layer: string): string {
    const dims = batchShape.slice(1);
    if (dims.length === 0 || dims.some((d) => d === null)) {
      throw new UserError(`${this.path}: layer '${layer}': input shape [${batchShape.map(String).join(', ')}] has unknown dimensions (MACs need a fixed input size)`);
    }
    const shape = dims as Shape;
    const [a, b, c] = shape;
    return this.b.input(node, shape.length === 3 && this.format === 'channels_first' ? [b, c, a] : shape);
  }

  /** Names of the layers feeding `layer`: Keras 2 nodes ([[name, node, tensor, kwargs], …]) or Keras 3 (`keras_history`). */
  private inboundNames(layer: LayerJson, name: string): string[] {
    const nodes = layer.inbound_nodes ?? [];
    if (nodes.length !== 1) {
      throw new UserError(`${this.path}: layer '${name}' is applied ${nodes.length} times; shared or unconnected layers are not supported`);
    }
    const names: string[] = [];
    const visit = (x: unknown): void => {
      if (Array.isArray(x)) {
        if (typeof x[0] === 'string' && typeof x[1] === 'number') names.push(x[0]);
        else x.forEach(visit);
      } else if (typeof x === 'object' && x !== null) {
        const history = (x as { config?: { keras_history?: unknown } }).config?.keras_history;
        if (Array.isArray(history) && typeof history[0] === 'string') names.push(history[0]);
        else Object.values(x).forEach(visit);
      }
    };
    visit(nodes[0]);
    if (names.length === 0) throw new UserError(`${this.path}: layer '${name}': inbound_nodes name no input layer`);
    return names;
  }

  private config<K extends keyof typeof configSchemas>(key: K, layer: LayerJson, name: string): v.InferOutput<(typeof configSchemas)[K]> {
    const parsed = v.safeParse(configSchemas[key] as v.GenericSchema, layer.config);
    if (!parsed.success) throw new UserError(`${this.path}: layer '${name}' (${layer.class_name}): config.${describeIssues(parsed.issues)}`);
    return parsed.output as v.InferOutput<(typeof configSchemas)[K]>;
  }

  private fail(layer: LayerJson, name: string, message: string): never {
    throw new UserError(`${this.path}: layer '${name}' (${layer.class_name}): ${message}`);
  }

  /** Adds a node; a shape problem is the layer's one-line error. */
  private node(layer: LayerJson, name: string, node: string, spec: NodeSpec, inputs: string[], weights: Record<string, Float32Array> = {}): string {
    try {
      return this.b.add(node, spec, inputs, weights);
    } catch (err) {
      if (err instanceof GraphError) this.fail(layer, name, err.node === node ? err.detail : err.message);
      throw err;
    }
  }

  /** A manifest weight of a layer, found by `<layer>/<param>` with or without a scope prefix. */
  private weightName(layer: string, param: string): string | undefined {
    const key = `${layer}/${param}`;
    if (this.shapes.has(key)) return key;
    for (const k of this.shapes.keys()) if (k.endsWith(`/${key}`)) return k;
    return undefined;
  }

  /** Checks a weight's manifest shape; with weights loaded, returns its values (required then). */
  private weight(layer: string, param: string, expected: number[]): Float32Array | undefined {
    const name = this.weightName(layer, param);
    const stated = name === undefined ? undefined : this.shapes.get(name)!;
    if (stated && (stated.length !== expected.length || stated.some((d, i) => d !== expected[i]))) {
      throw new UserError(`${this.path}: weightsManifest: '${layer}/${param}' has shape [${stated.join(', ')}], but the layer's input makes it [${expected.join(', ')}]`);
    }
    if (!this.weights) return undefined;
    const values = name === undefined ? undefined : this.weights.get(name);
    if (!values) throw new UserError(`${this.path}: weightsManifest has no weight '${layer}/${param}'`);
    return values;
  }

  /** [h, w, c] of an image node. */
  private image(layer: LayerJson, name: string, input: string): [number, number, number] {
    const s = this.b.shape(input);
    if (s.length !== 3) this.fail(layer, name, `expects an image (3 dimensions besides the batch), got [${s.join(', ')}]`);
    return s as [number, number, number];
  }

  /** Pads of Keras's `same` / `valid` for a window on an [h, w] input. */
  private pads(mode: 'same' | 'valid', [h, w]: [number, number, number], kernel: [number, number], strides: [number, number], dilation: [number, number]): Pads2d {
    if (mode === 'valid') return [0, 0, 0, 0];
    const [top, bottom] = samePadding(h, kernel[0], strides[0], dilation[0]);
    const [left, right] = samePadding(w, kernel[1], strides[1], dilation[1]);
    return [top, left, bottom, right];
  }

  /** A fused `activation` of a conv / dense layer as its own node after it. */
  private fusedActivation(layer: LayerJson, name: string, at: string, activation: string | null): string {
    if (activation === null || activation === 'linear') return at;
    return this.activation(layer, name, `${name}/activation`, at, activation);
  }

  private activation(layer: LayerJson, name: string, node: string, at: string, activation: string): string {
    const fn = KERAS_ACTIVATIONS[activation];
    if (fn === undefined || !(ACTIVATIONS as readonly string[]).includes(fn)) {
      return this.node(layer, name, node, { op: 'opaque', kind: `${layer.class_name}(${activation})`, outShape: this.b.shape(at) }, [at]);
    }
    return this.node(layer, name, node, { op: 'activation', fn }, [at]);
  }

  /** Keras's concatenation axis (counting the batch) as an axis of the graph's shape. */
  private axis(keras: number, rank: number): number {
    const a = keras < 0 ? rank + 1 + keras : keras;
    if (this.format === 'channels_first' && rank === 3) return [NaN, 2, 0, 1][a];
    return a - 1;
  }

  /** The node(s) of one layer; returns the node its output is. */
  private apply(layer: LayerJson, name: string, inputs: string[]): string {
    const cls = layer.class_name;
    const [x] = inputs;
    if (MERGE.has(cls)) {
      const shapes = inputs.map((i) => this.b.shape(i));
      const mismatch = shapes.find((s) => s.join('x') !== shapes[0].join('x'));
      if (mismatch) this.fail(layer, name, `inputs of different shapes [${shapes[0].join(', ')}] and [${mismatch.join(', ')}]`);
      if (cls === 'Add') return this.node(layer, name, name, { op: 'add' }, inputs);
      return this.node(layer, name, name, { op: 'opaque', kind: cls, outShape: shapes[0] }, inputs);
    }
    if (cls === 'Concatenate') {
      const { axis } = this.config('Concatenate', layer, name);
      const rank = this.b.shape(x).length;
      const a = this.axis(axis, rank);
      if (!(a >= 0 && a < rank)) this.fail(layer, name, `axis ${axis} is out of range for [${this.b.shape(x).join(', ')}]`);
      return this.node(layer, name, name, { op: 'concat', axis: a }, inputs);
    }
    if (inputs.length !== 1) this.fail(layer, name, `expects one input, got ${inputs.length}`);
    if (IDENTITY.has(cls)) return this.node(layer, name, name, { op: 'identity' }, inputs);
    if (ELEMENTWISE_OPAQUE.has(cls)) return this.node(layer, name, name, { op: 'opaque', kind: cls, outShape: this.b.shape(x) }, inputs);
    switch (cls) {
      case 'Activation': {
        const { activation } = this.config('Activation', layer, name);
        return activation === null || activation === 'linear'
          ? this.node(layer, name, name, { op: 'identity' }, inputs) : this.activation(layer, name, name, x, activation);
      }
      case 'Softmax':
        return this.node(layer, name, name, { op: 'activation', fn: 'softmax' }, inputs);
      case 'ReLU': {
        const c = this.config('ReLU', layer, name);
        if (c.negative_slope !== 0 || c.threshold !== 0) return this.node(layer, name, name, { op: 'opaque', kind: cls, outShape: this.b.shape(x) }, inputs);
        const max = c.max_value ?? undefined;
        const spec: NodeSpec = max === undefined ? { op: 'activation', fn: 'relu' } : max === 6 ? { op: 'activation', fn: 'relu6' } : { op: 'activation', fn: 'clip', min: 0, max };
        return this.node(layer, name, name, spec, inputs);
      }
      case 'LeakyReLU':
        return this.node(layer, name, name, { op: 'activation', fn: 'leakyrelu', alpha: this.config('LeakyReLU', layer, name).alpha }, inputs);
      case 'BatchNormalization':
        return this.batchNorm(layer, name, x);
      case 'Flatten':
        return this.node(layer, name, name, { op: 'flatten', channelsFirst: this.format === 'channels_first' }, inputs);
      case 'Reshape':
        return this.node(layer, name, name, { op: 'reshape', target: this.config('Reshape', layer, name).target_shape }, inputs);
      case 'Dense':
        return this.dense(layer, name, x);
      case 'Conv2D':
      case 'DepthwiseConv2D':
      case 'SeparableConv2D':
        return this.conv(layer, name, x);
      case 'ZeroPadding2D':
      case 'Cropping2D': {
        const c = cls === 'ZeroPadding2D' ? this.config('ZeroPadding2D', layer, name) : this.config('Cropping2D', layer, name);
        const [[top, bottom], [left, right]] = 'padding' in c ? c.padding : c.cropping;
        const [h, w, ch] = this.image(layer, name, x);
        if ('padding' in c) return this.node(layer, name, name, { op: 'pad', pads: [[top, bottom], [left, right], [0, 0]], value: 0 }, inputs);
        if (h - top - bottom < 1 || w - left - right < 1) this.fail(layer, name, `crops a ${h}x${w} input to nothing`);
        return this.node(layer, name, name, { op: 'slice', ranges: [[top, h - bottom, 1], [left, w - right, 1], [0, ch, 1]] }, inputs);
      }
      case 'UpSampling2D': {
        const c = this.config('UpSampling2D', layer, name);
        const [h, w, ch] = this.image(layer, name, x);
        return this.node(layer, name, name, { op: 'opaque', kind: cls, outShape: [h * c.size[0], w * c.size[1], ch] }, inputs);
      }
      case 'InputLayer':
        this.fail(layer, name, 'an InputLayer with an input');
    }
    if (cls in POOLING) {
      const c = this.config('Pooling2D', layer, name);
      const img = this.image(layer, name, x);
      const strides = c.strides ?? c.pool_size;
      if (c.padding === 'valid' && (windowOutput(img[0], c.pool_size[0], strides[0], 0, 0) < 1 || windowOutput(img[1], c.pool_size[1], strides[1], 0, 0) < 1)) {
        this.fail(layer, name, `pool ${c.pool_size.join('x')} does not fit a ${img[0]}x${img[1]} input`);
      }
      return this.node(layer, name, name, {
        op: POOLING[cls], kernel: c.pool_size, strides, pads: this.pads(c.padding, img, c.pool_size, strides, [1, 1]), countIncludePad: false,
      }, inputs);
    }
    if (cls in GLOBAL_POOLING) {
      const c = this.config('GlobalPooling2D', layer, name);
      this.image(layer, name, x);
      return this.node(layer, name, name, { op: GLOBAL_POOLING[cls], keepDims: c.keepdims }, inputs);
    }
    this.fail(layer, name, `class '${cls}' is not supported (supported: ${SUPPORTED.join(', ')})`);
  }

  private batchNorm(layer: LayerJson, name: string, x: string): string {
    const c = this.config('BatchNormalization', layer, name);
    const rank = this.b.shape(x).length;
    const axes = Array.isArray(c.axis) ? c.axis : [c.axis];
    const channelAxis = this.format === 'channels_first' && rank === 3 ? 1 : rank;
    if (axes.length !== 1 || (axes[0] < 0 ? rank + 1 + axes[0] : axes[0]) !== channelAxis) {
      return this.node(layer, name, name, { op: 'opaque', kind: `${layer.class_name}(axis ${c.axis})`, outShape: this.b.shape(x) }, [x]);
    }
    const channels = this.b.shape(x)[rank - 1];
    const param = (p: string, fallback: number): Float32Array | undefined => {
      const values = this.weight(name, p, [channels]);
      return values ?? (this.weights ? new Float32Array(channels).fill(fallback) : undefined);
    };
    const gamma = c.scale ? param('gamma', 1) : this.weights && new Float32Array(channels).fill(1);
    const beta = c.center ? param('beta', 0) : this.weights && new Float32Array(channels);
    const mean = param('moving_mean', 0);
    const variance = param('moving_variance', 1);
    const weights: Record<string, Float32Array> = this.weights ? { gamma: gamma!, beta: beta!, mean: mean!, variance: variance! } : {};
    return this.node(layer, name, name, { op: 'batchnorm', epsilon: c.epsilon }, [x], weights);
  }

  /** Dense acts on the last axis; MACs count every position of the leading axes. */
  private dense(layer: LayerJson, name: string, x: string): string {
    const c = this.config('Dense', layer, name);
    const inFeatures = this.b.shape(x)[this.b.shape(x).length - 1];
    const weight = this.weight(name, 'kernel', [inFeatures, c.units]);
    const bias = c.use_bias ? this.weight(name, 'bias', [c.units]) : undefined;
    const at = this.node(layer, name, name, { op: 'dense', units: c.units, bias: c.use_bias }, [x], {
      ...(weight ? { weight } : {}), ...(bias ? { bias } : {}),
    });
    return this.fusedActivation(layer, name, at, c.activation);
  }

  private conv(layer: LayerJson, name: string, x: string): string {
    const cls = layer.class_name as 'Conv2D' | 'DepthwiseConv2D' | 'SeparableConv2D';
    const c = this.config(cls, layer, name);
    const img = this.image(layer, name, x);
    const [h, w, inChannels] = img;
    const [kh, kw] = c.kernel_size;
    const [sh, sw] = c.strides;
    const dilations = c.dilation_rate;
    if ((sh > 1 || sw > 1) && (dilations[0] > 1 || dilations[1] > 1)) this.fail(layer, name, 'strides and dilation_rate cannot both exceed 1');
    const pads = this.pads(c.padding, img, c.kernel_size, c.strides, dilations);
    if (windowOutput(h, kh, sh, pads[0], pads[2], dilations[0]) < 1 || windowOutput(w, kw, sw, pads[1], pads[3], dilations[1]) < 1) {
      this.fail(layer, name, `kernel ${kh}x${kw} does not fit a ${h}x${w} input with padding '${c.padding}'`);
    }
    const spec = (filters: number, groups: number, bias: boolean, k: [number, number], s: [number, number], p: Pads2d, d: [number, number]): NodeSpec =>
      ({ op: 'conv', filters, kernel: k, strides: s, dilations: d, pads: p, groups, bias });
    const biasOf = (filters: number) => (c.use_bias ? this.weight(name, 'bias', [filters]) : undefined);
    const some = (weights: Record<string, Float32Array | undefined>) =>
      Object.fromEntries(Object.entries(weights).filter((e): e is [string, Float32Array] => e[1] !== undefined));
    let at: string;
    if ('groups' in c) {
      if (inChannels % c.groups !== 0 || c.filters % c.groups !== 0) this.fail(layer, name, `groups ${c.groups} must divide ${inChannels} input and ${c.filters} output channels`);
      const weight = this.weight(name, 'kernel', [kh, kw, inChannels / c.groups, c.filters]);
      at = this.node(layer, name, name, spec(c.filters, c.groups, c.use_bias, c.kernel_size, c.strides, pads, dilations), [x], some({ weight, bias: biasOf(c.filters) }));
    } else {
      const mid = inChannels * c.depth_multiplier;
      // Keras's [kh, kw, in, multiplier] holds output channel c·M + m where [kh, kw, 1, in·M] does
      const depthwise = this.weight(name, 'depthwise_kernel', [kh, kw, inChannels, c.depth_multiplier]);
      if (!('filters' in c)) {
        at = this.node(layer, name, name, spec(mid, inChannels, c.use_bias, c.kernel_size, c.strides, pads, dilations), [x], some({ weight: depthwise, bias: biasOf(mid) }));
      } else {
        const pointwise = this.weight(name, 'pointwise_kernel', [1, 1, mid, c.filters]);
        const dw = this.node(layer, name, `${name}/depthwise`, spec(mid, inChannels, false, c.kernel_size, c.strides, pads, dilations), [x], some({ weight: depthwise }));
        at = this.node(layer, name, `${name}/pointwise`, spec(c.filters, 1, c.use_bias, [1, 1], [1, 1], [0, 0, 0, 0], [1, 1]), [dw], some({ weight: pointwise, bias: biasOf(c.filters) }));
      }
    }
    return this.fusedActivation(layer, name, at, c.activation);
  }
}
