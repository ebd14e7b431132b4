/**
 * ONNX models (opsets 11 to 21, what `torch.onnx.export` writes) as mpq graphs, with their
 * initializers as weights. NCHW is converted once, here: image values become [h, w, c], conv
 * weights OIHW → [kh, kw, in/groups, out], Gemm weights [in, out]; a Flatten of an image keeps the
 * channels-first order the Gemm after it was trained on. Layer names are the PyTorch module names:
 * from a `<module>.weight` initializer, or from the node's scope (`/layer1/layer1.0/conv1/Conv` →
 * `layer1.0.conv1`) when the exporter renamed the weights (batch norm folded into the conv).
 * Anything else is one line naming the file, the node and what is wrong.
 *
 * Quantized (QDQ) models, as `mpq export-model` writes them, import too: a DequantizeLinear of an
 * integer initializer is a weight (dequantized), a QuantizeLinear → DequantizeLinear pair on an
 * activation (with the Clip before it that narrows the grid) marks the input of the layer that
 * reads it; each layer's bits are recovered (`qdqBits`): activations from the Clip or the
 * storage type's range, weights from the file's `mpq.weight_bits` metadata (checked against the
 * codes), else the narrowest signed range that holds the codes.
 */
import { UserError } from '../util/errors.js';
import { GraphBuilder, GraphError, type ActivationFn, type GraphModel, type NodeSpec, type Pads2d, type Shape } from './graph.js';
import { modelName } from './names.js';
import { dataTypeName, ONNX_DATA_TYPE, onnxAttribute, readOnnxFile, type OnnxModel, type OnnxNode, type OnnxTensor } from './onnx/proto.js';

/** The ONNX default-domain opsets this importer reads. */
export const ONNX_OPSETS = { min: 11, max: 21 } as const;

export const SUPPORTED_ONNX_OPS = [
  'Conv', 'Gemm', 'MatMul', 'Add', 'BatchNormalization', 'Relu', 'Clip', 'Sigmoid', 'Tanh', 'HardSwish', 'HardSigmoid', 'LeakyRelu',
  'Gelu', 'Softmax', 'Concat', 'MaxPool', 'AveragePool', 'GlobalAveragePool', 'GlobalMaxPool', 'Flatten', 'Reshape', 'Pad', 'Identity',
  'Dropout', 'Constant', 'QuantizeLinear', 'DequantizeLinear', 'Mul (x · Sigmoid(x), x · HardSigmoid(x))', 'Transpose (before a Flatten)',
] as const;

/** Metadata key of the weight bits of each quantized layer, as `mpq export-model` writes it. */
export const WEIGHT_BITS_METADATA = 'mpq.weight_bits';

/** An activation's integer grid: value = q · step, q in [lo, hi]. */
interface Grid {
  step: number;
  lo: number;
  hi: number;
}

/**
 * A value of the ONNX graph: a node of ours, a constant (initializer, Constant node, dequantized
 * weight), a Clip that narrows the grid of the QuantizeLinear reading it, or a QuantizeLinear's
 * codes of a node's output.
 */
type Value =
  | { node: string }
  | { constant: OnnxTensor }
  | { clip: { node: string; min?: number; max?: number } }
  | { quantized: { node: string; grid: Grid; zeroPoint: number } }
  | { transposed: string };

/** Bits of each layer of a QDQ model (32: that side is float). */
export type QdqBits = Record<string, { weightBits: number; actBits: number }>;

/** An imported ONNX model; `qdqBits` when it is quantized (QDQ). */
export interface OnnxGraphModel extends GraphModel {
  qdqBits?: QdqBits;
}

/** Reads an .onnx file as a graph; `weights: false` skips converting the initializers (the search needs shapes only). */
export function readOnnxModel(path: string, opts: { weights?: boolean } = {}): OnnxGraphModel {
  return onnxGraph(readOnnxFile(path), path, opts);
}

/**
 * The PyTorch module path of a node's scope name: `/layer1/layer1.0/conv1/Conv` → `layer1.0.conv1`.
 * Each scope names a module either relative to its parent (`conv1`) or qualified from an ancestor
 * (`layer1.0`, `conv.0.0`); a component that extends a tail of the path so far replaces that tail.
 */
export function scopeModulePath(nodeName: string): string | undefined {
  if (!nodeName.startsWith('/')) return undefined;
  const parts = nodeName.slice(1).split('/').slice(0, -1);
  let path: string[] = [];
  for (const part of parts) {
    if (part === '') continue;
    let replaced = false;
    for (let k = path.length; k >= 1; k--) {
      if (part.startsWith(`${path.slice(path.length - k).join('.')}.`)) {
        path = [...path.slice(0, path.length - k), ...part.split('.')];
        replaced = true;
        break;
      }
    }
    if (!replaced) path = [...path, ...part.split('.')];
  }
  return path.length > 0 ? path.join('.') : undefined;
}

/** The default-domain opset the model imports; one line when it is outside what mpq reads. */
function opsetOf(model: OnnxModel, path: string): number {
  const entry = model.opsetImports.find((o) => o.domain === '' || o.domain === 'ai.onnx');
  if (!entry) throw new UserError(`${path}: imports no ai.onnx opset`);
  if (entry.version < ONNX_OPSETS.min || entry.version > ONNX_OPSETS.max) {
    throw new UserError(`${path}: opset ${entry.version} is not supported (mpq reads opsets ${ONNX_OPSETS.min} to ${ONNX_OPSETS.max}; re-export with opset_version in that range)`);
  }
  return entry.version;
}

/** Nodes in an order where every input is produced before it is read; dangling inputs and cycles named. */
function topologicalOrder(model: OnnxModel, path: string, known: Set<string>): OnnxNode[] {
  const producer = new Map<string, OnnxNode>();
  for (const node of model.graph.nodes) for (const out of node.outputs) if (out !== '') producer.set(out, node);
  for (const node of model.graph.nodes) {
    for (const input of node.inputs) {
      if (input !== '' && !known.has(input) && !producer.has(input)) {
        throw new UserError(`${path}: node '${node.name || node.outputs[0]}' (${node.opType}): input '${input}' is produced by no node, initializer or graph input (a dangling input)`);
      }
    }
  }
  const order: OnnxNode[] = [];
  const state = new Map<OnnxNode, 'visiting' | 'done'>();
  const visit = (node: OnnxNode): void => {
    const s = state.get(node);
    if (s === 'done') return;
    if (s === 'visiting') throw new UserError(`${path}: node '${node.name || node.outputs[0]}' (${node.opType}) depends on its own output (a cycle)`);
    state.set(node, 'visiting');
    for (const input of node.inputs) {
      const p = input === '' || known.has(input) ? undefined : producer.get(input);
      if (p) visit(p);
    }
    state.set(node, 'done');
    order.push(node);
  };
  for (const node of model.graph.nodes) visit(node);
  return order;
}

/** The ONNX model as a graph (`path` names the file in errors). */
export function onnxGraph(model: OnnxModel, path: string, opts: { weights?: boolean } = {}): OnnxGraphModel {
  opsetOf(model, path);
  return new OnnxImporter(model, path, opts.weights !== false).run();
}

class OnnxImporter {
  private readonly values = new Map<string, Value>();
  private readonly b: GraphBuilder;
  /** how many nodes read each value (a MatMul's Add is fused only when it is the MatMul's one reader) */
  private readonly readers = new Map<string, number>();
  private readonly fused = new Set<OnnxNode>();
  private order: OnnxNode[] = [];
  /** the activation grid of a DequantizeLinear's output (a layer's quantized input) */
  private readonly grids = new Map<string, Grid>();
  /** the (q − zero point) codes of a dequantized weight, by the DequantizeLinear's output */
  private readonly weightCodes = new Map<string, { min: number; max: number }>();
  /** the weight bits the file's metadata states, by layer */
  private readonly statedWeightBits: Record<string, number>;
  private readonly qdqBits: QdqBits = {};

  constructor(private readonly model: OnnxModel, private readonly path: string, private readonly withWeights: boolean) {
    this.b = new GraphBuilder(modelName(path), 'onnx', 'nchw');
    this.statedWeightBits = this.metadataBits();
  }

  private metadataBits(): Record<string, number> {
    const stated = this.model.metadataProps?.find((e) => e.key === WEIGHT_BITS_METADATA)?.value;
    if (stated === undefined) return {};
    try {
      const bits = JSON.parse(stated) as unknown;
      if (typeof bits === 'object' && bits !== null && Object.values(bits).every((b) => Number.isInteger(b) && b >= 1 && b <= 16)) return bits as Record<string, number>;
    } catch {
      // reported below
    }
    throw new UserError(`${this.path}: metadata '${WEIGHT_BITS_METADATA}' is not a JSON object of layer → bit-width (1..16)`);
  }

  run(): OnnxGraphModel {
    const { graph } = this.model;
    for (const t of graph.initializers) this.values.set(t.name, { constant: t });
    const inputs = graph.inputs.filter((i) => !this.values.has(i.name));
    if (inputs.length !== 1) {
      throw new UserError(`${this.path}: the graph has ${inputs.length} inputs (${inputs.map((i) => i.name).join(', ') || 'none'}); mpq imports models with one input`);
    }
    const [input] = inputs;
    const dims = input.shape;
    if (!dims || dims.length < 2 || dims.slice(1).some((d) => typeof d !== 'number' || d < 1)) {
      throw new UserError(`${this.path}: input '${input.name}' has shape [${(dims ?? []).map(String).join(', ')}]; mpq needs fixed sizes after the batch axis (export with a fixed input size)`);
    }
    const shape = dims.slice(1) as number[];
    if (shape.length !== 3 && shape.length !== 1) {
      throw new UserError(`${this.path}: input '${input.name}' has shape [${dims.map(String).join(', ')}]; mpq imports images [N, C, H, W] or vectors [N, F]`);
    }
    this.values.set(input.name, { node: this.b.input(this.uniqueName(input.name), shape.length === 3 ? [shape[1], shape[2], shape[0]] : shape) });
    this.order = topologicalOrder(this.model, this.path, new Set(this.values.keys()));
    for (const node of this.order) for (const i of node.inputs) this.readers.set(i, (this.readers.get(i) ?? 0) + 1);
    for (const node of this.order) if (!this.fused.has(node)) this.node(node);
    if (graph.outputs.length !== 1) throw new UserError(`${this.path}: the graph has ${graph.outputs.length} outputs; mpq imports models with one output`);
    const out = this.values.get(graph.outputs[0].name);
    if (!out || !('node' in out)) throw new UserError(`${this.path}: output '${graph.outputs[0].name}' is not computed from the input`);
    const built = this.withWeights ? this.b.build(out.node) : { graph: this.b.build(out.node).graph };
    return Object.keys(this.qdqBits).length > 0 ? { ...built, qdqBits: this.qdqBits } : built;
  }

  private fail(node: OnnxNode, message: string): never {
    throw new UserError(`${this.path}: node '${node.name || node.outputs[0]}' (${node.opType}): ${message}`);
  }

  private uniqueName(base: string): string {
    let name = base || 'node';
    for (let k = 1; this.b.has(name); k++) name = `${base}:${k}`;
    return name;
  }

  /** The name of a conv / dense / batch-norm node: its module's (see the file comment). */
  private moduleName(node: OnnxNode, weight: string | undefined): string {
    if (weight?.endsWith('.weight') && !weight.startsWith('onnx::')) return weight.slice(0, -'.weight'.length);
    const scope = scopeModulePath(node.name);
    if (scope !== undefined) return scope;
    if (weight !== undefined && !weight.startsWith('onnx::')) return weight;
    return node.name.replace(/^\//, '') || node.outputs[0];
  }

  private input(node: OnnxNode, index: number): string {
    const name = node.inputs[index];
    const v = name === undefined || name === '' ? undefined : this.values.get(name);
    if (v && 'quantized' in v) this.fail(node, `input ${index} ('${name}') is a QuantizeLinear's integer codes; mpq reads them through a DequantizeLinear`);
    if (!v || !('node' in v)) this.fail(node, `input ${index} ('${name ?? ''}') must be computed from the model's input, not a constant`);
    return v.node;
  }

  /** The one node that reads `value`, if exactly one does. */
  private onlyReader(value: string): OnnxNode | undefined {
    if (this.readers.get(value) !== 1) return undefined;
    return this.order.find((n) => n.inputs.includes(value));
  }

  /**
   * f(x) whose one reader is Mul(x, f(x)): the product is one activation `fn` (x · Sigmoid(x) is
   * swish, x · HardSigmoid(x; 1/6, 1/2) hard-swish). Returns whether it was.
   */
  private selfProduct(node: OnnxNode, name: string, fn: ActivationFn): boolean {
    const mul = this.onlyReader(node.outputs[0]);
    if (mul?.opType !== 'Mul' || mul.inputs.length !== 2) return false;
    const other = mul.inputs[mul.inputs[0] === node.outputs[0] ? 1 : 0];
    if (other !== node.inputs[0]) return false;
    this.fused.add(mul);
    const out = this.add(node, name, { op: 'activation', fn }, [this.input(node, 0)]);
    this.values.set(mul.outputs[0], { node: out });
    return true;
  }

  /** The integer range of a quantized type, from its zero point (or QuantizeLinear's default, uint8). */
  private storageRange(node: OnnxNode, zeroPoint: OnnxTensor | undefined): [number, number] {
    const type = zeroPoint?.dataType ?? onnxAttribute(node, 'output_dtype', 'int', this.path) ?? ONNX_DATA_TYPE.UINT8;
    const ranges: Record<number, [number, number]> = {
      [ONNX_DATA_TYPE.INT4]: [-8, 7], [ONNX_DATA_TYPE.UINT4]: [0, 15], [ONNX_DATA_TYPE.INT8]: [-128, 127], [ONNX_DATA_TYPE.UINT8]: [0, 255],
      [ONNX_DATA_TYPE.INT16]: [-32768, 32767], [ONNX_DATA_TYPE.UINT16]: [0, 65535],
    };
    return ranges[type] ?? this.fail(node, `quantized type ${dataTypeName(type)} is not supported (INT4/8/16, UINT4/8/16)`);
  }

  /** A per-tensor scale and zero point (inputs 1 and 2). */
  private scalarQuantization(node: OnnxNode): { scale: number; zeroPoint: number; zeroTensor?: OnnxTensor } {
    const scale = this.floats(node, this.constant(node, 1, 'the scale'), 'the scale');
    const zeroTensor = this.optionalConstant(node, 2, 'the zero point');
    const zero = zeroTensor ? this.floats(node, zeroTensor, 'the zero point') : [0];
    if (scale.length !== 1 || zero.length !== 1) this.fail(node, 'activations quantized per axis are not supported (one scale per tensor)');
    return { scale: scale[0], zeroPoint: zero[0], zeroTensor };
  }

  /** QuantizeLinear of an activation: its codes, on the grid of the storage type narrowed by a Clip before it. */
  private quantizeLinear(node: OnnxNode): void {
    const x = this.values.get(node.inputs[0]);
    if (!x || !('node' in x || 'clip' in x)) this.fail(node, `input '${node.inputs[0]}' must be an activation (quantized weights are integer initializers read by a DequantizeLinear)`);
    const { scale, zeroPoint, zeroTensor } = this.scalarQuantization(node);
    const [storageLo, storageHi] = this.storageRange(node, zeroTensor);
    let [lo, hi] = [storageLo - zeroPoint, storageHi - zeroPoint];
    if ('clip' in x) {
      const { min, max } = x.clip;
      if (min !== undefined) lo = Math.max(lo, Math.round(min / scale));
      if (max !== undefined) hi = Math.min(hi, Math.round(max / scale));
    }
    const from = 'clip' in x ? x.clip.node : x.node;
    this.values.set(node.outputs[0], { quantized: { node: from, grid: { step: scale, lo, hi }, zeroPoint } });
  }

  /** DequantizeLinear: of a QuantizeLinear's codes, the activation (its grid noted); of an integer initializer, a weight. */
  private dequantizeLinear(node: OnnxNode): void {
    const v = this.values.get(node.inputs[0]);
    if (v && 'quantized' in v) {
      const q = v.quantized;
      const { scale, zeroPoint } = this.scalarQuantization(node);
      if (scale !== q.grid.step || zeroPoint !== q.zeroPoint) this.fail(node, 'dequantizes with another scale or zero point than its QuantizeLinear');
      this.values.set(node.outputs[0], { node: q.node });
      this.grids.set(node.outputs[0], q.grid);
      return;
    }
    const codes = this.constant(node, 0, 'the quantized tensor');
    const scaleTensor = this.constant(node, 1, 'the scale');
    const zeroTensor = this.optionalConstant(node, 2, 'the zero point');
    this.storageRange(node, zeroTensor ?? codes);
    const q = this.floats(node, codes, 'the quantized tensor');
    const scales = this.floats(node, scaleTensor, 'the scale');
    const zeros = zeroTensor ? this.floats(node, zeroTensor, 'the zero point') : new Float32Array(scales.length);
    const rank = codes.dims.length;
    const axisAttribute = onnxAttribute(node, 'axis', 'int', this.path) ?? 1;
    const axis = axisAttribute < 0 ? axisAttribute + rank : axisAttribute;
    if (scales.length > 1 && (axis < 0 || axis >= rank || codes.dims[axis] !== scales.length)) this.fail(node, `${scales.length} scales do not match axis ${axis} of [${codes.dims.join(', ')}]`);
    if (onnxAttribute(node, 'block_size', 'int', this.path)) this.fail(node, 'blocked quantization (block_size) is not supported');
    const inner = scales.length > 1 ? codes.dims.slice(axis + 1).reduce((a, b) => a * b, 1) : 1;
    const values = new Float32Array(q.length);
    let [min, max] = [Infinity, -Infinity];
    for (let i = 0; i < q.length; i++) {
      const k = scales.length > 1 ? Math.floor(i / inner) % scales.length : 0;
      const code = q[i] - zeros[k];
      values[i] = Math.fround(code * scales[k]);
      [min, max] = [Math.min(min, code), Math.max(max, code)];
    }
    this.values.set(node.outputs[0], { constant: { name: node.outputs[0], dataType: ONNX_DATA_TYPE.FLOAT, dims: codes.dims, data: values } });
    this.weightCodes.set(node.outputs[0], { min, max });
  }

  /** Notes the bits of a quantized layer: its input's grid, its weight's codes. */
  private noteBits(node: OnnxNode, layer: string): void {
    const grid = this.grids.get(node.inputs[0]);
    const codes = this.weightCodes.get(node.inputs[1]);
    if (!grid && !codes) return;
    const bitsOf = (levels: number) => Math.max(1, Math.ceil(Math.log2(levels)));
    let weightBits = 32;
    if (codes) {
      const stated = this.statedWeightBits[layer];
      // without metadata: the narrowest signed grid that holds the codes
      weightBits = stated ?? Math.max(2, bitsOf(2 * Math.max(-codes.min, codes.max + 1)));
      if (codes.min < -(2 ** (weightBits - 1)) || codes.max > 2 ** (weightBits - 1) - 1) {
        this.fail(node, `metadata '${WEIGHT_BITS_METADATA}' gives ${layer} ${weightBits} bits, its weight codes reach [${codes.min}, ${codes.max}]`);
      }
    }
    this.qdqBits[layer] = { weightBits, actBits: grid ? bitsOf(grid.hi - grid.lo + 1) : 32 };
  }

  private constant(node: OnnxNode, index: number, what: string): OnnxTensor {
    const name = node.inputs[index];
    const v = name === undefined || name === '' ? undefined : this.values.get(name);
    if (!v || !('constant' in v)) this.fail(node, `${what} (input ${index}, '${name ?? ''}') must be an initializer or a Constant`);
    return v.constant;
  }

  private optionalConstant(node: OnnxNode, index: number, what: string): OnnxTensor | undefined {
    const name = node.inputs[index];
    return name === undefined || name === '' ? undefined : this.constant(node, index, what);
  }

  /** A constant's values as numbers (weights as float32). */
  private floats(node: OnnxNode, t: OnnxTensor, what: string): Float32Array {
    const d = t.data;
    if (d instanceof Float32Array) return d;
    if (d instanceof Float64Array) return Float32Array.from(d);
    if (d instanceof BigInt64Array || d instanceof BigUint64Array) return Float32Array.from(d, Number);
    if (d instanceof Int32Array || d instanceof Int8Array || d instanceof Uint8Array || d instanceof Int16Array || d instanceof Uint16Array || d instanceof Uint32Array) {
      return Float32Array.from(d);
    }
    this.fail(node, `${what} '${t.name}' has a data type mpq cannot read as numbers`);
  }

  private ints(node: OnnxNode, t: OnnxTensor, what: string): number[] {
    return Array.from(this.floats(node, t, what), (x) => Math.round(x));
  }

  private add(node: OnnxNode, name: string, spec: NodeSpec, inputs: string[], weights: Record<string, Float32Array> = {}): string {
    try {
      const out = this.b.add(name, spec, inputs, this.withWeights ? weights : {});
      this.values.set(node.outputs[0], { node: out });
      return out;
    } catch (err) {
      // the graph node's name is the layer's (a module path), which may differ from the ONNX node's
      if (err instanceof GraphError) this.fail(node, err.node === node.name ? err.detail : `layer '${err.node}': ${err.detail}`);
      throw err;
    }
  }

  private shapeOf(name: string): Shape {
    return this.b.shape(name);
  }

  private node(node: OnnxNode): void {
    if (node.domain !== '' && node.domain !== 'ai.onnx') this.fail(node, `domain '${node.domain}' is not supported (standard ONNX operators only)`);
    const plain = this.uniqueName(node.name.replace(/^\//, '') || node.outputs[0]);
    const activation = (fn: ActivationFn, extra: Partial<Extract<NodeSpec, { op: 'activation' }>> = {}) =>
      this.add(node, plain, { op: 'activation', fn, ...extra }, [this.input(node, 0)]);
    switch (node.opType) {
      case 'Constant': {
        const value = onnxAttribute(node, 'value', 'tensor', this.path);
        if (!value) this.fail(node, 'only Constant nodes with a tensor `value` are supported');
        this.values.set(node.outputs[0], { constant: value });
        return;
      }
      case 'Identity':
      case 'Dropout': {
        const v = this.values.get(node.inputs[0]);
        if (!v) this.fail(node, `input '${node.inputs[0]}' is unknown`);
        this.values.set(node.outputs[0], v);
        return;
      }
      case 'Conv': return this.conv(node);
      case 'Gemm': return this.gemm(node);
      case 'MatMul': return this.matMul(node);
      case 'BatchNormalization': return this.batchNorm(node);
      case 'Add': {
        const a = this.values.get(node.inputs[0]);
        const b = this.values.get(node.inputs[1]);
        if (!a || !b || !('node' in a) || !('node' in b)) this.fail(node, 'an Add of a constant is supported only as the bias of a MatMul (MatMul + Add)');
        this.add(node, plain, { op: 'add' }, [a.node, b.node]);
        return;
      }
      case 'Relu': activation('relu'); return;
      case 'Sigmoid':
        if (this.selfProduct(node, plain, 'swish')) return;
        activation('sigmoid');
        return;
      case 'Tanh': activation('tanh'); return;
      case 'HardSwish': activation('hardswish'); return;
      case 'Gelu': {
        const approximate = onnxAttribute(node, 'approximate', 'string', this.path) ?? 'none';
        if (approximate !== 'none') this.fail(node, `approximate '${approximate}' is not supported (the exact erf form only)`);
        activation('gelu');
        return;
      }
      case 'HardSigmoid':
        // x · HardSigmoid(x; 1/6, 1/2) is hard-swish (how opsets below 14 say it)
        if (Math.abs((onnxAttribute(node, 'alpha', 'float', this.path) ?? 0.2) - 1 / 6) < 1e-6 && (onnxAttribute(node, 'beta', 'float', this.path) ?? 0.5) === 0.5
          && this.selfProduct(node, plain, 'hardswish')) return;
        activation('hardsigmoid', { alpha: onnxAttribute(node, 'alpha', 'float', this.path) ?? 0.2, beta: onnxAttribute(node, 'beta', 'float', this.path) ?? 0.5 });
        return;
      case 'LeakyRelu': activation('leakyrelu', { alpha: onnxAttribute(node, 'alpha', 'float', this.path) ?? 0.01 }); return;
      case 'Clip': {
        const bound = (index: number, attr: 'min' | 'max'): number | undefined => {
          const t = this.optionalConstant(node, index, attr);
          return t ? this.floats(node, t, attr)[0] : onnxAttribute(node, attr, 'float', this.path);
        };
        const min = bound(1, 'min');
        const max = bound(2, 'max');
        if (this.onlyReader(node.outputs[0])?.opType === 'QuantizeLinear') {
          // the narrower grid of the quantizer after it
          this.values.set(node.outputs[0], { clip: { node: this.input(node, 0), min, max } });
          return;
        }
        if (min === 0 && max === 6) activation('relu6');
        else if (min === 0 && max === undefined) activation('relu');
        else activation('clip', { ...(min !== undefined && { min }), ...(max !== undefined && { max }) });
        return;
      }
      case 'Softmax': {
        const x = this.input(node, 0);
        const rank = this.shapeOf(x).length + 1;
        const axis = onnxAttribute(node, 'axis', 'int', this.path) ?? -1;
        if (rank !== 2 || (axis !== 1 && axis !== -1)) this.fail(node, `softmax over axis ${axis} of a rank-${rank} value; mpq supports the class axis of [N, classes]`);
        activation('softmax');
        return;
      }
      case 'Concat': {
        const inputs = node.inputs.map((_, i) => this.input(node, i));
        const rank = this.shapeOf(inputs[0]).length + 1;
        const axis = onnxAttribute(node, 'axis', 'int', this.path) ?? this.fail(node, 'no axis');
        const a = axis < 0 ? rank + axis : axis;
        // NCHW axes 1, 2, 3 are our [h, w, c] axes 2, 0, 1
        const ours = rank === 4 ? [NaN, 2, 0, 1][a] : a - 1;
        if (!(ours >= 0)) this.fail(node, `concatenation over axis ${axis} (the batch axis) is not supported`);
        this.add(node, plain, { op: 'concat', axis: ours }, inputs);
        return;
      }
      case 'MaxPool':
      case 'AveragePool': return this.pool(node, plain);
      case 'GlobalAveragePool':
      case 'GlobalMaxPool': {
        const x = this.input(node, 0);
        if (this.shapeOf(x).length !== 3) this.fail(node, 'needs an image input [N, C, H, W]');
        this.add(node, plain, { op: node.opType === 'GlobalAveragePool' ? 'globalavgpool' : 'globalmaxpool', keepDims: true }, [x]);
        return;
      }
      case 'Flatten': {
        const axis = onnxAttribute(node, 'axis', 'int', this.path) ?? 1;
        if (axis !== 1) this.fail(node, `axis ${axis}: mpq supports flattening everything after the batch axis (axis 1)`);
        const x = this.values.get(node.inputs[0]);
        const nhwc = x !== undefined && 'transposed' in x;
        this.add(node, plain, { op: 'flatten', channelsFirst: !nhwc }, [nhwc ? (x as { transposed: string }).transposed : this.input(node, 0)]);
        return;
      }
      case 'Transpose': {
        // NCHW → NHWC before a Flatten: a channels-last flatten
        const perm = onnxAttribute(node, 'perm', 'ints', this.path);
        if (perm?.join() !== '0,2,3,1' || this.onlyReader(node.outputs[0])?.opType !== 'Flatten') this.fail(node, 'a Transpose is supported only as NCHW → NHWC before a Flatten');
        this.values.set(node.outputs[0], { transposed: this.input(node, 0) });
        return;
      }
      case 'QuantizeLinear': return this.quantizeLinear(node);
      case 'DequantizeLinear': return this.dequantizeLinear(node);
      case 'Reshape': {
        const x = this.input(node, 0);
        const target = this.ints(node, this.constant(node, 1, 'the shape'), 'the shape');
        const size = this.shapeOf(x).reduce((a, b) => a * b, 1);
        // [N, -1], [0, -1] or [N, size]: a flatten of everything after the batch axis
        if (target.length === 2 && (target[1] === -1 || target[1] === size)) {
          this.add(node, plain, { op: 'flatten', channelsFirst: true }, [x]);
          return;
        }
        this.fail(node, `reshape to [${target.join(', ')}]: mpq supports flattening to [N, features] only`);
      }
      case 'Pad': return this.pad(node, plain);
      default:
        this.fail(node, `op '${node.opType}' is not supported (supported: ${SUPPORTED_ONNX_OPS.join(', ')})`);
    }
  }

  private conv(node: OnnxNode): void {
    const x = this.input(node, 0);
    const wt = this.constant(node, 1, 'the weight');
    const bt = this.optionalConstant(node, 2, 'the bias');
    if (wt.dims.length !== 4) this.fail(node, `weight '${wt.name}' has shape [${wt.dims.join(', ')}]; mpq imports 2-D convolutions (OIHW)`);
    const [out, inPerGroup, kh, kw] = wt.dims;
    const shape = this.shapeOf(x);
    if (shape.length !== 3) this.fail(node, 'needs an image input [N, C, H, W]');
    const [h, w] = shape;
    const groups = onnxAttribute(node, 'group', 'int', this.path) ?? 1;
    const strides = (onnxAttribute(node, 'strides', 'ints', this.path) ?? [1, 1]) as [number, number];
    const dilations = (onnxAttribute(node, 'dilations', 'ints', this.path) ?? [1, 1]) as [number, number];
    const kernel = onnxAttribute(node, 'kernel_shape', 'ints', this.path) ?? [kh, kw];
    if (kernel[0] !== kh || kernel[1] !== kw) this.fail(node, `kernel_shape [${kernel.join(', ')}] does not match the weight's [${kh}, ${kw}]`);
    const pads = this.padsOf(node, [h, w], [kh, kw], strides, dilations);
    const name = this.moduleName(node, node.inputs[1]);
    const weights: Record<string, Float32Array> = {};
    if (this.withWeights) {
      // OIHW → [kh, kw, in/groups, out]
      const src = this.floats(node, wt, 'the weight');
      const dst = new Float32Array(src.length);
      for (let o = 0; o < out; o++) {
        for (let i = 0; i < inPerGroup; i++) {
          for (let y = 0; y < kh; y++) for (let z = 0; z < kw; z++) dst[((y * kw + z) * inPerGroup + i) * out + o] = src[((o * inPerGroup + i) * kh + y) * kw + z];
        }
      }
      weights.weight = dst;
      if (bt) weights.bias = this.floats(node, bt, 'the bias');
    }
    if (shape[2] !== inPerGroup * groups) this.fail(node, `weight '${wt.name}' takes ${inPerGroup * groups} input channels (${inPerGroup} per group × ${groups}), the input has ${shape[2]}`);
    this.add(node, name, {
      op: 'conv', filters: out, kernel: [kh, kw], strides: [strides[0], strides[1]], dilations: [dilations[0], dilations[1]], pads, groups, bias: bt !== undefined,
    }, [x], weights);
    this.noteBits(node, name);
  }

  /** Explicit pads, or auto_pad's SAME_UPPER / SAME_LOWER / VALID. */
  private padsOf(node: OnnxNode, [h, w]: number[], kernel: number[], strides: number[], dilations: number[]): Pads2d {
    const auto = onnxAttribute(node, 'auto_pad', 'string', this.path) ?? 'NOTSET';
    if (auto === 'NOTSET') {
      const p = onnxAttribute(node, 'pads', 'ints', this.path) ?? [0, 0, 0, 0];
      if (p.length !== 4) this.fail(node, `pads [${p.join(', ')}] are not 2-D pads`);
      return [p[0], p[1], p[2], p[3]];
    }
    if (auto === 'VALID') return [0, 0, 0, 0];
    const same = (size: number, k: number, s: number, d: number): [number, number] => {
      const total = Math.max((Math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0);
      const small = Math.floor(total / 2);
      return auto === 'SAME_UPPER' ? [small, total - small] : [total - small, small];
    };
    if (auto !== 'SAME_UPPER' && auto !== 'SAME_LOWER') this.fail(node, `auto_pad '${auto}' is not supported`);
    const [top, bottom] = same(h, kernel[0], strides[0], dilations[0]);
    const [left, right] = same(w, kernel[1], strides[1], dilations[1]);
    return [top, left, bottom, right];
  }

  private pool(node: OnnxNode, name: string): void {
    const x = this.input(node, 0);
    const shape = this.shapeOf(x);
    if (shape.length !== 3) this.fail(node, 'needs an image input [N, C, H, W]');
    const kernel = onnxAttribute(node, 'kernel_shape', 'ints', this.path) ?? this.fail(node, 'no kernel_shape');
    const strides = onnxAttribute(node, 'strides', 'ints', this.path) ?? [1, 1];
    const dilations = onnxAttribute(node, 'dilations', 'ints', this.path) ?? [1, 1];
    if (kernel.length !== 2) this.fail(node, `kernel_shape [${kernel.join(', ')}]: 2-D pooling only`);
    if (dilations.some((d) => d !== 1)) this.fail(node, 'dilated pooling is not supported');
    const pads = this.padsOf(node, shape, kernel, strides, [1, 1]);
    if (onnxAttribute(node, 'ceil_mode', 'int', this.path) === 1) {
      // ceil mode: a last window that starts inside the input is kept; pad after so it fits
      for (const [axis, before, after] of [[0, 0, 2], [1, 1, 3]] as const) {
        const span = shape[axis] + pads[before] + pads[after] - kernel[axis];
        let out = Math.ceil(span / strides[axis]) + 1;
        if ((out - 1) * strides[axis] >= shape[axis] + pads[before]) out--;
        pads[after] += Math.max((out - 1) * strides[axis] + kernel[axis] - (shape[axis] + pads[before] + pads[after]), 0);
      }
    }
    const countIncludePad = node.opType === 'AveragePool' && onnxAttribute(node, 'count_include_pad', 'int', this.path) === 1;
    this.add(node, name, {
      op: node.opType === 'MaxPool' ? 'maxpool' : 'avgpool', kernel: [kernel[0], kernel[1]], strides: [strides[0], strides[1]], pads,
      ...(node.opType === 'AveragePool' ? { countIncludePad } : {}),
    }, [x]);
  }

  private pad(node: OnnxNode, name: string): void {
    const x = this.input(node, 0);
    const mode = onnxAttribute(node, 'mode', 'string', this.path) ?? 'constant';
    if (mode !== 'constant') this.fail(node, `mode '${mode}' is not supported (constant padding only)`);
    const padsTensor = this.optionalConstant(node, 1, 'the pads');
    const pads = padsTensor ? this.ints(node, padsTensor, 'the pads') : onnxAttribute(node, 'pads', 'ints', this.path) ?? this.fail(node, 'no pads');
    if (node.inputs[3] !== undefined && node.inputs[3] !== '') this.fail(node, 'padding selected axes (input axes) is not supported');
    const valueTensor = this.optionalConstant(node, 2, 'the constant value');
    const value = valueTensor ? this.floats(node, valueTensor, 'the constant value')[0] ?? 0 : onnxAttribute(node, 'value', 'float', this.path) ?? 0;
    const rank = this.shapeOf(x).length + 1;
    if (pads.length !== 2 * rank) this.fail(node, `${pads.length} pads for a rank-${rank} value`);
    const axis = (a: number): [number, number] => [pads[a], pads[a + rank]];
    if (axis(0).some((p) => p !== 0)) this.fail(node, 'padding the batch axis is not supported');
    if (pads.some((p) => p < 0)) this.fail(node, 'negative pads (cropping) are not supported');
    const perAxis = rank === 4 ? [axis(2), axis(3), axis(1)] : [axis(1)];
    this.add(node, name, { op: 'pad', pads: perAxis, value }, [x]);
  }

  /** Gemm: A·B (+ C), B a constant: a dense layer; transA is not supported. */
  private gemm(node: OnnxNode): void {
    const x = this.input(node, 0);
    if ((onnxAttribute(node, 'transA', 'int', this.path) ?? 0) !== 0) this.fail(node, 'transA 1 is not supported');
    const transB = (onnxAttribute(node, 'transB', 'int', this.path) ?? 0) === 1;
    const alpha = onnxAttribute(node, 'alpha', 'float', this.path) ?? 1;
    const beta = onnxAttribute(node, 'beta', 'float', this.path) ?? 1;
    const bt = this.constant(node, 1, 'B (the weight)');
    const ct = this.optionalConstant(node, 2, 'C (the bias)');
    this.dense(node, x, bt, transB, alpha, ct, beta);
  }

  /** MatMul by a constant: a dense layer; an Add of a constant vector right after it is its bias. */
  private matMul(node: OnnxNode): void {
    const x = this.input(node, 0);
    const bt = this.constant(node, 1, 'the weight');
    const out = node.outputs[0];
    const add = this.order.find((n) => n.opType === 'Add' && n.inputs.includes(out));
    const other = add && add.inputs[add.inputs[0] === out ? 1 : 0];
    const bias = other !== undefined ? this.values.get(other) : undefined;
    const fuse = add !== undefined && this.readers.get(out) === 1 && bias !== undefined && 'constant' in bias;
    if (fuse) this.fused.add(add!);
    this.dense(node, x, bt, false, 1, fuse ? (bias as { constant: OnnxTensor }).constant : undefined, 1, fuse ? add : undefined);
  }

  private dense(node: OnnxNode, x: string, bt: OnnxTensor, transB: boolean, alpha: number, ct: OnnxTensor | undefined, beta: number, biasNode?: OnnxNode): void {
    if (bt.dims.length !== 2) this.fail(node, `weight '${bt.name}' has shape [${bt.dims.join(', ')}]; a dense layer needs a matrix`);
    const [rows, cols] = bt.dims;
    const [inFeatures, units] = transB ? [cols, rows] : [rows, cols];
    const features = this.shapeOf(x).at(-1);
    if (this.shapeOf(x).length !== 1) this.fail(node, `input [N, ${this.shapeOf(x).join(', ')}]: mpq imports dense layers on [N, features] (flatten first)`);
    if (features !== inFeatures) this.fail(node, `weight '${bt.name}' takes ${inFeatures} features, the input has ${features}`);
    const weights: Record<string, Float32Array> = {};
    if (ct) {
      const c = this.floats(node, ct, 'the bias');
      if (c.length !== units && c.length !== 1) this.fail(node, `bias '${ct.name}' has ${c.length} values for ${units} units`);
      if (this.withWeights) weights.bias = Float32Array.from({ length: units }, (_, j) => beta * (c.length === 1 ? c[0] : c[j]));
    }
    if (this.withWeights) {
      const b = this.floats(node, bt, 'the weight');
      const w = new Float32Array(inFeatures * units);
      for (let i = 0; i < inFeatures; i++) for (let j = 0; j < units; j++) w[i * units + j] = alpha * (transB ? b[j * inFeatures + i] : b[i * units + j]);
      weights.weight = w;
    }
    const name = this.moduleName(node, node.inputs[1]);
    this.add(node, name, { op: 'dense', units, bias: ct !== undefined }, [x], weights);
    this.noteBits(node, name);
    if (biasNode) this.values.set(biasNode.outputs[0], this.values.get(node.outputs[0])!);
  }

  private batchNorm(node: OnnxNode): void {
    const x = this.input(node, 0);
    if ((onnxAttribute(node, 'training_mode', 'int', this.path) ?? 0) !== 0) this.fail(node, 'training_mode 1: export the model in eval mode');
    const epsilon = onnxAttribute(node, 'epsilon', 'float', this.path) ?? 1e-5;
    const params = ['gamma', 'beta', 'mean', 'variance'].map((p, i) => this.constant(node, i + 1, p));
    const channels = this.shapeOf(x).at(-1)!;
    const weights: Record<string, Float32Array> = {};
    ['gamma', 'beta', 'mean', 'variance'].forEach((p, i) => {
      const values = this.floats(node, params[i], p);
      if (values.length !== channels) this.fail(node, `${p} '${params[i].name}' has ${values.length} values for ${channels} channels`);
      if (this.withWeights) weights[p] = values;
    });
    this.add(node, this.moduleName(node, node.inputs[1]), { op: 'batchnorm', epsilon }, [x], weights);
  }
}
