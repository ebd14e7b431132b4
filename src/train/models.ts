import * as tf from '@tensorflow/tfjs';
import { FIXED_BITS, fixedLayerNames, type LayerSelection } from '../model/graph-table.js';
import {
  inputShapeOf, layerRow, nodeMap, quantizableNodes, type Graph, type GraphNode, type GraphWeights,
  type QuantizableNode,
} from '../model/graph.js';
import type { Layer } from '../model/layer.js';
import type { ModelSource } from '../model/resolve.js';
import { TRAINABLE_ZOO_MODELS, isZooModel, zooGraph } from '../model/zoo.js';
import { FieldError, UserError } from '../util/errors.js';
import {
  bnKey, QuantConv2d, QuantDense, SwitchableBatchNorm,
  type LayerBits, type QuantLayerOptions, type QuantizerFactory,
} from './layers.js';
import { Prng } from '../util/prng.js';
import { LsqQuantizer } from '../quant/index.js';

/** Bits of every quantized layer by name; a layer left out runs in full precision. */
export type BitsPolicy = Record<string, LayerBits>;

/** LIMPQ keeps the first and last layer at 8/8 bits in quantized runs. */
export const FIXED_LAYER_BITS = FIXED_BITS;

export type QuantLayerModule = QuantConv2d | QuantDense;

/** Called with each quantized layer and its output during a forward pass (for shape tracing). */
export type LayerTrace = (layer: QuantLayerModule, output: tf.Tensor) => void;

/**
 * A network built from quantized layers and switchable batch norms, held as plain objects of
 * tf.Variables, with a forward function that takes the bits policy: the graph it was built from
 * (src/model/graph.ts), run node by node. Not tf.layers: switchable parts and custom quantizers
 * are simpler this way.
 */
export interface QuantModel {
  name: string;
  /** what the model was built from (checkpoints and packed files record its structure) */
  graph: Graph;
  /** the image a forward pass takes, [h, w, c] (NHWC); a model with a flat input reshapes it */
  inputShape: [number, number, number];
  numClasses: number;
  /** candidate bit-widths of the searchable layers */
  bitsList: readonly number[];
  /** every quantized layer, in forward order */
  layers: QuantLayerModule[];
  /** names of the layers kept at FIXED_LAYER_BITS (by default the first and last) */
  fixedLayerNames: string[];
  /** names of the searchable layers, in order */
  searchableLayerNames: string[];
  batchNorms: SwitchableBatchNorm[];
  /** the batch norm right after a layer (conv → BN), by layer name: BN folding reads it */
  layerBatchNorms: Map<string, SwitchableBatchNorm>;
  /** the set of `bn` a forward pass at `policy` reads */
  batchNormKey(bn: SwitchableBatchNorm, policy: BitsPolicy): string;
  /** logits [n, classes] (a softmax at the graph's output is left out: the loss applies it) */
  forward(x: tf.Tensor4D, policy: BitsPolicy, training: boolean, trace?: LayerTrace): tf.Tensor2D;
}

export interface ModelOptions {
  /** candidate bit-widths for the searchable layers (none: full-precision training only) */
  bits?: readonly number[];
  /** seed for weight initialisation (of the weights the graph does not bring) */
  seed?: number;
  /** builds every layer's quantizers; LSQ when absent */
  quantizers?: QuantizerFactory;
  /** LSQ weight step sizes per output channel (default: one per tensor, as LIMPQ) */
  perChannelWeights?: boolean;
  /** layers kept at FIXED_LAYER_BITS (default: the first and last conv / dense, as LIMPQ) */
  layers?: LayerSelection;
}

/** The zoo models the engine trains by name (each with a dataset here). */
export const TRAIN_MODEL_NAMES: readonly string[] = TRAINABLE_ZOO_MODELS;

/** A trainable model: a zoo name, or a graph (imported, with or without weights). */
export function createModel(model: ModelSource, options: ModelOptions = {}): QuantModel {
  if (typeof model !== 'string') return buildFromGraph(model.graph, model.weights, options);
  if (!isZooModel(model) || !TRAIN_MODEL_NAMES.includes(model)) {
    throw new FieldError((n) => `${n('model')}: '${model}' cannot be trained; trainable models: ${TRAIN_MODEL_NAMES.join(', ')}, or an ONNX / tfjs model file`);
  }
  return buildFromGraph(zooGraph(model), undefined, options);
}

/** Whether the model's LSQ weight quantizers hold a step size per output channel. */
export function hasPerChannelWeightSteps(model: QuantModel): boolean {
  return model.layers.some((l) => l.weightQuantizer instanceof LsqQuantizer && l.weightQuantizer.options.channels !== undefined);
}

/** Every named variable of the model (weights, biases, BN sets, quantizer state), for checkpoints. */
export function namedVariables(model: QuantModel): Map<string, tf.Variable> {
  const all = new Map<string, tf.Variable>();
  for (const layer of model.layers) for (const [k, v] of layer.namedState()) all.set(k, v);
  for (const bn of model.batchNorms) for (const [k, v] of bn.namedState()) all.set(k, v);
  return all;
}

/** Frees every variable of a model. */
export function disposeModel(model: QuantModel): void {
  for (const v of namedVariables(model).values()) v.dispose();
}

export function trainableVariables(model: QuantModel): tf.Variable[] {
  return [...model.layers.flatMap((l) => l.trainableVariables()), ...model.batchNorms.flatMap((b) => b.trainableVariables())];
}

/** Conv / dense weights: the variables weight decay applies to (not biases, BN or step sizes). */
export function decayedVariables(model: QuantModel): tf.Variable[] {
  return model.layers.map((l) => l.weight);
}

/**
 * The layer table (names, weight counts, per-sample MACs, shapes) read off the tfjs model by
 * running one zero image through it, so the interpreter's shapes can be checked against the
 * graph's shape rules (graphLayers).
 */
export function describeLayers(model: QuantModel): Layer[] {
  const layers: Layer[] = [];
  const nodes = nodeMap(model.graph);
  tf.tidy(() => {
    model.forward(tf.zeros([1, ...model.inputShape]) as tf.Tensor4D, {}, false, (layer, output) => {
      const node = nodes.get(layer.name) as QuantizableNode;
      layers.push(layerRow({ ...node, shape: output.shape.slice(1) }, inputShapeOf(model.graph, node, nodes)));
    });
  });
  return layers;
}

/** Which sign an activation can take: unsigned inputs get LSQ's [0, 2^b − 1] grid. */
function nonNegativeOutputs(graph: Graph): Set<string> {
  const nonNegative = new Set<string>();
  const passThrough = new Set(['maxpool', 'avgpool', 'globalavgpool', 'globalmaxpool', 'flatten', 'reshape', 'identity', 'slice']);
  for (const node of graph.nodes) {
    const all = node.inputs.length > 0 && node.inputs.every((i) => nonNegative.has(i));
    let yes = false;
    if (node.op === 'activation') {
      yes = ['relu', 'relu6', 'sigmoid', 'hardsigmoid', 'softmax'].includes(node.fn) || (node.fn === 'clip' && (node.min ?? -Infinity) >= 0);
    } else if (passThrough.has(node.op) || node.op === 'add' || node.op === 'concat') {
      yes = all;
    } else if (node.op === 'pad') {
      yes = all && node.value >= 0;
    }
    if (yes) nonNegative.add(node.name);
  }
  return nonNegative;
}

/** The node the logits come from: the output, or what a final softmax reads. */
function logitsNode(graph: Graph, nodes: Map<string, GraphNode>): GraphNode {
  const out = nodes.get(graph.output)!;
  return out.op === 'activation' && out.fn === 'softmax' ? nodes.get(out.inputs[0])! : out;
}

/** The image shape a graph's input takes: an image as it is, a flat input as one row of pixels. */
function imageInput(graph: Graph): [number, number, number] {
  const shape = graph.nodes[0].shape;
  if (shape.length === 3) return shape as [number, number, number];
  if (shape.length === 1) return [1, 1, shape[0]];
  throw new UserError(`${graph.name}: input [${shape.join(', ')}]: the training engine takes images [h, w, c] or flat vectors`);
}

const TRAINABLE_OPS = new Set(['input', 'conv', 'dense', 'batchnorm', 'activation', 'add', 'concat', 'maxpool', 'avgpool',
  'globalavgpool', 'globalmaxpool', 'flatten', 'reshape', 'pad', 'slice', 'identity']);

function initialWeights(weights: GraphWeights | undefined, node: string, param: string, shape: number[]): tf.Tensor | undefined {
  const values = weights?.get(`${node}.${param}`);
  return values ? tf.tensor(values, shape) : undefined;
}

/**
 * The graph interpreter: conv / dense nodes become quantized layers (weights and input
 * quantized), a batch norm right after a quantized layer becomes switchable (one set per
 * bit-width, chosen by that layer's weight bits, as LIMPQ), every other node is its tfjs op.
 * Weights the graph brings are loaded (batch-norm statistics into every set); the rest are
 * He-initialised from `seed` in forward order.
 */
function buildFromGraph(graph: Graph, weights: GraphWeights | undefined, options: ModelOptions): QuantModel {
  const unsupported = graph.nodes.find((n) => !TRAINABLE_OPS.has(n.op));
  if (unsupported) {
    const kind = unsupported.op === 'opaque' ? unsupported.kind : unsupported.op;
    throw new UserError(`${graph.name}: layer '${unsupported.name}' (${kind}) cannot be trained: the engine runs conv, dense, batch norm, activations, add, concat, pooling, flatten, reshape, pad, slice (the model can still be searched as a layer table)`);
  }
  const bits = [...(options.bits ?? [])];
  const rng = new Prng(options.seed ?? 0);
  const nodes = nodeMap(graph);
  const quantizable = quantizableNodes(graph);
  const fixed = fixedLayerNames(graph, options.layers);
  const unsigned = nonNegativeOutputs(graph);
  const layers = new Map<string, QuantLayerModule>();
  /** the bit-widths each layer (and the batch norm after it) holds state for */
  const layerBits = new Map<string, readonly number[]>();
  for (const node of quantizable) {
    const input = nodes.get(node.inputs[0])!;
    // fixed layers only ever run at FIXED_LAYER_BITS
    layerBits.set(node.name, fixed.includes(node.name) ? [FIXED_LAYER_BITS] : bits);
    const layerOptions: QuantLayerOptions = {
      bitsList: layerBits.get(node.name)!, inputSignedness: unsigned.has(input.name) ? 'unsigned' : 'signed',
      quantizers: options.quantizers, perChannelWeights: options.perChannelWeights,
    };
    const layer = node.op === 'conv'
      ? new QuantConv2d(node.name, {
        inChannels: input.shape[2], outChannels: node.filters, kernel: node.kernel, stride: node.strides, padding: node.pads,
        dilation: node.dilations, groups: node.groups, bias: node.bias,
      }, rng, layerOptions)
      : new QuantDense(node.name, input.shape[input.shape.length - 1], node.units, rng, layerOptions, node.bias);
    const w = initialWeights(weights, node.name, 'weight', layer.weight.shape);
    if (w) layer.weight.assign(w);
    const b = layer.bias && initialWeights(weights, node.name, 'bias', layer.bias.shape);
    if (b) layer.bias!.assign(b);
    tf.dispose([w, b].filter((t): t is tf.Tensor => t !== undefined));
    layers.set(node.name, layer);
  }
  const batchNorms = new Map<string, SwitchableBatchNorm>();
  /** the quantized layer each batch norm follows */
  const bnLayer = new Map<SwitchableBatchNorm, string>();
  const layerBatchNorms = new Map<string, SwitchableBatchNorm>();
  for (const node of graph.nodes) {
    if (node.op !== 'batchnorm') continue;
    const channels = node.shape[node.shape.length - 1];
    const producer = layers.get(node.inputs[0]);
    const bn = new SwitchableBatchNorm(node.name, channels, producer ? layerBits.get(producer.name)! : [], node.epsilon);
    const stats = ['gamma', 'beta', 'mean', 'variance'].map((p) => initialWeights(weights, node.name, p, [channels]));
    if (stats.every((t) => t !== undefined)) {
      for (const set of bn.sets.values()) [set.gamma, set.beta, set.movingMean, set.movingVar].forEach((v, i) => v.assign(stats[i]!));
    }
    tf.dispose(stats.filter((t): t is tf.Tensor => t !== undefined));
    batchNorms.set(node.name, bn);
    if (producer) {
      bnLayer.set(bn, producer.name);
      if (graph.nodes.filter((n) => n.inputs.includes(producer.name)).length === 1) layerBatchNorms.set(producer.name, bn);
    }
  }
  const bitsOf = (policy: BitsPolicy, name: string): LayerBits => policy[name] ?? { weightBits: 32, actBits: 32 };
  const batchNormKey = (bn: SwitchableBatchNorm, policy: BitsPolicy): string => {
    const layer = bnLayer.get(bn);
    return layer === undefined ? 'fp' : bnKey(bitsOf(policy, layer).weightBits);
  };
  const last = logitsNode(graph, nodes);
  if (last.shape.length !== 1) throw new UserError(`${graph.name}: output '${last.name}' has shape [${last.shape.join(', ')}]; the engine trains classifiers (logits [classes])`);
  const order = graph.nodes.slice(0, graph.nodes.indexOf(last) + 1);
  const inputShape = imageInput(graph);
  const flatInput = graph.nodes[0].shape.length === 1;

  const run = (node: GraphNode, xs: tf.Tensor[], policy: BitsPolicy, training: boolean, trace?: LayerTrace): tf.Tensor => {
    const [x] = xs;
    switch (node.op) {
      case 'conv':
      case 'dense': {
        const layer = layers.get(node.name)!;
        const y = layer instanceof QuantConv2d ? layer.apply(x as tf.Tensor4D, bitsOf(policy, node.name), training) : layer.apply(x, bitsOf(policy, node.name), training);
        trace?.(layer, y);
        return y;
      }
      case 'batchnorm': {
        const bn = batchNorms.get(node.name)!;
        return bn.apply(x, batchNormKey(bn, policy), training);
      }
      case 'activation':
        return activation(node, x);
      case 'add':
        return xs.slice(1).reduce((sum, t) => tf.add(sum, t), x);
      case 'concat':
        return tf.concat(xs, node.axis < 0 ? node.axis : node.axis + 1);
      case 'maxpool':
      case 'avgpool':
        return pool(node, x as tf.Tensor4D);
      case 'globalavgpool':
        return tf.mean(x, [1, 2], node.keepDims);
      case 'globalmaxpool':
        return tf.max(x, [1, 2], node.keepDims);
      case 'flatten': {
        // an NCHW source flattened channels first: the dense weights after it read that order
        const ordered = node.channelsFirst && x.rank === 4 ? tf.transpose(x, [0, 3, 1, 2]) : x;
        return tf.reshape(ordered, [x.shape[0], -1]);
      }
      case 'reshape':
        return tf.reshape(x, [x.shape[0], ...node.target]);
      case 'pad':
        return tf.pad(x, [[0, 0], ...node.pads], node.value);
      case 'slice': {
        const begin = [0, ...node.ranges.map((r) => r[0])];
        const end = [x.shape[0], ...node.ranges.map((r) => r[1])];
        return tf.stridedSlice(x, begin, end, [1, ...node.ranges.map((r) => r[2])]);
      }
      case 'identity':
        return x;
      default:
        throw new Error(`${node.name}: op '${node.op}' has no interpreter`);
    }
  };

  return {
    name: graph.name,
    graph,
    inputShape,
    numClasses: last.shape[0],
    bitsList: bits,
    layers: [...layers.values()],
    fixedLayerNames: quantizable.filter((n) => fixed.includes(n.name)).map((n) => n.name),
    searchableLayerNames: quantizable.filter((n) => !fixed.includes(n.name)).map((n) => n.name),
    batchNorms: [...batchNorms.values()],
    layerBatchNorms,
    batchNormKey,
    forward(x, policy, training, trace) {
      return tf.tidy(() => {
        const values = new Map<string, tf.Tensor>();
        const input = flatInput ? flattenInput(x, graph.inputLayout) : x;
        values.set(order[0].name, input);
        for (const node of order.slice(1)) values.set(node.name, run(node, node.inputs.map((i) => values.get(i)!), policy, training, trace));
        return values.get(last.name) as tf.Tensor2D;
      });
    },
  };
}

/** Images as the flat vectors a model with a flat input takes, in its source's pixel order. */
function flattenInput(x: tf.Tensor4D, layout: Graph['inputLayout']): tf.Tensor2D {
  const ordered = layout === 'nchw' && x.shape[3] > 1 ? tf.transpose(x, [0, 3, 1, 2]) : x;
  return tf.reshape(ordered, [x.shape[0], -1]);
}

function activation(node: Extract<GraphNode, { op: 'activation' }>, x: tf.Tensor): tf.Tensor {
  switch (node.fn) {
    case 'relu': return tf.relu(x);
    case 'relu6': return tf.relu6(x);
    case 'clip': return tf.clipByValue(x, node.min ?? -Infinity, node.max ?? Infinity);
    case 'sigmoid': return tf.sigmoid(x);
    case 'tanh': return tf.tanh(x);
    // x · relu6(x + 3) / 6 (ONNX HardSwish, torch.nn.Hardswish)
    case 'hardswish': return tf.mul(x, tf.div(tf.relu6(tf.add(x, 3)), 6));
    // max(0, min(1, αx + β)), ONNX defaults α 0.2, β 0.5 (PyTorch exports α 1/6)
    case 'hardsigmoid': return tf.clipByValue(tf.add(tf.mul(x, node.alpha ?? 0.2), node.beta ?? 0.5), 0, 1);
    // the exact (erf) GELU, as torch.nn.GELU and ONNX Gelu
    case 'gelu': return tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.div(x, Math.SQRT2))));
    case 'swish': return tf.mul(x, tf.sigmoid(x));
    case 'leakyrelu': return tf.leakyRelu(x, node.alpha ?? 0.01);
    case 'elu': return tf.elu(x);
    case 'softmax': return tf.softmax(x);
  }
}

/**
 * Max / average pooling with explicit pads: max pools pad with −∞, average pools divide by the
 * window's count of real pixels (ONNX count_include_pad 0, TensorFlow `same`) or by the whole
 * window (count_include_pad 1).
 */
function pool(node: Extract<GraphNode, { op: 'maxpool' | 'avgpool' }>, x: tf.Tensor4D): tf.Tensor4D {
  const [top, left, bottom, right] = node.pads;
  const padded = top + left + bottom + right > 0;
  const pads: Array<[number, number]> = [[0, 0], [top, bottom], [left, right], [0, 0]];
  if (node.op === 'maxpool') {
    return tf.maxPool(padded ? tf.pad(x, pads, -Infinity) : x, node.kernel, node.strides, 'valid');
  }
  if (!padded) return tf.avgPool(x, node.kernel, node.strides, 'valid');
  const sum = tf.avgPool(tf.pad(x, pads), node.kernel, node.strides, 'valid');
  if (node.countIncludePad) return sum;
  // the share of real pixels in each window (a constant of the shapes)
  const share = tf.avgPool(tf.pad(tf.ones([1, x.shape[1], x.shape[2], 1]) as tf.Tensor4D, pads), node.kernel, node.strides, 'valid');
  return tf.div(sum, share);
}
