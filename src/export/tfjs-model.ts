/**
 * A model graph as a tfjs LayersModel: the graph is built with tfjs's own layers (a Functional
 * model; Keras layer configs), its weights set, and saved through tfjs's save handler into the
 * files tfjs's file handlers write: `model.json` (topology and weights manifest) and one shard,
 * `weights.bin`. Keras's `same` / `valid` are used where they are exact, a ZeroPadding2D before
 * a conv otherwise. What Keras cannot express (grouped convs, hard-swish, …) is one line naming
 * the node.
 */
import * as tf from '@tensorflow/tfjs';
import { samePadding, type Graph, type GraphNode, type GraphWeights, type Pads2d } from '../model/graph.js';
import { UserError } from '../util/errors.js';

/** The weights shard's name, as tfjs-node's file handler names it. */
export const TFJS_WEIGHTS_FILE = 'weights.bin';

/** A valid Keras layer name (tfjs: letters, digits, `-._/`, starting with a letter or digit), unique in `used`. */
function layerName(base: string, used: Set<string>): string {
  let name = base.replace(/[^-A-Za-z0-9._/]/g, '_');
  if (!/^[A-Za-z0-9]/.test(name)) name = `n${name}`;
  const stem = name;
  for (let k = 1; used.has(name); k++) name = `${stem}_${k}`;
  used.add(name);
  return name;
}

type Padding = 'valid' | 'same' | Pads2d;

/** Keras's padding for explicit pads on an [h, w] input: `valid`, `same` where exact, else the pads. */
function kerasPadding(pads: Pads2d, [h, w]: number[], kernel: [number, number], strides: [number, number], dilations: [number, number] = [1, 1]): Padding {
  if (pads.every((p) => p === 0)) return 'valid';
  const [top, bottom] = samePadding(h, kernel[0], strides[0], dilations[0]);
  const [left, right] = samePadding(w, kernel[1], strides[1], dilations[1]);
  return pads[0] === top && pads[1] === left && pads[2] === bottom && pads[3] === right ? 'same' : pads;
}

class LayersBuilder {
  private readonly tensors = new Map<string, tf.SymbolicTensor>();
  private readonly names = new Set<string>();
  /** layers and the weights to set once the model is built */
  private readonly weighted: Array<[tf.layers.Layer, Float32Array[]]> = [];

  constructor(private readonly graph: Graph, private readonly weights: GraphWeights) {}

  build(): tf.LayersModel {
    const [input, ...rest] = this.graph.nodes;
    const x = tf.input({ shape: input.shape, name: layerName(input.name, this.names) });
    this.tensors.set(input.name, x);
    const last = rest.findIndex((n) => n.name === this.graph.output);
    for (const node of rest.slice(0, last + 1)) this.tensors.set(node.name, this.node(node));
    const model = tf.model({ inputs: x, outputs: this.tensors.get(this.graph.output)!, name: layerName(this.graph.name, new Set()) });
    for (const [layer, values] of this.weighted) {
      const shapes = layer.getWeights().map((w) => w.shape);
      const tensors = values.map((v, i) => tf.tensor(v, shapes[i]));
      layer.setWeights(tensors);
      tf.dispose(tensors);
    }
    return model;
  }

  private fail(node: GraphNode, message: string): never {
    throw new UserError(`${this.graph.name}: node '${node.name}' (${node.op === 'activation' ? node.fn : node.op}): ${message}`);
  }

  private weight(node: GraphNode, param: string): Float32Array {
    const w = this.weights.get(`${node.name}.${param}`);
    if (!w) this.fail(node, `no weight '${param}' (the model has no weights for it)`);
    return w;
  }

  private apply(layer: tf.layers.Layer, inputs: tf.SymbolicTensor | tf.SymbolicTensor[], weights?: Float32Array[]): tf.SymbolicTensor {
    if (weights) this.weighted.push([layer, weights]);
    return layer.apply(inputs) as tf.SymbolicTensor;
  }

  private name(node: GraphNode, suffix = ''): string {
    return layerName(node.name + suffix, this.names);
  }

  /** Explicit pads as a ZeroPadding2D before a window that then runs `valid`. */
  private padded(node: GraphNode, x: tf.SymbolicTensor, padding: Padding): [tf.SymbolicTensor, 'valid' | 'same'] {
    if (typeof padding === 'string') return [x, padding];
    const [top, left, bottom, right] = padding;
    return [this.apply(tf.layers.zeroPadding2d({ padding: [[top, bottom], [left, right]], name: this.name(node, '/pad') }), x), 'valid'];
  }

  private node(node: GraphNode): tf.SymbolicTensor {
    const xs = node.inputs.map((i) => this.tensors.get(i)!);
    const [x] = xs;
    const inShape = node.inputs.length > 0 ? this.graph.nodes.find((n) => n.name === node.inputs[0])!.shape : [];
    const name = this.name(node);
    switch (node.op) {
      case 'conv': {
        const [, , c] = inShape;
        const [input, padding] = this.padded(node, x, kerasPadding(node.pads, inShape, node.kernel, node.strides, node.dilations));
        const common = { kernelSize: node.kernel, strides: node.strides, dilationRate: node.dilations, padding, useBias: node.bias, name };
        if (node.dilations.some((d) => d > 1) && node.strides.some((s) => s > 1)) this.fail(node, 'strides and dilations both above 1 have no Keras conv');
        const bias = node.bias ? [this.weight(node, 'bias')] : [];
        if (node.groups === 1) return this.apply(tf.layers.conv2d({ ...common, filters: node.filters }), input, [this.weight(node, 'weight'), ...bias]);
        // mpq's depthwise [kh, kw, 1, C·M] holds output c·M + m where Keras's [kh, kw, C, M] does
        if (node.groups === c) return this.apply(tf.layers.depthwiseConv2d({ ...common, depthMultiplier: node.filters / c }), input, [this.weight(node, 'weight'), ...bias]);
        return this.fail(node, `a grouped convolution (groups ${node.groups} of ${c} channels) has no Keras layer`);
      }
      case 'dense':
        return this.apply(tf.layers.dense({ units: node.units, useBias: node.bias, name }), x, [this.weight(node, 'weight'), ...(node.bias ? [this.weight(node, 'bias')] : [])]);
      case 'batchnorm':
        return this.apply(tf.layers.batchNormalization({ axis: -1, epsilon: node.epsilon, name }), x,
          ['gamma', 'beta', 'mean', 'variance'].map((p) => this.weight(node, p)));
      case 'activation':
        return this.activation(node, x, name);
      case 'add':
        return this.apply(tf.layers.add({ name }), xs);
      case 'concat':
        return this.apply(tf.layers.concatenate({ axis: node.axis < 0 ? node.axis : node.axis + 1, name }), xs);
      case 'maxpool':
      case 'avgpool': {
        const padding = kerasPadding(node.pads, inShape, node.kernel, node.strides);
        // Keras pads `same` max pools with −∞ and leaves the pads out of averages; zero pads equal only an average that counts them
        if (typeof padding !== 'string' && !(node.op === 'avgpool' && node.countIncludePad)) {
          this.fail(node, `pads [${node.pads.join(', ')}] are neither 'valid' nor Keras's 'same'${node.op === 'maxpool' ? ' (a max pool pads with −∞)' : ' (an average without the pads)'}`);
        }
        const [input, mode] = this.padded(node, x, padding);
        const config = { poolSize: node.kernel, strides: node.strides, padding: mode, name };
        return this.apply(node.op === 'maxpool' ? tf.layers.maxPooling2d(config) : tf.layers.averagePooling2d(config), input);
      }
      case 'globalavgpool':
      case 'globalmaxpool': {
        const pooled = this.apply((node.op === 'globalavgpool' ? tf.layers.globalAveragePooling2d : tf.layers.globalMaxPooling2d)({ name: node.keepDims ? this.name(node, '/pool') : name }), x);
        return node.keepDims ? this.apply(tf.layers.reshape({ targetShape: node.shape, name }), pooled) : pooled;
      }
      case 'flatten': {
        // an image flattened channels first (an NCHW source's order) is permuted to [c, h, w] first (the orders differ only with several pixels and channels)
        const permute = node.channelsFirst && inShape.length === 3 && inShape[0] * inShape[1] > 1 && inShape[2] > 1;
        const input = permute ? this.apply(tf.layers.permute({ dims: [3, 1, 2], name: this.name(node, '/chw') }), x) : x;
        return this.apply(tf.layers.flatten({ name }), input);
      }
      case 'reshape':
        return this.apply(tf.layers.reshape({ targetShape: node.target, name }), x);
      case 'pad': {
        const [h, w, c] = node.pads;
        if (inShape.length !== 3 || node.value !== 0 || c[0] !== 0 || c[1] !== 0) this.fail(node, 'Keras pads images with zeros over height and width only (ZeroPadding2D)');
        return this.apply(tf.layers.zeroPadding2d({ padding: [h, w], name }), x);
      }
      case 'slice': {
        const [h, w, c] = node.ranges;
        if (inShape.length !== 3 || h[2] !== 1 || w[2] !== 1 || c[0] !== 0 || c[1] !== inShape[2] || c[2] !== 1) {
          this.fail(node, 'Keras crops images over height and width only, without strides (Cropping2D)');
        }
        return this.apply(tf.layers.cropping2D({ cropping: [[h[0], inShape[0] - h[1]], [w[0], inShape[1] - w[1]]], name }), x);
      }
      case 'identity':
        return x;
      case 'input':
      case 'opaque':
        return this.fail(node, 'has no Keras layer mpq writes');
    }
  }

  private activation(node: Extract<GraphNode, { op: 'activation' }>, x: tf.SymbolicTensor, name: string): tf.SymbolicTensor {
    const keras = (activation: 'sigmoid' | 'tanh' | 'gelu' | 'swish' | 'elu' | 'softmax' | 'hardSigmoid') => this.apply(tf.layers.activation({ activation, name }), x);
    switch (node.fn) {
      case 'relu': return this.apply(tf.layers.reLU({ name }), x);
      case 'relu6': return this.apply(tf.layers.reLU({ maxValue: 6, name }), x);
      case 'clip':
        if (node.min !== 0) return this.fail(node, `clip to [${node.min ?? '−∞'}, ${node.max ?? '∞'}] has no Keras layer (ReLU clips to [0, max])`);
        return this.apply(tf.layers.reLU({ ...(node.max !== undefined && { maxValue: node.max }), name }), x);
      case 'leakyrelu': return this.apply(tf.layers.leakyReLU({ alpha: node.alpha ?? 0.01, name }), x);
      case 'hardsigmoid':
        if ((node.alpha ?? 0.2) !== 0.2 || (node.beta ?? 0.5) !== 0.5) return this.fail(node, `hard sigmoid ${node.alpha}·x + ${node.beta}: Keras's is 0.2·x + 0.5 only`);
        return keras('hardSigmoid');
      case 'hardswish': return this.fail(node, 'hard-swish has no tfjs Keras activation');
      case 'sigmoid': case 'tanh': case 'gelu': case 'swish': case 'elu': case 'softmax':
        return keras(node.fn);
    }
  }
}

/** The graph as a tfjs LayersModel with its weights (dispose it after use). */
export function graphToLayersModel(graph: Graph, weights: GraphWeights): tf.LayersModel {
  return new LayersBuilder(graph, weights).build();
}

/** `model.json` and its weights shard, as tfjs's file handlers write them. */
export async function layersModelFiles(graph: Graph, weights: GraphWeights): Promise<Array<[string, string | Uint8Array]>> {
  const model = graphToLayersModel(graph, weights);
  let artifacts: tf.io.ModelArtifacts | undefined;
  try {
    await model.save(tf.io.withSaveHandler(async (a) => {
      artifacts = a;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }));
  } finally {
    model.dispose();
  }
  const { modelTopology, format, generatedBy, convertedBy, weightSpecs, weightData } = artifacts!;
  const modelJson = { modelTopology, format, generatedBy, convertedBy, weightsManifest: [{ paths: [TFJS_WEIGHTS_FILE], weights: weightSpecs }] };
  const data = tf.io.CompositeArrayBuffer.join(weightData!);
  // the shard first: a model.json is never there without its weights
  return [[TFJS_WEIGHTS_FILE, new Uint8Array(data)], ['', JSON.stringify(modelJson)]];
}
