/**
 * ONNX files as plain objects: decode and encode ModelProto with protobufjs and the ONNX schema
 * (./schema.ts). Heavy to load compared with the search path, so callers import this module only
 * when they meet an .onnx file. Anything wrong with a file is a one-line UserError naming it.
 */
import protobuf from 'protobufjs';
import { UserError } from '../../util/errors.js';
import { MAX_BINARY_INPUT_BYTES, readInputFile, writeOutput } from '../../util/fs.js';
import { ONNX_PROTO } from './schema.js';
import { decodeTensorData, encodeTensorData, int64ToNumber, type Int64, type OnnxTensorData, type StoredTensorData } from './tensor-data.js';

export { ONNX_DATA_TYPE, dataTypeName, type OnnxTensorData } from './tensor-data.js';

export interface OnnxModel {
  irVersion: number;
  /** operator sets; domain '' is the default ONNX domain (ai.onnx) */
  opsetImports: { domain: string; version: number }[];
  producerName: string;
  producerVersion: string;
  graph: OnnxGraph;
  /** the model's metadata_props (key → value strings), when it has any */
  metadataProps?: { key: string; value: string }[];
}

export interface OnnxGraph {
  name: string;
  /** in the file's order, which ONNX requires to be topological */
  nodes: OnnxNode[];
  initializers: OnnxTensor[];
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
  /** shapes of intermediate values, where the writer recorded them */
  valueInfo: OnnxValueInfo[];
}

export interface OnnxNode {
  name: string;
  opType: string;
  /** '' (or 'ai.onnx') for standard operators */
  domain: string;
  /** value names; '' marks an omitted optional input */
  inputs: string[];
  outputs: string[];
  attributes: Record<string, OnnxAttribute>;
}

/**
 * An attribute with its ONNX type: a JS number does not tell INT from FLOAT, and runtimes refuse
 * an attribute of the wrong type, so the type travels with the value. Subgraphs, sparse tensors
 * and type protos are recognised but not read (no value); encodeOnnx refuses them.
 */
export type OnnxAttribute =
  | { type: 'float'; value: number }
  | { type: 'int'; value: number }
  | { type: 'string'; value: string }
  | { type: 'tensor'; value: OnnxTensor }
  | { type: 'floats'; value: number[] }
  | { type: 'ints'; value: number[] }
  | { type: 'strings'; value: string[] }
  | { type: 'tensors'; value: OnnxTensor[] }
  | { type: 'graph' | 'graphs' | 'sparse_tensor' | 'sparse_tensors' | 'type_proto' | 'type_protos' };

export type OnnxAttributeType = OnnxAttribute['type'];

/** The value type of an attribute of type T. */
export type OnnxAttributeValue<T extends OnnxAttributeType> = Extract<OnnxAttribute, { type: T }> extends { value: infer V } ? V : never;

export interface OnnxTensor {
  name: string;
  /** TensorProto.DataType code (ONNX_DATA_TYPE) */
  dataType: number;
  dims: number[];
  /** row-major elements; see OnnxTensorData for what each data type decodes to */
  data: OnnxTensorData;
}

export interface OnnxValueInfo {
  name: string;
  /** TensorProto.DataType code of the elements */
  elemType: number;
  /** per dimension: a size, a symbolic name (e.g. 'batch'), or null when unknown; undefined when the rank is unknown */
  shape: (number | string | null)[] | undefined;
}

// ---------------------------------------------------------------------------------------------
// The decoded protobuf messages (field names as in onnx.proto: the schema is parsed with keepCase)

interface TensorMessage extends StoredTensorData {
  name?: string;
  data_type?: number;
  dims?: Int64[];
  data_location?: number;
  external_data?: { key?: string; value?: string }[];
  segment?: Uint8Array;
}

interface AttributeMessage {
  name?: string;
  type?: number;
  f?: number;
  i?: Int64;
  s?: Uint8Array;
  t?: TensorMessage;
  floats?: number[];
  ints?: Int64[];
  strings?: Uint8Array[];
  tensors?: TensorMessage[];
  g?: Uint8Array;
  graphs?: Uint8Array[];
  sparse_tensor?: Uint8Array;
  sparse_tensors?: Uint8Array[];
  tp?: Uint8Array;
  type_protos?: Uint8Array[];
}

interface NodeMessage {
  name?: string;
  op_type?: string;
  domain?: string;
  input?: string[];
  output?: string[];
  attribute?: AttributeMessage[];
}

interface ValueInfoMessage {
  name?: string;
  type?: {
    tensor_type?: { elem_type?: number; shape?: { dim?: { dim_value?: Int64; dim_param?: string }[] } };
    sequence_type?: Uint8Array;
    map_type?: Uint8Array;
    opaque_type?: Uint8Array;
    sparse_tensor_type?: Uint8Array;
    optional_type?: Uint8Array;
  };
}

interface GraphMessage {
  name?: string;
  node?: NodeMessage[];
  initializer?: TensorMessage[];
  sparse_initializer?: Uint8Array[];
  input?: ValueInfoMessage[];
  output?: ValueInfoMessage[];
  value_info?: ValueInfoMessage[];
}

interface ModelMessage {
  ir_version?: Int64;
  producer_name?: string;
  producer_version?: string;
  graph?: GraphMessage;
  opset_import?: { domain?: string; version?: Int64 }[];
  metadata_props?: { key?: string; value?: string }[];
}

let modelProto: protobuf.Type | undefined;
function ModelProto(): protobuf.Type {
  modelProto ??= protobuf.parse(ONNX_PROTO, { keepCase: true }).root.lookupType('onnx.ModelProto');
  return modelProto;
}

/** AttributeProto.AttributeType codes and the field each keeps its value in. */
const ATTRIBUTE_TYPES: { type: OnnxAttributeType; code: number; field: keyof AttributeMessage }[] = [
  { type: 'float', code: 1, field: 'f' },
  { type: 'int', code: 2, field: 'i' },
  { type: 'string', code: 3, field: 's' },
  { type: 'tensor', code: 4, field: 't' },
  { type: 'graph', code: 5, field: 'g' },
  { type: 'floats', code: 6, field: 'floats' },
  { type: 'ints', code: 7, field: 'ints' },
  { type: 'strings', code: 8, field: 'strings' },
  { type: 'tensors', code: 9, field: 'tensors' },
  { type: 'graphs', code: 10, field: 'graphs' },
  { type: 'sparse_tensor', code: 11, field: 'sparse_tensor' },
  { type: 'sparse_tensors', code: 12, field: 'sparse_tensors' },
  { type: 'type_proto', code: 13, field: 'tp' },
  { type: 'type_protos', code: 14, field: 'type_protos' },
];

// ---------------------------------------------------------------------------------------------
// Reading

/** ModelProto's fields and their wire types (0 varint, 2 length-delimited), to check a file's framing. */
const MODEL_FIELDS: Record<number, { name: string; wire: number }> = {
  1: { name: 'ir_version', wire: 0 },
  2: { name: 'producer_name', wire: 2 },
  3: { name: 'producer_version', wire: 2 },
  4: { name: 'domain', wire: 2 },
  5: { name: 'model_version', wire: 0 },
  6: { name: 'doc_string', wire: 2 },
  7: { name: 'graph', wire: 2 },
  8: { name: 'opset_import', wire: 2 },
  14: { name: 'metadata_props', wire: 2 },
  20: { name: 'training_info', wire: 2 },
  25: { name: 'functions', wire: 2 },
  26: { name: 'configuration', wire: 2 },
};

/** protobuf's size limit for one message (and so for an .onnx file without external data) */
const PROTOBUF_LIMIT = 2 ** 31 - 1;

function hex(bytes: Uint8Array): string {
  return Array.from(bytes.subarray(0, 8), (b) => b.toString(16).padStart(2, '0')).join(' ');
}

/**
 * Walks the top level of a ModelProto without decoding it, so that the common failures get their
 * own message: an empty file, a file of another kind, and a truncated file (a cut always falls
 * inside the top-level field that spans it, whose declared length then runs past the end).
 */
function checkFraming(bytes: Uint8Array, path: string): void {
  if (bytes.length === 0) throw new UserError(`${path}: empty file, not an ONNX model`);
  const firstChar = String.fromCharCode(bytes.find((b) => b !== 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09) ?? 0);
  const notOnnx = (why: string) => new UserError(`${path}: not an ONNX model (${why})`);
  if (firstChar === '{' || firstChar === '[') throw notOnnx('it is JSON text; an .onnx file is a binary protobuf ModelProto');
  const reader = protobuf.Reader.create(bytes);
  while (reader.pos < reader.len) {
    const at = reader.pos;
    let field: number;
    let wire: number;
    try {
      const tag = reader.uint32();
      [field, wire] = [tag >>> 3, tag & 7];
    } catch {
      throw notOnnx(`no valid field at byte ${at}`);
    }
    const known = MODEL_FIELDS[field];
    const where = at === 0 ? `it starts with bytes ${hex(bytes)}` : `byte ${at}`;
    if (at === 0 && known === undefined) throw notOnnx(`${where}, not a ModelProto field`);
    if (field === 0 || ![0, 1, 2, 5].includes(wire) || (known !== undefined && known.wire !== wire)) {
      throw notOnnx(`${where}: field ${field} with wire type ${wire} does not fit a ModelProto`);
    }
    const name = known?.name ?? `field ${field}`;
    if (wire !== 2) {
      try {
        reader.skipType(wire);
      } catch {
        throw new UserError(`${path}: truncated ONNX file (${name} at byte ${at} runs past the end, ${bytes.length} bytes)`);
      }
    } else {
      let length: number;
      try {
        length = int64ToNumber(reader.uint64() as unknown as Int64);
      } catch {
        throw new UserError(`${path}: truncated ONNX file (the length of ${name} at byte ${at} runs past the end)`);
      }
      const left = reader.len - reader.pos;
      if (length > PROTOBUF_LIMIT) throw new UserError(`${path}: corrupt ONNX file (${name} at byte ${at} declares ${length} bytes, more than a protobuf message can hold, 2 GiB)`);
      if (length > left) throw new UserError(`${path}: truncated or corrupt ONNX file (${name} at byte ${at} declares ${length} bytes, the file has ${left} left)`);
      reader.skip(length);
    }
  }
}

function int64(v: Int64 | undefined): number {
  return v === undefined ? 0 : int64ToNumber(v);
}

function utf8(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
}

/** Data outside the .onnx file cannot be read from a file path alone: say how to avoid it. */
function refuseExternalData(t: TensorMessage, where: string, path: string): void {
  if (t.data_location !== 1 && (t.external_data ?? []).length === 0) return;
  const location = t.external_data?.find((e) => e.key === 'location')?.value;
  throw new UserError(
    `${path}: ${where} keeps its data in an external file${location ? ` (${location})` : ''}, which mpq does not read; ` +
      'save the model as one self-contained .onnx file (torch.onnx.export writes one for models under 2 GB; ' +
      'onnx.save_model(onnx.load(path), out, save_as_external_data=False) merges the data back)',
  );
}

function decodeTensor(t: TensorMessage, where: string, path: string): OnnxTensor {
  refuseExternalData(t, where, path);
  if (t.segment !== undefined) throw new UserError(`${path}: ${where} is stored in segments, which mpq does not read`);
  const dims = (t.dims ?? []).map(int64);
  const dataType = t.data_type ?? 0;
  return { name: t.name ?? '', dataType, dims, data: decodeTensorData(dataType, dims, t, `${path}: ${where}`) };
}

function decodeAttribute(a: AttributeMessage, where: string, path: string): OnnxAttribute {
  // IR version 1 files have no type field: the one value field present tells it
  const spec =
    a.type !== undefined && a.type !== 0
      ? ATTRIBUTE_TYPES.find((s) => s.code === a.type)
      : ATTRIBUTE_TYPES.find((s) => Object.hasOwn(a, s.field) && !(Array.isArray(a[s.field]) && (a[s.field] as unknown[]).length === 0));
  if (spec === undefined) throw new UserError(`${path}: ${where} has no value or an unknown type (${a.type})`);
  switch (spec.type) {
    case 'float':
      return { type: 'float', value: a.f ?? 0 };
    case 'int':
      return { type: 'int', value: int64(a.i) };
    case 'string':
      return { type: 'string', value: utf8(a.s ?? new Uint8Array()) };
    case 'tensor':
      if (a.t === undefined) throw new UserError(`${path}: ${where} is of type TENSOR but holds no tensor`);
      return { type: 'tensor', value: decodeTensor(a.t, `tensor of ${where}`, path) };
    case 'floats':
      return { type: 'floats', value: [...(a.floats ?? [])] };
    case 'ints':
      return { type: 'ints', value: (a.ints ?? []).map(int64) };
    case 'strings':
      return { type: 'strings', value: (a.strings ?? []).map(utf8) };
    case 'tensors':
      return { type: 'tensors', value: (a.tensors ?? []).map((t, i) => decodeTensor(t, `tensor ${i} of ${where}`, path)) };
    default:
      return { type: spec.type };
  }
}

function decodeValueInfo(v: ValueInfoMessage, where: string, path: string): OnnxValueInfo {
  const name = v.name ?? '';
  const type = v.type;
  const tensor = type?.tensor_type;
  if (tensor === undefined) {
    const kind = type === undefined ? 'no type' : (Object.keys(type).find((k) => k.endsWith('_type')) ?? 'an unknown type');
    throw new UserError(`${path}: ${where} ${JSON.stringify(name)} has ${kind.replace(/_type$/, ' type')}; mpq reads tensor values only`);
  }
  // a shape with no dims is a scalar's; no shape at all is an unknown rank
  const shape = tensor.shape && (tensor.shape.dim ?? []).map((d) => (d.dim_value !== undefined ? int64(d.dim_value) : d.dim_param !== undefined && d.dim_param !== '' ? d.dim_param : null));
  return { name, elemType: tensor.elem_type ?? 0, shape };
}

function decodeNode(n: NodeMessage, index: number, path: string): OnnxNode {
  const name = n.name ?? '';
  const opType = n.op_type ?? '';
  const label = `node ${index}${name ? ` ${JSON.stringify(name)}` : ''}${opType ? ` (${opType})` : ''}`;
  if (opType === '') throw new UserError(`${path}: ${label} has no op_type`);
  const attributes: Record<string, OnnxAttribute> = {};
  for (const a of n.attribute ?? []) {
    const attrName = a.name ?? '';
    const where = `attribute ${JSON.stringify(attrName)} of ${label}`;
    if (attrName === '' || Object.hasOwn(attributes, attrName)) throw new UserError(`${path}: ${where}: ${attrName === '' ? 'no name' : 'given twice'}`);
    attributes[attrName] = decodeAttribute(a, where, path);
  }
  return { name, opType, domain: n.domain ?? '', inputs: [...(n.input ?? [])], outputs: [...(n.output ?? [])], attributes };
}

function toModel(m: ModelMessage, path: string): OnnxModel {
  const incomplete = (what: string) => new UserError(`${path}: not a complete ONNX model: ${what} (truncated file?)`);
  if (m.ir_version === undefined) throw incomplete('no ir_version');
  if (m.graph === undefined) throw incomplete('no graph');
  if ((m.opset_import ?? []).length === 0) throw incomplete('no opset_import');
  const g = m.graph;
  if ((g.sparse_initializer ?? []).length > 0) throw new UserError(`${path}: the graph has sparse initializers, which mpq does not read`);
  const metadata = (m.metadata_props ?? []).map((e) => ({ key: e.key ?? '', value: e.value ?? '' }));
  return {
    ...(metadata.length > 0 && { metadataProps: metadata }),
    irVersion: int64(m.ir_version),
    opsetImports: m.opset_import!.map((o) => ({ domain: o.domain ?? '', version: int64(o.version) })),
    producerName: m.producer_name ?? '',
    producerVersion: m.producer_version ?? '',
    graph: {
      name: g.name ?? '',
      nodes: (g.node ?? []).map((n, i) => decodeNode(n, i, path)),
      initializers: (g.initializer ?? []).map((t, i) => decodeTensor(t, `initializer ${t.name ? JSON.stringify(t.name) : i}`, path)),
      inputs: (g.input ?? []).map((v) => decodeValueInfo(v, 'graph input', path)),
      outputs: (g.output ?? []).map((v) => decodeValueInfo(v, 'graph output', path)),
      valueInfo: (g.value_info ?? []).map((v) => decodeValueInfo(v, 'value_info', path)),
    },
  };
}

/** Decodes the bytes of an .onnx file; `path` names it in errors. */
export function decodeOnnx(bytes: Uint8Array, path: string): OnnxModel {
  checkFraming(bytes, path);
  let message: ModelMessage;
  try {
    // as plain objects: only the fields present in the file, so an absent field reads as undefined
    message = ModelProto().toObject(ModelProto().decode(bytes)) as ModelMessage;
  } catch (err) {
    throw new UserError(`${path}: corrupt ONNX file (${(err as Error).message.replace(/\s+/g, ' ')})`);
  }
  return toModel(message, path);
}

export function readOnnxFile(path: string): OnnxModel {
  return decodeOnnx(readInputFile(path, 'ONNX', MAX_BINARY_INPUT_BYTES), path);
}

// ---------------------------------------------------------------------------------------------
// Writing

const INT64_LIMIT = 2 ** 63;

/**
 * A number for an int64 field: ±2^63 and beyond (INT64_MAX, common as "to the end" in Slice, reads
 * as the double 2^63) are written as the int64 limits (protobufjs takes them as decimal strings).
 */
function toInt64(v: number): Int64 {
  if (!Number.isInteger(v)) throw new RangeError(`${v} is not an integer`);
  if (v >= INT64_LIMIT) return '9223372036854775807';
  if (v <= -INT64_LIMIT) return '-9223372036854775808';
  return v;
}

function encodeTensor(t: OnnxTensor): TensorMessage {
  return { name: t.name, data_type: t.dataType, dims: t.dims.map(toInt64), raw_data: encodeTensorData(t.dataType, t.dims, t.data, t.name) };
}

function encodeAttribute(name: string, a: OnnxAttribute, node: OnnxNode): AttributeMessage {
  const spec = ATTRIBUTE_TYPES.find((s) => s.type === a.type)!;
  const message: AttributeMessage = { name, type: spec.code };
  switch (a.type) {
    case 'float':
    case 'floats':
      return { ...message, [spec.field]: a.value };
    case 'int':
      return { ...message, i: toInt64(a.value) };
    case 'ints':
      return { ...message, ints: a.value.map(toInt64) };
    case 'string':
      return { ...message, s: Buffer.from(a.value, 'utf8') };
    case 'strings':
      return { ...message, strings: a.value.map((s) => Buffer.from(s, 'utf8')) };
    case 'tensor':
      return { ...message, t: encodeTensor(a.value) };
    case 'tensors':
      return { ...message, tensors: a.value.map(encodeTensor) };
    default:
      throw new TypeError(`node ${JSON.stringify(node.name)} (${node.opType}): attribute ${name} of type ${a.type} was not read, so it cannot be written`);
  }
}

function encodeValueInfo(v: OnnxValueInfo): ValueInfoMessage {
  const dim = v.shape?.map((d) => (typeof d === 'number' ? { dim_value: toInt64(d) } : typeof d === 'string' ? { dim_param: d } : {}));
  return { name: v.name, type: { tensor_type: { elem_type: v.elemType, ...(dim && { shape: { dim } }) } } };
}

/** The bytes of an .onnx file (initializer data as raw_data, INT4/UINT4 packed two per byte). */
export function encodeOnnx(model: OnnxModel): Uint8Array {
  const g = model.graph;
  const message: ModelMessage = {
    ir_version: toInt64(model.irVersion),
    producer_name: model.producerName,
    producer_version: model.producerVersion,
    graph: {
      name: g.name,
      node: g.nodes.map((n) => ({
        name: n.name,
        op_type: n.opType,
        domain: n.domain,
        input: n.inputs,
        output: n.outputs,
        attribute: Object.entries(n.attributes).map(([name, a]) => encodeAttribute(name, a, n)),
      })),
      initializer: g.initializers.map(encodeTensor),
      input: g.inputs.map(encodeValueInfo),
      output: g.outputs.map(encodeValueInfo),
      value_info: g.valueInfo.map(encodeValueInfo),
    },
    opset_import: model.opsetImports.map((o) => ({ domain: o.domain, version: toInt64(o.version) })),
    metadata_props: model.metadataProps ?? [],
  };
  return ModelProto().encode(message).finish();
}

/** Writes an .onnx file atomically (a temp file renamed into place: never a half-written model). */
export function writeOnnxFile(path: string, model: OnnxModel): void {
  writeOutput(path, encodeOnnx(model));
}

/**
 * An attribute's value if the node has it, checked to be of the given type; `path` names the file
 * in the error. E.g. `onnxAttribute(node, 'strides', 'ints', path) ?? [1, 1]`.
 */
export function onnxAttribute<T extends OnnxAttributeType>(node: OnnxNode, name: string, type: T, path: string): OnnxAttributeValue<T> | undefined {
  const a = node.attributes[name];
  if (a === undefined) return undefined;
  if (a.type !== type) throw new UserError(`${path}: node ${JSON.stringify(node.name)} (${node.opType}): attribute ${name} is of type ${a.type}, expected ${type}`);
  return (a as unknown as { value: OnnxAttributeValue<T> }).value;
}
