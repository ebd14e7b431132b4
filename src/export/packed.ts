/**
 * A container for a mixed-precision quantized model: every layer's integer codes packed tightly
 * at its own bit-width, with its scales (and optional codebook) in a JSON index, and the state
 * that stays in float (batch norm, biases, activation steps) as raw float32 tensors.
 *
 * Layout (all integers little-endian), versions 3 and 4:
 *   0   'MPQP'
 *   4   u32 format version (3 or 4)
 *   8   u32 byte length N of the payload once inflated
 *   12  the payload, zlib-compressed (RFC 1950: deflate at level 9, Adler-32 checked)
 * Versions 1 and 2 (still read) store the payload uncompressed right after the version word.
 * Version 4 is version 3 with codebook layers that have no scales and codebooks per channel
 * (`perChannel`); a file that uses neither is written as version 3, which older builds read.
 * Version 2 is version 3 uncompressed; version 1 is version 2 without float tensors or group
 * codebooks.
 *
 * Payload:
 *   0   u32 byte length L of the JSON index
 *   4   JSON index, UTF-8, zero-padded to a multiple of 4: the data section starts there
 *   …   payloads, each at a 4-byte aligned `offset` from the start of the data section
 * Compression is on top of the bit-packing, not instead of it: the codes stay at their bits, and
 * deflate takes what the float32 state, the index and the codes' skewed distribution leave.
 *
 * Index: `{ meta, layers: [{ name, shape, bits, scales, codebook?, groupSize?, perChannel?,
 * offset, byteLength }], floats?: [[name, shape], …] }`. The float payloads follow the layer payloads
 * (from the 4-byte aligned end of the last one), back to back in index order: they need no
 * offsets, and their entries are kept short because the index counts against the file's size.
 * Scales and codebooks are float32 values written as JSON numbers, each the shortest decimal that
 * rounds back to the same float32 (at most 9 significant digits), so they round-trip exactly
 * (but for −0, which JSON writes as 0).
 * A layer payload holds product(shape) codes of `bits` bits: two's complement, bit 0 of each code
 * at the lowest free bit of the current byte (little-endian bit order), no padding between codes.
 * A codebook holds 2^bits levels per group of `groupSize` consecutive codes (one group when
 * groupSize is absent) or per channel of the last axis (`perChannel`), as IntegerForm. A float payload is product(shape) little-endian float32s.
 */
import { deflateSync, inflateSync } from 'node:zlib';
import * as v from 'valibot';
import { bitsProblem, CODE_BITS } from '../quant/bits.js';
import { integerFormProblem, type IntegerForm } from '../quant/integer-form.js';
import { UserError } from '../util/errors.js';
import { describeIssues, jsonObject, nonNegativeInteger as count } from '../util/schema.js';

export const PACKED_MAGIC = 'MPQP';
export const PACKED_VERSION = 4;
/** versions this build reads (see the file comment) */
const READABLE_VERSIONS = [1, 2, 3, 4];
/** the first version whose payload is compressed, and so checksummed (zlib's Adler-32) */
export const COMPRESSED_SINCE = 3;
/** magic, version and (versions 3, 4) the inflated payload's length, or (1, 2) the index's */
const HEADER_BYTES = 12;
const ZLIB_LEVEL = 9;

/** A layer's codes as its weight quantizer gives them (IntegerForm), under the layer's name and weight shape. */
export type PackedLayer = { name: string; shape: number[] } & IntegerForm;

/** A tensor kept in float32 (batch-norm parameters, biases, activation step sizes). */
export interface PackedFloat {
  name: string;
  shape: number[];
  values: Float32Array;
}

export interface PackedModel {
  meta: Record<string, unknown>;
  layers: PackedLayer[];
  floats: PackedFloat[];
  /** the container version the file was read from */
  version: number;
  /** bytes of the payload uncompressed: index length, index, padding, code and float payloads */
  payloadBytes: number;
}

/** Bytes taken by `count` codes of `bits` bits: ceil(count · bits / 8). */
export function packedByteLength(count: number, bits: number): number {
  return Math.ceil((count * bits) / 8);
}

/** Pack signed codes into `bits` bits each (two's complement, little-endian bit order). */
export function packTensor(ints: Int32Array, bits: number): Uint8Array {
  checkBits(bits);
  const lo = -(2 ** (bits - 1));
  const hi = 2 ** (bits - 1) - 1;
  const mask = 2 ** bits - 1;
  const out = new Uint8Array(packedByteLength(ints.length, bits));
  // at most 7 pending bits plus one 16-bit code: fits the 32-bit integer ops
  let pending = 0;
  let pendingBits = 0;
  let pos = 0;
  for (let i = 0; i < ints.length; i++) {
    const v = ints[i]!;
    if (v < lo || v > hi) throw new RangeError(`code ${v} at index ${i} does not fit ${bits}-bit two's complement [${lo}, ${hi}]`);
    pending |= (v & mask) << pendingBits;
    pendingBits += bits;
    while (pendingBits >= 8) {
      out[pos++] = pending & 0xff;
      pending >>>= 8;
      pendingBits -= 8;
    }
  }
  if (pendingBits > 0) out[pos] = pending & 0xff;
  return out;
}

/** Inverse of `packTensor`: `count` sign-extended codes of `bits` bits from the start of `bytes`. */
export function unpackTensor(bytes: Uint8Array, bits: number, count: number): Int32Array {
  checkBits(bits);
  const needed = packedByteLength(count, bits);
  if (bytes.length < needed) throw new RangeError(`${count} codes of ${bits} bits need ${needed} bytes, got ${bytes.length}`);
  const mask = 2 ** bits - 1;
  const signShift = 32 - bits;
  const out = new Int32Array(count);
  let pending = 0;
  let pendingBits = 0;
  let pos = 0;
  for (let i = 0; i < count; i++) {
    while (pendingBits < bits) {
      pending |= bytes[pos++]! << pendingBits;
      pendingBits += 8;
    }
    out[i] = ((pending & mask) << signShift) >> signShift;
    pending >>>= bits;
    pendingBits -= bits;
  }
  return out;
}

/** Serialise layers, float tensors and free-form JSON metadata into one packed file. */
export function writePacked(layers: readonly PackedLayer[], meta: Record<string, unknown> = {}, floats: readonly PackedFloat[] = []): Uint8Array {
  const names = new Set<string>();
  const unique = (kind: string, name: string) => {
    if (names.has(name)) throw new RangeError(`${kind} '${name}' appears twice`);
    names.add(name);
  };
  const payloads: Uint8Array[] = [];
  const entries: IndexEntry[] = [];
  const floatEntries: FloatEntry[] = [];
  let offset = 0;
  for (const layer of layers) {
    unique('layer', layer.name);
    const problem = integerFormProblem(layer, layer.shape);
    if (problem) throw new RangeError(`layer '${layer.name}': ${problem}`);
    const payload = packTensor(layer.q, layer.bits);
    payloads.push(payload);
    entries.push({
      name: layer.name,
      shape: [...layer.shape],
      bits: layer.bits,
      scales: shortestFloat32(layer.scales),
      ...(layer.codebook ? { codebook: shortestFloat32(layer.codebook) } : {}),
      ...(layer.groupSize !== undefined ? { groupSize: layer.groupSize } : {}),
      ...(layer.perChannel ? { perChannel: true as const } : {}),
      offset,
      byteLength: payload.length,
    });
    offset = align4(offset + payload.length);
  }
  const floatOffsets: number[] = [];
  for (const tensor of floats) {
    unique('float tensor', tensor.name);
    const count = elementCount(tensor.shape);
    if (count !== tensor.values.length) throw new RangeError(`float tensor '${tensor.name}': shape [${tensor.shape.join(', ')}] holds ${count} values, got ${tensor.values.length}`);
    const bytes = new Uint8Array(4 * count);
    const view = new DataView(bytes.buffer);
    tensor.values.forEach((v, i) => view.setFloat32(4 * i, v, true));
    payloads.push(bytes);
    floatEntries.push([tensor.name, [...tensor.shape]]);
    floatOffsets.push(offset);
    offset += 4 * count;
  }
  const index = new TextEncoder().encode(JSON.stringify({ meta, layers: entries, ...(floatEntries.length > 0 ? { floats: floatEntries } : {}) }));
  const dataStart = align4(4 + index.length);
  const payload = new Uint8Array(dataStart + offset);
  new DataView(payload.buffer).setUint32(0, index.length, true);
  payload.set(index, 4);
  [...entries.map((e) => e.offset), ...floatOffsets].forEach((at, i) => payload.set(payloads[i]!, dataStart + at));
  const compressed = deflateSync(payload, { level: ZLIB_LEVEL });
  const file = new Uint8Array(HEADER_BYTES + compressed.length);
  const view = new DataView(file.buffer);
  file.set(new TextEncoder().encode(PACKED_MAGIC), 0);
  view.setUint32(4, formatVersion(layers), true);
  view.setUint32(8, payload.length, true);
  file.set(compressed, HEADER_BYTES);
  return file;
}

/** The oldest version that holds these layers: 4 for what version 3 cannot express, else 3. */
function formatVersion(layers: readonly PackedLayer[]): number {
  return layers.some((l) => l.perChannel || (l.codebook && l.scales.length === 0)) ? PACKED_VERSION : 3;
}

/**
 * Parse a packed file (any readable version). Anything malformed — bad magic or version,
 * truncation, a compressed payload that does not inflate to its stated length or fails its
 * checksum, an index that is not valid JSON or misses fields, a payload outside the data — is a
 * one-line UserError naming `source`.
 */
export function readPacked(bytes: Uint8Array, source = 'packed model'): PackedModel {
  const fail = (message: string): never => {
    throw new UserError(`${source}: ${message}`);
  };
  if (bytes.length < HEADER_BYTES) fail(`truncated: ${bytes.length} bytes, shorter than the ${HEADER_BYTES}-byte header`);
  const magic = new TextDecoder().decode(bytes.subarray(0, 4));
  if (magic !== PACKED_MAGIC) fail(`not an mpq packed model (magic ${JSON.stringify(magic)}, expected "${PACKED_MAGIC}")`);
  const header = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = header.getUint32(4, true);
  if (!READABLE_VERSIONS.includes(version)) fail(`unsupported format version ${version} (this build reads versions ${READABLE_VERSIONS.join(', ')})`);
  const payload = version >= COMPRESSED_SINCE ? inflatePayload(bytes, header.getUint32(8, true), fail) : bytes.subarray(8);
  const extent = version >= COMPRESSED_SINCE ? 'the inflated payload' : 'the file';
  if (payload.length < 4) fail(`truncated: ${extent} has ${payload.length} bytes, shorter than the index length word`);
  const indexLength = new DataView(payload.buffer, payload.byteOffset, payload.byteLength).getUint32(0, true);
  if (4 + indexLength > payload.length) fail(`truncated: the index needs ${indexLength} bytes after the header, ${extent} has ${payload.length - 4}`);

  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload.subarray(4, 4 + indexLength)));
  } catch (err) {
    fail(`index is not valid UTF-8 JSON (${(err as Error).message.replace(/\s+/g, ' ')})`);
  }
  const result = v.safeParse(indexSchema, parsed);
  const index = result.success ? result.output : fail(`bad index: ${describeIssues(result.issues)}`);

  const dataStart = align4(4 + indexLength);
  const names = new Set<string>();
  /** start of a payload in the (inflated) payload bytes, after checking its name, alignment and extent */
  const locate = (what: string, name: string, offset: number, byteLength: number): number => {
    if (names.has(name)) fail(`${what} appears twice`);
    names.add(name);
    if (offset % 4 !== 0) fail(`${what}: payload offset ${offset} is not 4-byte aligned`);
    const start = dataStart + offset;
    if (start + byteLength > payload.length) {
      fail(`${what}: payload [${start}, ${start + byteLength}) runs past the end of ${extent} (${payload.length} bytes)`);
    }
    return start;
  };
  const layers = index.layers.map((entry): PackedLayer => {
    const where = `layer '${entry.name}'`;
    const count = elementCount(entry.shape);
    const expected = packedByteLength(count, entry.bits);
    if (entry.byteLength !== expected) fail(`${where}: ${entry.byteLength} payload bytes, but ${count} codes of ${entry.bits} bits take ${expected}`);
    const start = locate(where, entry.name, entry.offset, entry.byteLength);
    const layer: PackedLayer = {
      name: entry.name,
      shape: entry.shape,
      bits: entry.bits,
      scales: Float32Array.from(entry.scales),
      ...(entry.codebook ? { codebook: Float32Array.from(entry.codebook) } : {}),
      ...(entry.groupSize !== undefined ? { groupSize: entry.groupSize } : {}),
      ...(entry.perChannel ? { perChannel: true as const } : {}),
      q: unpackTensor(payload.subarray(start, start + entry.byteLength), entry.bits, count),
    };
    const problem = integerFormProblem(layer, layer.shape);
    if (problem) fail(`${where}: ${problem}`);
    return layer;
  });
  let floatOffset = align4(index.layers.reduce((end, e) => Math.max(end, e.offset + e.byteLength), 0));
  const floats = (index.floats ?? []).map(([name, shape]): PackedFloat => {
    const count = elementCount(shape);
    const start = locate(`float tensor '${name}'`, name, floatOffset, 4 * count);
    floatOffset += 4 * count;
    const view = new DataView(payload.buffer, payload.byteOffset + start, 4 * count);
    return { name, shape, values: Float32Array.from({ length: count }, (_, i) => view.getFloat32(4 * i, true)) };
  });
  return { meta: index.meta, layers, floats, version, payloadBytes: payload.length };
}

/**
 * A version-3 file's payload, inflated; it must be the `length` bytes the header promises.
 * zlib's checksum makes a corrupt or truncated stream an error rather than wrong values.
 */
function inflatePayload(file: Uint8Array, length: number, fail: (message: string) => never): Uint8Array {
  let payload: Uint8Array | undefined;
  try {
    // the header's length bounds the output: a corrupt stream cannot exhaust memory
    payload = inflateSync(file.subarray(HEADER_BYTES), { maxOutputLength: Math.max(1, length) });
  } catch (err) {
    fail(`corrupt compressed payload (${(err as Error).message.replace(/\s+/g, ' ')})`);
  }
  if (payload!.length !== length) fail(`corrupt compressed payload (${payload!.length} bytes inflated, the header says ${length})`);
  return payload!;
}

const name = v.pipe(v.string(), v.minLength(1, 'expected a non-empty name'));
const numbers = v.array(v.number());
const indexEntrySchema = v.strictObject({
  name,
  shape: v.array(count),
  bits: v.pipe(v.number(), v.check((bits) => bitsProblem(bits, CODE_BITS) === undefined, `expected bits in ${CODE_BITS.min}..${CODE_BITS.max}`)),
  scales: numbers,
  codebook: v.optional(numbers),
  groupSize: v.optional(v.pipe(v.number(), v.integer('expected an integer'), v.minValue(1, 'expected a positive integer'))),
  perChannel: v.optional(v.literal(true)),
  offset: count,
  byteLength: count,
});

/** [name, shape] */
const floatEntrySchema = v.tuple([name, v.array(count)]);

const indexSchema = jsonObject(v.strictObject({
  meta: v.record(v.string(), v.unknown()),
  layers: v.array(indexEntrySchema),
  floats: v.optional(v.array(floatEntrySchema)),
}), 'expected a JSON object');

type IndexEntry = v.InferOutput<typeof indexEntrySchema>;
type FloatEntry = v.InferOutput<typeof floatEntrySchema>;

/**
 * Each float32 value as the number with the shortest decimal form that rounds to the same float32:
 * JSON.stringify of 0.1f would otherwise print the float64 expansion 0.10000000149011612.
 */
function shortestFloat32(values: Float32Array): number[] {
  return Array.from(values, (v) => {
    for (let digits = 1; digits < 9; digits++) {
      const candidate = Number(v.toPrecision(digits));
      if (Object.is(Math.fround(candidate), v)) return candidate;
    }
    return Number(v.toPrecision(9));
  });
}

function checkBits(bits: number): void {
  const problem = bitsProblem(bits, CODE_BITS);
  if (problem) throw new RangeError(`codes: ${problem}`);
}

function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function align4(n: number): number {
  return Math.ceil(n / 4) * 4;
}
