/**
 * Tensor element data of ONNX TensorProto: the data types, and the conversion between their stored
 * form (raw_data little-endian bytes, or the typed *_data fields) and JS typed arrays. raw_data is
 * viewed through typed arrays, which use the host's byte order: little-endian on every platform
 * node runs on.
 */
import { UserError } from '../../util/errors.js';

/** TensorProto.DataType codes (onnx.proto). */
export const ONNX_DATA_TYPE = {
  UNDEFINED: 0,
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  UINT16: 4,
  INT16: 5,
  INT32: 6,
  INT64: 7,
  STRING: 8,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
  UINT32: 12,
  UINT64: 13,
  COMPLEX64: 14,
  COMPLEX128: 15,
  BFLOAT16: 16,
  FLOAT8E4M3FN: 17,
  FLOAT8E4M3FNUZ: 18,
  FLOAT8E5M2: 19,
  FLOAT8E5M2FNUZ: 20,
  UINT4: 21,
  INT4: 22,
  FLOAT4E2M1: 23,
} as const;

/** The name of a data type code, e.g. 22 → "INT4", for messages. */
export function dataTypeName(code: number): string {
  return Object.entries(ONNX_DATA_TYPE).find(([, c]) => c === code)?.[0] ?? `unknown (${code})`;
}

/**
 * Element data as JS sees it. FLOAT16 and BFLOAT16 are widened to Float32Array; BOOL is a
 * Uint8Array of 0/1; INT4 / UINT4 hold one element per Int8Array / Uint8Array entry (packed two per
 * byte only in the file).
 */
export type OnnxTensorData =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array;

type ArrayClass =
  | Float32ArrayConstructor
  | Float64ArrayConstructor
  | Int8ArrayConstructor
  | Uint8ArrayConstructor
  | Int16ArrayConstructor
  | Uint16ArrayConstructor
  | Int32ArrayConstructor
  | Uint32ArrayConstructor
  | BigInt64ArrayConstructor
  | BigUint64ArrayConstructor;

/** The typed field of TensorProto that holds a type's elements when raw_data is not used. */
type TypedField = 'float_data' | 'int32_data' | 'int64_data' | 'double_data' | 'uint64_data';

interface ElementType {
  /** what the data decodes to */
  array: ArrayClass;
  /** how elements are laid out in raw_data: as the array itself, as 16-bit floats, or 4-bit packed */
  stored: 'plain' | 'float16' | 'bfloat16' | 'int4' | 'uint4';
  field: TypedField;
}

const T = ONNX_DATA_TYPE;
const ELEMENT_TYPES: Partial<Record<number, ElementType>> = {
  [T.FLOAT]: { array: Float32Array, stored: 'plain', field: 'float_data' },
  [T.UINT8]: { array: Uint8Array, stored: 'plain', field: 'int32_data' },
  [T.INT8]: { array: Int8Array, stored: 'plain', field: 'int32_data' },
  [T.UINT16]: { array: Uint16Array, stored: 'plain', field: 'int32_data' },
  [T.INT16]: { array: Int16Array, stored: 'plain', field: 'int32_data' },
  [T.INT32]: { array: Int32Array, stored: 'plain', field: 'int32_data' },
  [T.INT64]: { array: BigInt64Array, stored: 'plain', field: 'int64_data' },
  [T.BOOL]: { array: Uint8Array, stored: 'plain', field: 'int32_data' },
  [T.FLOAT16]: { array: Float32Array, stored: 'float16', field: 'int32_data' },
  [T.DOUBLE]: { array: Float64Array, stored: 'plain', field: 'double_data' },
  [T.UINT32]: { array: Uint32Array, stored: 'plain', field: 'uint64_data' },
  [T.UINT64]: { array: BigUint64Array, stored: 'plain', field: 'uint64_data' },
  [T.BFLOAT16]: { array: Float32Array, stored: 'bfloat16', field: 'int32_data' },
  [T.UINT4]: { array: Uint8Array, stored: 'uint4', field: 'int32_data' },
  [T.INT4]: { array: Int8Array, stored: 'int4', field: 'int32_data' },
};

/** A 64-bit integer as protobufjs takes or decodes it: a number, a decimal string or a `long` Long. */
export type Int64 = number | string | { toNumber(): number; toString(): string };

export function int64ToNumber(v: Int64): number {
  return typeof v === 'object' ? v.toNumber() : Number(v);
}

/** TensorProto's data fields as decoded by protobufjs. */
export interface StoredTensorData {
  raw_data?: Uint8Array;
  float_data?: number[];
  int32_data?: number[];
  int64_data?: Int64[];
  double_data?: number[];
  uint64_data?: Int64[];
}

/** Bytes of raw_data for `count` elements. */
function storedBytes(type: ElementType, count: number): number {
  if (type.stored === 'int4' || type.stored === 'uint4') return Math.ceil(count / 2);
  if (type.stored === 'float16' || type.stored === 'bfloat16') return count * 2;
  return count * type.array.BYTES_PER_ELEMENT;
}

function elementType(dataType: number, where: string): ElementType {
  const type = ELEMENT_TYPES[dataType];
  if (type === undefined) throw new UserError(`${where}: data type ${dataTypeName(dataType)} is not supported (mpq reads numeric tensors: FLOAT, FLOAT16, BFLOAT16, DOUBLE, [U]INT4/8/16/32/64, BOOL)`);
  return type;
}

/** 4-bit elements from bytes packed two per byte, the first element in the low nibble. */
export function unpack4(bytes: Uint8Array, count: number, signed: boolean): Int8Array | Uint8Array {
  const out = signed ? new Int8Array(count) : new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    const nibble = (bytes[i >> 1] >> ((i & 1) * 4)) & 0xf;
    out[i] = signed ? (nibble ^ 8) - 8 : nibble;
  }
  return out;
}

/** Packs 4-bit elements two per byte, the first in the low nibble; an odd count leaves the last high nibble 0. */
export function pack4(values: ArrayLike<number>, signed: boolean): Uint8Array {
  const [lo, hi] = signed ? [-8, 7] : [0, 15];
  const out = new Uint8Array(Math.ceil(values.length / 2));
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isInteger(v) || v < lo || v > hi) throw new RangeError(`${signed ? 'INT4' : 'UINT4'} element ${i} is ${v}, outside [${lo}, ${hi}]`);
    out[i >> 1] |= (v & 0xf) << ((i & 1) * 4);
  }
  return out;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE 754 half-precision bits → number. */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const fraction = h & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 31) return fraction ? NaN : sign * Infinity;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

/** number → IEEE 754 half-precision bits, rounded to nearest even (float32 first, as numpy does). */
export function floatToHalf(value: number): number {
  f32[0] = value;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exponent = ((x >>> 23) & 0xff) - 127 + 15;
  let mantissa = x & 0x7fffff;
  if (((x >>> 23) & 0xff) === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0);
  if (exponent >= 31) return sign | 0x7c00;
  let shift = 13;
  let base = exponent << 10;
  if (exponent <= 0) {
    if (exponent < -10) return sign;
    // a half subnormal: the implicit leading 1 becomes part of the fraction
    mantissa |= 0x800000;
    shift = 14 - exponent;
    base = 0;
  }
  let half = base | (mantissa >>> shift);
  const rest = mantissa & ((1 << shift) - 1);
  const halfway = 1 << (shift - 1);
  // a carry out of the fraction correctly steps the exponent (up to infinity)
  if (rest > halfway || (rest === halfway && (half & 1) === 1)) half++;
  return sign | half;
}

function bfloat16ToFloat(b: number): number {
  u32[0] = b << 16;
  return f32[0];
}

function floatToBfloat16(value: number): number {
  f32[0] = value;
  const x = u32[0];
  if (Number.isNaN(value)) return (x >>> 16) | 0x40;
  return (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
}

/** Element count of a shape; dims must be whole numbers ≥ 0. */
export function elementCount(dims: readonly number[], where: string): number {
  for (const d of dims) if (!Number.isSafeInteger(d) || d < 0) throw new UserError(`${where}: dims [${dims.join(', ')}] are not whole numbers ≥ 0`);
  return dims.reduce((a, b) => a * b, 1);
}

function fromStoredInts(type: ElementType, ints: ArrayLike<number>, count: number): OnnxTensorData {
  switch (type.stored) {
    case 'float16':
      return Float32Array.from({ length: count }, (_, i) => halfToFloat(ints[i] & 0xffff));
    case 'bfloat16':
      return Float32Array.from({ length: count }, (_, i) => bfloat16ToFloat(ints[i] & 0xffff));
    case 'int4':
    case 'uint4':
      return unpack4(Uint8Array.from(ints), count, type.stored === 'int4');
    default:
      return (type.array as Exclude<ArrayClass, BigInt64ArrayConstructor | BigUint64ArrayConstructor>).from(ints);
  }
}

/**
 * The elements of a TensorProto: from raw_data when it holds bytes, else from the type's typed
 * field. The stored size must match the dims, so a corrupt tensor is refused before any
 * allocation of the size its dims claim.
 */
export function decodeTensorData(dataType: number, dims: readonly number[], stored: StoredTensorData, where: string): OnnxTensorData {
  const type = elementType(dataType, where);
  const count = elementCount(dims, where);
  const raw = stored.raw_data;
  if (raw !== undefined && raw.length > 0) {
    const expected = storedBytes(type, count);
    if (raw.length !== expected) throw new UserError(`${where}: raw_data holds ${raw.length} bytes, dims [${dims.join(', ')}] of ${dataTypeName(dataType)} need ${expected}`);
    const bytes = new Uint8Array(raw); // a copy in its own, aligned buffer (a Buffer's slice() would share the file's)
    if (type.stored === 'plain') return new type.array(bytes.buffer);
    if (type.stored === 'int4' || type.stored === 'uint4') return unpack4(bytes, count, type.stored === 'int4');
    return fromStoredInts(type, new Uint16Array(bytes.buffer), count);
  }
  const values = stored[type.field] ?? [];
  const expected = type.stored === 'int4' || type.stored === 'uint4' ? Math.ceil(count / 2) : count;
  if (values.length !== expected) {
    throw new UserError(`${where}: ${values.length === 0 ? 'holds no data' : `${type.field} holds ${values.length} values`}, dims [${dims.join(', ')}] of ${dataTypeName(dataType)} need ${expected}`);
  }
  if (type.field === 'int64_data' || type.field === 'uint64_data') {
    const longs = values as Int64[];
    if (type.array === BigInt64Array) return BigInt64Array.from(longs, (v) => BigInt(v.toString()));
    if (type.array === BigUint64Array) return BigUint64Array.from(longs, (v) => BigInt(v.toString()));
    return Uint32Array.from(longs, int64ToNumber);
  }
  return fromStoredInts(type, values as number[], count);
}

/**
 * raw_data bytes for a tensor's elements. The array must be the one its data type decodes to,
 * with as many elements as the dims hold (a mismatch is a bug in the caller, not bad input).
 */
export function encodeTensorData(dataType: number, dims: readonly number[], data: OnnxTensorData, name: string): Uint8Array {
  const where = `tensor ${JSON.stringify(name)}`;
  const type = elementType(dataType, where);
  const count = elementCount(dims, where);
  if (!(data instanceof type.array)) throw new TypeError(`${where}: ${dataTypeName(dataType)} data must be a ${type.array.name}, got ${data.constructor.name}`);
  if (data.length !== count) throw new RangeError(`${where}: ${data.length} elements, dims [${dims.join(', ')}] hold ${count}`);
  switch (type.stored) {
    case 'plain':
      return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    case 'int4':
    case 'uint4':
      return pack4(data as Int8Array | Uint8Array, type.stored === 'int4');
    default: {
      const toBits = type.stored === 'float16' ? floatToHalf : floatToBfloat16;
      const bits = Uint16Array.from(data as Float32Array, toBits);
      return new Uint8Array(bits.buffer);
    }
  }
}
