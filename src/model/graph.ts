/**
 * One description of a network: a graph of named nodes in forward order, each with its output
 * shape, and the weights when the source has them. The zoo, the tfjs and ONNX importers build
 * graphs (through GraphBuilder, which holds every shape rule); the layer table the search reads
 * and the trainable quantized model (src/train/graph-model.ts) are both derived from a graph.
 *
 * Layout is mpq's: images are [h, w, c] (NHWC without the batch axis), conv weights
 * [kh, kw, in/groups, out], dense weights [in, out]. Importers of NCHW formats convert once;
 * a flatten of an image records the order its source flattened in (`channelsFirst`), so the
 * dense weights after it stay as the source wrote them.
 */
import { convKind, type Layer } from './layer.js';

/** A shape without the batch axis: [h, w, c] for images, [features] (or [..., features]) otherwise. */
export type Shape = number[];

/** Element-wise activations the interpreter runs. */
export const ACTIVATIONS = ['relu', 'relu6', 'clip', 'sigmoid', 'tanh', 'hardswish', 'hardsigmoid', 'gelu', 'swish', 'leakyrelu', 'elu', 'softmax'] as const;
export type ActivationFn = (typeof ACTIVATIONS)[number];

/** [top, left, bottom, right] */
export type Pads2d = [number, number, number, number];

export type NodeSpec =
  | { op: 'input' }
  | {
    op: 'conv'; filters: number; kernel: [number, number]; strides: [number, number]; dilations: [number, number];
    pads: Pads2d; groups: number; bias: boolean;
  }
  | { op: 'dense'; units: number; bias: boolean }
  | { op: 'batchnorm'; epsilon: number }
  | { op: 'activation'; fn: ActivationFn; min?: number; max?: number; alpha?: number; beta?: number }
  | { op: 'add' }
  | { op: 'concat'; axis: number }
  | { op: 'maxpool' | 'avgpool'; kernel: [number, number]; strides: [number, number]; pads: Pads2d; countIncludePad?: boolean }
  | { op: 'globalavgpool' | 'globalmaxpool'; keepDims: boolean }
  | { op: 'flatten'; channelsFirst: boolean }
  | { op: 'reshape'; target: number[] }
  /** constant padding per axis: [before, after] for each axis of the shape */
  | { op: 'pad'; pads: Array<[number, number]>; value: number }
  /** strided slice per axis: [begin, end, step] for each axis of the shape */
  | { op: 'slice'; ranges: Array<[number, number, number]> }
  | { op: 'identity' }
  /**
   * A layer the search can count around but the interpreter cannot run (the tfjs importer's
   * upsampling, merges other than add, …): its output shape is given, training it is refused by name.
   */
  | { op: 'opaque'; kind: string; outShape: Shape };

export type GraphOp = NodeSpec['op'];

export type GraphNode = NodeSpec & {
  name: string;
  inputs: string[];
  shape: Shape;
};

export type ConvNode = Extract<GraphNode, { op: 'conv' }>;
export type DenseNode = Extract<GraphNode, { op: 'dense' }>;
export type QuantizableNode = ConvNode | DenseNode;

/** Weights by `<node>.<param>`: conv/dense `weight`, `bias`; batch norm `gamma`, `beta`, `mean`, `variance`. */
export type GraphWeights = Map<string, Float32Array>;

export interface Graph {
  /** model name (zoo name, or the imported file's) */
  name: string;
  /** nodes in forward (topological) order; the first is the input */
  nodes: GraphNode[];
  /** the node whose output is the model's output (logits, or probabilities when it ends in softmax) */
  output: string;
  /** where the graph came from, e.g. `zoo`, `onnx`, `tfjs` */
  source: string;
  /** the source's own tensor layout of the input: an ONNX model took NCHW */
  inputLayout: 'nhwc' | 'nchw';
}

/** A graph with the weights its source had (none for the zoo's ImageNet nets). */
export interface GraphModel {
  graph: Graph;
  weights?: GraphWeights;
}

/** A problem with the graph's structure, named by its node; importers add the file. */
export class GraphError extends Error {
  constructor(readonly node: string, readonly detail: string) {
    super(`node '${node}': ${detail}`);
    this.name = 'GraphError';
  }
}

const product = (xs: readonly number[]): number => xs.reduce((a, b) => a * b, 1);

/** Output length of a window along one axis (PyTorch / ONNX floor arithmetic with explicit pads). */
export function windowOutput(size: number, kernel: number, stride: number, padBefore: number, padAfter: number, dilation = 1): number {
  return Math.floor((size + padBefore + padAfter - dilation * (kernel - 1) - 1) / stride) + 1;
}

/**
 * TensorFlow's `same` padding along one axis: the output is ceil(size / stride), and the padding
 * that needs is split with the odd pixel after (so it is asymmetric at stride 2 on even sizes).
 */
export function samePadding(size: number, kernel: number, stride: number, dilation = 1): [number, number] {
  const span = (kernel - 1) * dilation + 1;
  const total = Math.max((Math.ceil(size / stride) - 1) * stride + span - size, 0);
  return [Math.floor(total / 2), total - Math.floor(total / 2)];
}

/**
 * Builds a graph node by node, computing each output shape from its inputs' (the one place the
 * shape rules live). Every problem is a GraphError naming the node.
 */
export class GraphBuilder {
  private readonly nodes: GraphNode[] = [];
  private readonly byName = new Map<string, GraphNode>();
  readonly weights: GraphWeights = new Map();

  constructor(readonly name: string, readonly source: string, readonly inputLayout: 'nhwc' | 'nchw' = 'nhwc') {}

  /** The shape of a node already added. */
  shape(name: string): Shape {
    return this.node(name).shape;
  }

  node(name: string): GraphNode {
    const node = this.byName.get(name);
    if (!node) throw new GraphError(name, 'is used as an input but not defined (or not yet: the graph must be in forward order)');
    return node;
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  input(name: string, shape: Shape): string {
    if (this.nodes.length > 0) throw new GraphError(name, 'a second input: graphs with one input only');
    if (shape.length === 0 || shape.some((d) => !Number.isInteger(d) || d < 1)) {
      throw new GraphError(name, `input shape [${shape.join(', ')}] must be whole positive sizes`);
    }
    return this.push({ op: 'input', name, inputs: [], shape: [...shape] });
  }

  /** Adds a node of `spec` on `inputs`; returns its name (the next node's input). */
  add(name: string, spec: NodeSpec, inputs: string[], weights: Record<string, Float32Array> = {}): string {
    if (this.nodes.length === 0) throw new GraphError(name, 'the graph has no input yet');
    const inShapes = inputs.map((i) => this.node(i).shape);
    const shape = outputShape(name, spec, inShapes);
    const node = { ...spec, name, inputs: [...inputs], shape } as GraphNode;
    for (const [param, values] of Object.entries(weights)) {
      const expected = weightShapes(node, inShapes)[param];
      if (!expected) throw new GraphError(name, `has no weight '${param}'`);
      if (values.length !== product(expected)) {
        throw new GraphError(name, `weight '${param}' has ${values.length} values, the node needs [${expected.join(', ')}] = ${product(expected)}`);
      }
      this.weights.set(`${name}.${param}`, values);
    }
    return this.push(node);
  }

  private push(node: GraphNode): string {
    if (node.name === '') throw new GraphError(node.name, 'a node needs a name');
    if (this.byName.has(node.name)) throw new GraphError(node.name, 'the name is used twice (layer names must be unique)');
    this.nodes.push(node);
    this.byName.set(node.name, node);
    return node.name;
  }

  /** The finished graph; `output` defaults to the last node. */
  build(output?: string): GraphModel {
    if (this.nodes.length < 2) throw new GraphError(this.name, 'the graph has no layers');
    const out = output ?? this.nodes[this.nodes.length - 1].name;
    this.node(out);
    const graph: Graph = { name: this.name, nodes: this.nodes, output: out, source: this.source, inputLayout: this.inputLayout };
    return this.weights.size > 0 ? { graph, weights: this.weights } : { graph };
  }
}

function image(name: string, shape: Shape, what: string): [number, number, number] {
  if (shape.length !== 3) throw new GraphError(name, `${what} needs an image input [h, w, c], got [${shape.join(', ')}]`);
  return shape as [number, number, number];
}

function oneInput(name: string, op: string, inputs: Shape[]): Shape {
  if (inputs.length !== 1) throw new GraphError(name, `${op} takes one input, got ${inputs.length}`);
  return inputs[0];
}

/** The output shape of a node (the graph's shape rules). */
function outputShape(name: string, spec: NodeSpec, inputs: Shape[]): Shape {
  switch (spec.op) {
    case 'input':
      throw new GraphError(name, 'an input node inside the graph');
    case 'conv': {
      const [h, w, c] = image(name, oneInput(name, 'conv', inputs), 'conv');
      const { kernel: [kh, kw], strides: [sh, sw], dilations: [dh, dw], pads: [top, left, bottom, right], groups, filters } = spec;
      if (c % groups !== 0 || filters % groups !== 0) throw new GraphError(name, `groups ${groups} must divide ${c} input and ${filters} output channels`);
      const oh = windowOutput(h, kh, sh, top, bottom, dh);
      const ow = windowOutput(w, kw, sw, left, right, dw);
      if (oh < 1 || ow < 1) throw new GraphError(name, `kernel ${kh}x${kw} does not fit a ${h}x${w} input`);
      return [oh, ow, filters];
    }
    case 'dense': {
      const x = oneInput(name, 'dense', inputs);
      return [...x.slice(0, -1), spec.units];
    }
    case 'batchnorm':
    case 'activation':
    case 'identity':
      return [...oneInput(name, spec.op, inputs)];
    case 'opaque':
      return [...spec.outShape];
    case 'add': {
      if (inputs.length < 2) throw new GraphError(name, `add takes two or more inputs, got ${inputs.length}`);
      const [x] = inputs;
      const other = inputs.find((s) => s.join('x') !== x.join('x'));
      if (other) throw new GraphError(name, `adds inputs of different shapes [${x.join(', ')}] and [${other.join(', ')}]`);
      return [...x];
    }
    case 'concat': {
      if (inputs.length < 1) throw new GraphError(name, 'concat takes at least one input');
      const [x] = inputs;
      const axis = spec.axis < 0 ? x.length + spec.axis : spec.axis;
      if (axis < 0 || axis >= x.length) throw new GraphError(name, `axis ${spec.axis} is out of range for [${x.join(', ')}]`);
      const out = [...x];
      for (const s of inputs.slice(1)) {
        if (s.length !== x.length || s.some((d, i) => i !== axis && d !== x[i])) {
          throw new GraphError(name, `cannot concatenate [${x.join(', ')}] and [${s.join(', ')}] on axis ${spec.axis}`);
        }
        out[axis] += s[axis];
      }
      return out;
    }
    case 'maxpool':
    case 'avgpool': {
      const [h, w, c] = image(name, oneInput(name, spec.op, inputs), spec.op);
      const { kernel: [kh, kw], strides: [sh, sw], pads: [top, left, bottom, right] } = spec;
      const oh = windowOutput(h, kh, sh, top, bottom);
      const ow = windowOutput(w, kw, sw, left, right);
      if (oh < 1 || ow < 1) throw new GraphError(name, `pool ${kh}x${kw} does not fit a ${h}x${w} input`);
      return [oh, ow, c];
    }
    case 'globalavgpool':
    case 'globalmaxpool': {
      const [, , c] = image(name, oneInput(name, spec.op, inputs), spec.op);
      return spec.keepDims ? [1, 1, c] : [c];
    }
    case 'flatten':
      return [product(oneInput(name, 'flatten', inputs))];
    case 'reshape': {
      const x = oneInput(name, 'reshape', inputs);
      const size = product(x);
      const known = product(spec.target.filter((d) => d !== -1));
      const unknown = spec.target.filter((d) => d === -1).length;
      if (spec.target.some((d) => d === 0 || d < -1) || unknown > 1 || (unknown === 0 && known !== size) || (unknown === 1 && size % known !== 0)) {
        throw new GraphError(name, `cannot reshape [${x.join(', ')}] to [${spec.target.join(', ')}]`);
      }
      return spec.target.map((d) => (d === -1 ? size / known : d));
    }
    case 'pad': {
      const x = oneInput(name, 'pad', inputs);
      if (spec.pads.length !== x.length) throw new GraphError(name, `pads for ${spec.pads.length} axes, the input has ${x.length}`);
      return x.map((d, i) => {
        const out = d + spec.pads[i][0] + spec.pads[i][1];
        if (out < 1) throw new GraphError(name, `pads axis ${i} of [${x.join(', ')}] to nothing`);
        return out;
      });
    }
    case 'slice': {
      const x = oneInput(name, 'slice', inputs);
      if (spec.ranges.length !== x.length) throw new GraphError(name, `ranges for ${spec.ranges.length} axes, the input has ${x.length}`);
      return x.map((d, i) => {
        const [begin, end, step] = spec.ranges[i];
        if (step < 1 || begin < 0 || end > d || begin >= end) throw new GraphError(name, `slice [${begin}:${end}:${step}] of axis ${i} (size ${d})`);
        return Math.ceil((end - begin) / step);
      });
    }
  }
}

/** The weight shapes a node holds, by parameter. */
export function weightShapes(node: GraphNode, inputs: Shape[]): Record<string, number[]> {
  if (node.op === 'conv') {
    const c = inputs[0][2];
    return {
      weight: [node.kernel[0], node.kernel[1], c / node.groups, node.filters],
      ...(node.bias ? { bias: [node.filters] } : {}),
    };
  }
  if (node.op === 'dense') {
    const features = inputs[0][inputs[0].length - 1];
    return { weight: [features, node.units], ...(node.bias ? { bias: [node.units] } : {}) };
  }
  if (node.op === 'batchnorm') {
    const c = node.shape[node.shape.length - 1];
    return { gamma: [c], beta: [c], mean: [c], variance: [c] };
  }
  return {};
}

/** Nodes by name. */
export function nodeMap(graph: Graph): Map<string, GraphNode> {
  return new Map(graph.nodes.map((n) => [n.name, n]));
}

export function isQuantizable(node: GraphNode): node is QuantizableNode {
  return node.op === 'conv' || node.op === 'dense';
}

/** The conv / dense nodes, in forward order: the layers a policy gives bits to. */
export function quantizableNodes(graph: Graph): QuantizableNode[] {
  return graph.nodes.filter(isQuantizable);
}

/** The input shape of a node (its first input's output). */
export function inputShapeOf(graph: Graph, node: GraphNode, nodes = nodeMap(graph)): Shape {
  return nodes.get(node.inputs[0])!.shape;
}

/**
 * The layer-table row of a conv / dense node: weight count (no bias, as LIMPQ counts) and
 * per-sample MACs. A dense layer on [..., features] counts every leading position.
 */
export function layerRow(node: QuantizableNode, input: Shape): Layer {
  if (node.op === 'conv') {
    const [oh, ow] = node.shape;
    const inChannels = input[2];
    const params = node.filters * (inChannels / node.groups) * node.kernel[0] * node.kernel[1];
    return {
      name: node.name, kind: convKind(inChannels, node.groups), inChannels, outChannels: node.filters,
      kernel: [...node.kernel], stride: node.strides[0], groups: node.groups, outputSize: [oh, ow],
      params, macs: params * oh * ow,
    };
  }
  const inFeatures = input[input.length - 1];
  const lead = input.slice(0, -1);
  const positions = product(lead);
  const params = inFeatures * node.units;
  return {
    name: node.name, kind: 'linear', inChannels: inFeatures, outChannels: node.units, kernel: [1, 1], stride: 1, groups: 1,
    outputSize: lead.length === 2 ? [lead[0], lead[1]] : [1, positions], params, macs: params * positions,
  };
}

/** Every conv / dense row of the graph, in forward order. */
export function graphLayers(graph: Graph): Layer[] {
  const nodes = nodeMap(graph);
  return quantizableNodes(graph).map((n) => layerRow(n, inputShapeOf(graph, n, nodes)));
}

/** The input node's shape as a layer table states it: [c, h, w] for images. */
export function tableInput(graph: Graph): number[] {
  const shape = graph.nodes[0].shape;
  return shape.length === 3 ? [shape[2], shape[0], shape[1]] : [...shape];
}

/** A graph's structure as JSON (no weights): what checkpoints and packed files record. */
export interface GraphJson {
  format: 'mpq-graph';
  version: 1;
  name: string;
  source: string;
  inputLayout: 'nhwc' | 'nchw';
  output: string;
  nodes: GraphNode[];
}

export function graphToJson(graph: Graph): GraphJson {
  return { format: 'mpq-graph', version: 1, name: graph.name, source: graph.source, inputLayout: graph.inputLayout, output: graph.output, nodes: graph.nodes };
}

/**
 * A graph from its JSON, rebuilt through GraphBuilder so every shape is checked again (a file
 * that was edited or corrupted is a GraphError naming the node, not a wrong model).
 */
export function graphFromJson(json: GraphJson): Graph {
  const [input, ...rest] = json.nodes;
  if (!input || input.op !== 'input') throw new GraphError(json.name, 'the first node must be the input');
  const b = new GraphBuilder(json.name, json.source, json.inputLayout);
  b.input(input.name, input.shape);
  for (const node of rest) {
    const { name, inputs, shape, ...spec } = node;
    b.add(name, spec as NodeSpec, inputs);
    const rebuilt = b.shape(name);
    if (rebuilt.join('x') !== shape.join('x')) throw new GraphError(name, `recorded shape [${shape.join(', ')}], its inputs make [${rebuilt.join(', ')}]`);
  }
  return b.build(json.output).graph;
}
