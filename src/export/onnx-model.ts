/**
 * A model graph (src/model/graph.ts) as an ONNX model: the reverse of src/model/onnx-import.ts.
 * Image values go back to NCHW (the input is [N, C, H, W], as PyTorch exports take it), weights
 * to OIHW / Gemm's [out, in]; a flatten of channels-last values gets a Transpose first. With
 * `quantization`, a layer's weights are integer initializers read through DequantizeLinear and its
 * input passes a QuantizeLinear → DequantizeLinear pair (QDQ, what onnxruntime, TensorRT and
 * OpenVINO take as a quantized model), with a Clip first when its grid is narrower than the
 * integer type that stores it (QuantizeLinear saturates only to the storage type).
 *
 * Names follow the importer's rules, so an export imports back with the same layer names: a
 * conv / dense / batch norm reads `<node>.weight` (an initializer, or the DequantizeLinear of
 * `<node>.weight_quantized`), other nodes keep the graph's node names.
 */
import { inputShapeOf, nodeMap, type Graph, type GraphNode, type GraphWeights, type QuantizableNode, type Shape } from '../model/graph.js';
import { ONNX_DATA_TYPE as T, type OnnxAttribute, type OnnxModel, type OnnxNode, type OnnxTensor, type OnnxTensorData } from '../model/onnx/proto.js';
import { UserError } from '../util/errors.js';

/** The opsets mpq writes: 13 (int8 / uint8 QDQ, what most runtimes take) and 21 (INT4 / UINT4 too). */
export const EXPORT_OPSETS = [13, 21] as const;
export type ExportOpset = (typeof EXPORT_OPSETS)[number];

/** The IR version each opset needs (INT4 is IR 10). */
const IR_VERSION: Record<ExportOpset, number> = { 13: 7, 21: 10 };

/** A layer's weights as integer codes, in mpq's layout (conv [kh, kw, in/groups, out], dense [in, out]). */
export interface WeightCodes {
  bits: number;
  q: Int32Array;
  /** one scale for the tensor, or one per output channel (the layout's last axis) */
  scales: Float32Array;
}

/** A layer's input grid: value = q · step, q in [lo, hi] (unsigned after a ReLU, else signed). */
export interface InputGrid {
  bits: number;
  step: number;
  lo: number;
  hi: number;
}

/** How one conv / dense layer is quantized; a side left out stays float. */
export interface LayerQdq {
  weight?: WeightCodes;
  input?: InputGrid;
}

export interface OnnxExportOptions {
  opset: ExportOpset;
  /** quantized layers by name (QDQ); absent: a full-precision model */
  quantization?: ReadonlyMap<string, LayerQdq>;
  /** model metadata_props, e.g. the policy */
  metadata?: Record<string, string>;
}

/** The integer type that stores a b-bit grid: INT4 / UINT4 at opset 21 up to 4 bits, else 8 or 16 bits. */
export interface Storage {
  dataType: number;
  name: string;
  lo: number;
  hi: number;
}

export function storageOf(bits: number, signed: boolean, opset: ExportOpset, where: string): Storage {
  const widths = opset >= 21 ? [4, 8, 16] : [8];
  const width = widths.find((w) => bits <= w);
  if (width === undefined) throw new UserError(`${where}: ${bits} bits do not fit a QDQ integer type at opset ${opset} (${opset >= 21 ? '16 bits at most' : '8 bits at most; opset 21 stores 16-bit grids'})`);
  const codes: Record<number, [number, number]> = { 4: [T.INT4, T.UINT4], 8: [T.INT8, T.UINT8], 16: [T.INT16, T.UINT16] };
  const dataType = codes[width][signed ? 0 : 1];
  return { dataType, name: `${signed ? '' : 'U'}INT${width}`, lo: signed ? -(2 ** (width - 1)) : 0, hi: signed ? 2 ** (width - 1) - 1 : 2 ** width - 1 };
}

/**
 * The storage of an activation grid. A 4-bit type only when the grid fills it: a narrower grid
 * needs a Clip before its QuantizeLinear, and onnxruntime (1.31) fails to create a session for a
 * Clip before a 4-bit QuantizeLinear (its Clip/QuantizeLinear fusion reads 8- and 16-bit zero
 * points only), so 2- and 3-bit grids are stored in 8 bits.
 */
export function activationStorage(grid: InputGrid, opset: ExportOpset, where: string): Storage {
  const storage = storageOf(grid.bits, grid.lo < 0, opset, where);
  const fills = storage.lo === grid.lo && storage.hi === grid.hi;
  return storage.hi - storage.lo === 15 && !fills ? storageOf(8, grid.lo < 0, opset, where) : storage;
}

function integerArray(dataType: number, values: ArrayLike<number>): OnnxTensorData {
  switch (dataType) {
    case T.INT4: case T.INT8: return Int8Array.from(values);
    case T.UINT4: case T.UINT8: return Uint8Array.from(values);
    case T.INT16: return Int16Array.from(values);
    case T.UINT16: return Uint16Array.from(values);
    default: throw new TypeError(`no integer array for data type ${dataType}`);
  }
}

/** Transposes a row-major tensor of `dims` by `perm` (numpy's transpose). */
function permute<A extends Float32Array | Int32Array>(src: A, dims: number[], perm: number[]): A {
  const out = new (src.constructor as new (n: number) => A)(src.length);
  const outDims = perm.map((p) => dims[p]);
  const strides = dims.map((_, i) => dims.slice(i + 1).reduce((a, b) => a * b, 1));
  const index = new Array<number>(dims.length).fill(0);
  for (let o = 0; o < out.length; o++) {
    let from = 0;
    for (let k = 0; k < perm.length; k++) from += index[k] * strides[perm[k]];
    out[o] = src[from];
    for (let k = outDims.length - 1; k >= 0; k--) {
      if (++index[k] < outDims[k]) break;
      index[k] = 0;
    }
  }
  return out;
}

/** ONNX dims of a graph shape with the batch axis: images are NCHW. */
function onnxDims(shape: Shape): Array<number | string> {
  return shape.length === 3 ? ['batch', shape[2], shape[0], shape[1]] : ['batch', ...shape];
}

/** The ONNX axis of axis `a` of a graph shape of rank `rank` (images: [h, w, c] → 2, 3, 1). */
function onnxAxis(a: number, rank: number): number {
  const axis = a < 0 ? rank + a : a;
  return rank === 3 ? [2, 3, 1][axis] : axis + 1;
}

const int = (value: number): OnnxAttribute => ({ type: 'int', value });
const ints = (value: number[]): OnnxAttribute => ({ type: 'ints', value });
const float = (value: number): OnnxAttribute => ({ type: 'float', value });

/** The graph (and its weights, by `<node>.<param>`) as an ONNX model; what ONNX cannot say is one line naming the node. */
export function graphToOnnx(graph: Graph, weights: GraphWeights, options: OnnxExportOptions): OnnxModel {
  return new OnnxWriter(graph, weights, options).run();
}

class OnnxWriter {
  private readonly nodes: OnnxNode[] = [];
  private readonly initializers: OnnxTensor[] = [];
  /** graph node → the ONNX value holding its output */
  private readonly values = new Map<string, string>();
  private readonly byName: Map<string, GraphNode>;
  private readonly valueNames = new Set<string>();
  private readonly nodeNames = new Set<string>();

  constructor(private readonly graph: Graph, private readonly weights: GraphWeights, private readonly options: OnnxExportOptions) {
    this.byName = nodeMap(graph);
  }

  run(): OnnxModel {
    const { graph, options } = this;
    const [input] = graph.nodes;
    const last = graph.nodes.findIndex((n) => n.name === graph.output);
    this.values.set(input.name, OnnxWriter.unique(input.name, this.valueNames));
    for (const node of graph.nodes.slice(1, last + 1)) this.values.set(node.name, this.node(node));
    const out = this.byName.get(graph.output)!;
    // the output is `logits` (or `probabilities` after a softmax), unless a node of the graph has that name
    const value = this.values.get(graph.output)!;
    const wanted = out.op === 'activation' && out.fn === 'softmax' ? 'probabilities' : 'logits';
    const outName = this.valueNames.has(wanted) ? value : wanted;
    this.rename(value, outName);
    return {
      irVersion: IR_VERSION[options.opset],
      opsetImports: [{ domain: '', version: options.opset }],
      producerName: 'mpq',
      producerVersion: '0.1.0',
      ...(options.metadata && { metadataProps: Object.entries(options.metadata).map(([key, value]) => ({ key, value })) }),
      graph: {
        name: graph.name,
        nodes: this.nodes,
        initializers: this.initializers,
        inputs: [{ name: input.name, elemType: T.FLOAT, shape: onnxDims(input.shape) }],
        outputs: [{ name: outName, elemType: T.FLOAT, shape: onnxDims(out.shape) }],
        valueInfo: [],
      },
    };
  }

  private fail(node: GraphNode, message: string): never {
    throw new UserError(`${this.graph.name}: node '${node.name}' (${node.op === 'activation' ? node.fn : node.op}): ${message}`);
  }

  /** `base`, or `base:k` when it is taken */
  private static unique(base: string, used: Set<string>): string {
    let name = base;
    for (let k = 1; used.has(name); k++) name = `${base}:${k}`;
    used.add(name);
    return name;
  }

  /** Adds a node named `name` and returns its output, named `output`. */
  private emit(opType: string, name: string, inputs: string[], attributes: Record<string, OnnxAttribute> = {}, output = name): string {
    const out = OnnxWriter.unique(output, this.valueNames);
    this.nodes.push({ name: OnnxWriter.unique(name, this.nodeNames), opType, domain: '', inputs, outputs: [out], attributes });
    return out;
  }

  private init(name: string, dataType: number, dims: number[], data: OnnxTensorData): string {
    const unique = OnnxWriter.unique(name, this.valueNames);
    this.initializers.push({ name: unique, dataType, dims, data });
    return unique;
  }

  private floats(name: string, values: ArrayLike<number>, dims = [values.length]): string {
    return this.init(name, T.FLOAT, dims, Float32Array.from(values));
  }

  private int64s(name: string, values: number[]): string {
    return this.init(name, T.INT64, [values.length], BigInt64Array.from(values.map(BigInt)));
  }

  private rename(from: string, to: string): void {
    for (const n of this.nodes) {
      n.inputs = n.inputs.map((i) => (i === from ? to : i));
      n.outputs = n.outputs.map((o) => (o === from ? to : o));
    }
  }

  private weight(node: GraphNode, param: string): Float32Array {
    const w = this.weights.get(`${node.name}.${param}`);
    if (!w) this.fail(node, `no weight '${param}' (the model has no weights for it)`);
    return w;
  }

  private x(node: GraphNode, index = 0): string {
    return this.values.get(node.inputs[index])!;
  }

  private node(node: GraphNode): string {
    const x = node.inputs.length > 0 ? this.x(node) : '';
    const rank = node.inputs.length > 0 ? this.byName.get(node.inputs[0])!.shape.length : 0;
    switch (node.op) {
      case 'input':
        return this.fail(node, 'a second input');
      case 'conv':
      case 'dense':
        return this.layer(node);
      case 'batchnorm': {
        if (rank !== 3 && rank !== 1) this.fail(node, `batch norm over the last axis of a rank-${rank} value has no ONNX BatchNormalization`);
        const params = ['gamma', 'beta', 'mean', 'variance'].map((p, i) =>
          this.floats(`${node.name}.${['weight', 'bias', 'running_mean', 'running_var'][i]}`, this.weight(node, p)));
        return this.emit('BatchNormalization', node.name, [x, ...params], { epsilon: float(node.epsilon) });
      }
      case 'activation':
        return this.activation(node, x, rank);
      case 'add':
        return this.emit(node.inputs.length === 2 ? 'Add' : 'Sum', node.name, node.inputs.map((_, i) => this.x(node, i)));
      case 'concat':
        return this.emit('Concat', node.name, node.inputs.map((_, i) => this.x(node, i)), { axis: int(onnxAxis(node.axis, rank)) });
      case 'maxpool':
      case 'avgpool':
        return this.emit(node.op === 'maxpool' ? 'MaxPool' : 'AveragePool', node.name, [x], {
          kernel_shape: ints(node.kernel), strides: ints(node.strides), pads: ints(node.pads),
          ...(node.op === 'avgpool' ? { count_include_pad: int(node.countIncludePad ? 1 : 0) } : {}),
        });
      case 'globalavgpool':
      case 'globalmaxpool': {
        const pooled = this.emit(node.op === 'globalavgpool' ? 'GlobalAveragePool' : 'GlobalMaxPool', node.keepDims ? node.name : `${node.name}/pool`, [x]);
        return node.keepDims ? pooled : this.emit('Flatten', node.name, [pooled], { axis: int(1) });
      }
      case 'flatten': {
        // an image flattened channels last (mpq's order) is NHWC first (the orders differ only with several pixels and channels)
        const [h, w, c] = this.byName.get(node.inputs[0])!.shape;
        const ordered = rank === 3 && !node.channelsFirst && h * w > 1 && c > 1 ? this.emit('Transpose', `${node.name}/nhwc`, [x], { perm: ints([0, 2, 3, 1]) }) : x;
        return this.emit('Flatten', node.name, [ordered], { axis: int(1) });
      }
      case 'reshape': {
        // mpq reshapes in its own (channels-last) order
        const ordered = rank === 3 ? this.emit('Transpose', `${node.name}/nhwc`, [x], { perm: ints([0, 2, 3, 1]) }) : x;
        const shape = this.int64s(`${node.name}.shape`, [0, ...node.target]);
        const reshaped = this.emit('Reshape', node.shape.length === 3 ? `${node.name}/reshape` : node.name, [ordered, shape]);
        return node.shape.length === 3 ? this.emit('Transpose', node.name, [reshaped], { perm: ints([0, 3, 1, 2]) }) : reshaped;
      }
      case 'pad': {
        const axes = node.pads.map((_, a) => onnxAxis(a, rank));
        const pads = new Array<number>(2 * (rank + 1)).fill(0);
        node.pads.forEach(([before, after], a) => {
          pads[axes[a]] = before;
          pads[axes[a] + rank + 1] = after;
        });
        return this.emit('Pad', node.name, [x, this.int64s(`${node.name}.pads`, pads), this.floats(`${node.name}.value`, [node.value], [])], { mode: { type: 'string', value: 'constant' } });
      }
      case 'slice': {
        const shape = this.byName.get(node.inputs[0])!.shape;
        const cut = node.ranges.map((r, a) => ({ r, a })).filter(({ r, a }) => r[0] !== 0 || r[1] !== shape[a] || r[2] !== 1);
        return this.emit('Slice', node.name, [
          x,
          this.int64s(`${node.name}.starts`, cut.map(({ r }) => r[0])),
          this.int64s(`${node.name}.ends`, cut.map(({ r }) => r[1])),
          this.int64s(`${node.name}.axes`, cut.map(({ a }) => onnxAxis(a, rank))),
          this.int64s(`${node.name}.steps`, cut.map(({ r }) => r[2])),
        ]);
      }
      case 'identity':
        return x;
      case 'opaque':
        return this.fail(node, `'${node.kind}' has no ONNX form mpq writes`);
    }
  }

  private activation(node: Extract<GraphNode, { op: 'activation' }>, x: string, rank: number): string {
    const { opset } = this.options;
    const name = node.name;
    const clip = (min: number | undefined, max: number | undefined) => this.emit('Clip', name, [
      x, min === undefined ? '' : this.floats(`${name}.min`, [min], []), max === undefined ? '' : this.floats(`${name}.max`, [max], []),
    ].filter((v, i, all) => v !== '' || all.slice(i + 1).some((u) => u !== '')));
    switch (node.fn) {
      case 'relu': return this.emit('Relu', name, [x]);
      case 'relu6': return clip(0, 6);
      case 'clip': return clip(node.min, node.max);
      case 'sigmoid': return this.emit('Sigmoid', name, [x]);
      case 'tanh': return this.emit('Tanh', name, [x]);
      case 'hardsigmoid': return this.emit('HardSigmoid', name, [x], { alpha: float(node.alpha ?? 0.2), beta: float(node.beta ?? 0.5) });
      case 'hardswish':
        // HardSwish is opset 14: below it, x · HardSigmoid(x; 1/6, 1/2), the same function
        if (opset >= 14) return this.emit('HardSwish', name, [x]);
        return this.emit('Mul', name, [x, this.emit('HardSigmoid', `${name}/hardsigmoid`, [x], { alpha: float(1 / 6), beta: float(0.5) })]);
      case 'swish': return this.emit('Mul', name, [x, this.emit('Sigmoid', `${name}/sigmoid`, [x])]);
      case 'gelu': {
        if (opset >= 20) return this.emit('Gelu', name, [x]);
        // Gelu is opset 20: below it the exact form x/2 · (1 + erf(x/√2)), as mpq computes it
        const erf = this.emit('Erf', `${name}/erf`, [this.emit('Div', `${name}/div`, [x, this.floats(`${name}.sqrt2`, [Math.SQRT2], [])])]);
        const onePlus = this.emit('Add', `${name}/add`, [erf, this.floats(`${name}.one`, [1], [])]);
        return this.emit('Mul', name, [this.emit('Mul', `${name}/half`, [x, this.floats(`${name}.half`, [0.5], [])]), onePlus]);
      }
      case 'leakyrelu': return this.emit('LeakyRelu', name, [x], { alpha: float(node.alpha ?? 0.01) });
      case 'elu': return this.emit('Elu', name, [x]);
      case 'softmax': return this.emit('Softmax', name, [x], { axis: int(rank === 3 ? 1 : -1) });
    }
  }

  /** A conv or dense layer, its weights and input quantized when `quantization` says so. */
  private layer(node: QuantizableNode): string {
    const inShape = inputShapeOf(this.graph, node, this.byName);
    const qdq = this.options.quantization?.get(node.name);
    const x = qdq?.input ? this.quantizedInput(node, this.x(node), qdq.input) : this.x(node);
    const bias = node.bias ? [this.floats(`${node.name}.bias`, this.weight(node, 'bias'))] : [];
    if (node.op === 'conv') {
      const [kh, kw, ci, co] = [node.kernel[0], node.kernel[1], inShape[2] / node.groups, node.filters];
      const w = this.layerWeight(node, [kh, kw, ci, co], [3, 2, 0, 1], 0, qdq?.weight);
      return this.emit('Conv', node.name, [x, w, ...bias], {
        kernel_shape: ints(node.kernel), strides: ints(node.strides), pads: ints(node.pads), dilations: ints(node.dilations), group: int(node.groups),
      });
    }
    const features = inShape[inShape.length - 1];
    if (inShape.length === 3) {
      // a dense layer on every pixel of an image is a 1x1 conv
      const w = this.layerWeight(node, [1, 1, features, node.units], [3, 2, 0, 1], 0, qdq?.weight);
      return this.emit('Conv', node.name, [x, w, ...bias], { kernel_shape: ints([1, 1]) });
    }
    if (inShape.length === 1) {
      const w = this.layerWeight(node, [features, node.units], [1, 0], 0, qdq?.weight);
      return this.emit('Gemm', node.name, [x, w, ...bias], { transB: int(1) });
    }
    const w = this.layerWeight(node, [features, node.units], [0, 1], 1, qdq?.weight);
    const y = this.emit('MatMul', node.bias ? `${node.name}/matmul` : node.name, [x, w]);
    return node.bias ? this.emit('Add', node.name, [y, bias[0]]) : y;
  }

  /**
   * The layer's weight as ONNX lays it out (`perm` of mpq's `dims`, output channels on `axis`):
   * a float initializer `<node>.weight`, or integer codes dequantized into that name.
   */
  private layerWeight(node: QuantizableNode, dims: number[], perm: number[], axis: number, codes: WeightCodes | undefined): string {
    const outDims = perm.map((p) => dims[p]);
    const name = `${node.name}.weight`;
    if (!codes) return this.floats(name, permute(this.weight(node, 'weight'), dims, perm), outDims);
    const storage = storageOf(codes.bits, true, this.options.opset, `layer '${node.name}' weights`);
    const perChannel = codes.scales.length > 1;
    const q = this.init(`${name}_quantized`, storage.dataType, outDims, integerArray(storage.dataType, permute(codes.q, dims, perm)));
    const scale = this.floats(`${name}_scale`, codes.scales, perChannel ? [codes.scales.length] : []);
    const zero = this.init(`${name}_zero_point`, storage.dataType, perChannel ? [codes.scales.length] : [], integerArray(storage.dataType, new Array(codes.scales.length).fill(0)));
    return this.emit('DequantizeLinear', `${name}/DequantizeLinear`, [q, scale, zero], perChannel ? { axis: int(axis) } : {}, name);
  }

  /** x on the layer's input grid: Clip to the grid when the storage type is wider, QuantizeLinear, DequantizeLinear. */
  private quantizedInput(node: QuantizableNode, x: string, grid: InputGrid): string {
    const base = `${node.name}.input`;
    const storage = activationStorage(grid, this.options.opset, `layer '${node.name}' input`);
    const scale = this.floats(`${base}_scale`, [grid.step], []);
    const zero = this.init(`${base}_zero_point`, storage.dataType, [], integerArray(storage.dataType, [0]));
    let clipped = x;
    if (grid.lo !== storage.lo || grid.hi !== storage.hi) {
      const bound = (v: number) => Math.fround(v * Math.fround(grid.step));
      clipped = this.emit('Clip', `${base}/Clip`, [x, this.floats(`${base}_min`, [bound(grid.lo)], []), this.floats(`${base}_max`, [bound(grid.hi)], [])], {}, `${base}_clipped`);
    }
    const q = this.emit('QuantizeLinear', `${base}/QuantizeLinear`, [clipped, scale, zero], {}, `${base}_quantized`);
    return this.emit('DequantizeLinear', `${base}/DequantizeLinear`, [q, scale, zero], {}, `${base}_dequantized`);
  }
}
