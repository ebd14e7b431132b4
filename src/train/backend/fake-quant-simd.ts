/**
 * The per-tensor fake-quantize loops of fake-quant.ts as WebAssembly SIMD, run on the wasm
 * backend's own heap (the module imports tfjs's memory, so tensors are read and written in place).
 * JS loops cost ~15–30 ns per element there against ~1 ns for four lanes at a time: fake
 * quantization of every activation was a sixth of a W4A4 ResNet-20 training step.
 *
 * The module is a few hand-assembled functions (no toolchain needed); each handles the first
 * n − n mod 4 elements, the caller the rest:
 *  - quantize(x, out, n, s, lo, hi): out = nearest(clamp(x/s, lo, hi))·s (nearest: halves to even);
 *  - gradX(x, dy, dx, n, s, lo, hi): dx = dy where lo <= x/s <= hi, else 0;
 *  - gradStep(x, dy, n, s, lo, hi) → Σ dy·(lo below, hi above, nearest(v) − v inside), v = x/s,
 *    products and sums in float64.
 * Pointers are byte offsets into the heap.
 */

export interface FakeQuantSimd {
  quantize(x: number, out: number, n: number, s: number, lo: number, hi: number): void;
  gradX(x: number, dy: number, dx: number, n: number, s: number, lo: number, hi: number): void;
  gradStep(x: number, dy: number, n: number, s: number, lo: number, hi: number): number;
}

const I32 = 0x7f;
const F32 = 0x7d;
const F64 = 0x7c;
const V128 = 0x7b;

function uleb(value: number): number[] {
  const out: number[] = [];
  do {
    let byte = value & 0x7f;
    value >>>= 7;
    if (value !== 0) byte |= 0x80;
    out.push(byte);
  } while (value !== 0);
  return out;
}

/** Small signed constants only (|value| < 64): one byte. */
function sleb1(value: number): number[] {
  if (value < -64 || value > 63) throw new RangeError(`sleb1: ${value}`);
  return [value & 0x7f];
}

const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];
const name = (text: string): number[] => vec([...Buffer.from(text, 'utf8')].map((b) => [b]));
const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body];

// Instructions.
const get = (i: number) => [0x20, ...uleb(i)];
const set = (i: number) => [0x21, ...uleb(i)];
const tee = (i: number) => [0x22, ...uleb(i)];
const i32Const = (v: number) => [0x41, ...sleb1(v)];
const I32_ADD = [0x6a];
const I32_AND = [0x71];
const I32_SHL = [0x74];
const I32_GE_U = [0x4f];
const F64_ADD = [0xa0];
const simd = (op: number, ...immediates: number[]) => [0xfd, ...uleb(op), ...immediates];
// memarg: alignment 2^2 (floats), offset 0
const V128_LOAD = simd(0x00, 2, 0);
const V128_STORE = simd(0x0b, 2, 0);
const F32X4_SPLAT = simd(0x13);
const F32X4_LT = simd(0x43);
const F32X4_GT = simd(0x44);
const F32X4_LE = simd(0x45);
const F32X4_GE = simd(0x46);
const V128_AND = simd(0x4e);
const V128_BITSELECT = simd(0x52);
const F64X2_PROMOTE_LOW = simd(0x5f);
const F32X4_NEAREST = simd(0x6a);
const F32X4_SUB = simd(0xe5);
const F32X4_MUL = simd(0xe6);
const F32X4_DIV = simd(0xe7);
const F32X4_MIN = simd(0xe8);
const F32X4_MAX = simd(0xe9);
const F64X2_ADD = simd(0xf0);
const F64X2_MUL = simd(0xf2);
const f64x2Lane = (lane: number) => simd(0x21, lane);
/** Lanes 2 and 3 (bytes 8–15) moved to 0 and 1. */
const HIGH_HALF = simd(0x0d, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7);

/**
 * A loop over 16-byte blocks from pointer `x` to x + 4·(n & ~3): `body` runs with the pointers in
 * `advance` pointing at the block, then each moves on by 16.
 */
function blockLoop(x: number, n: number, end: number, advance: number[], body: number[][]): number[] {
  return [
    ...get(x), ...get(n), ...i32Const(-4), ...I32_AND, ...i32Const(2), ...I32_SHL, ...I32_ADD, ...set(end),
    0x02, 0x40, // block
    0x03, 0x40, // loop
    ...get(x), ...get(end), ...I32_GE_U, 0x0d, 1, // br_if 1: done
    ...body.flat(),
    ...advance.flatMap((p) => [...get(p), ...i32Const(16), ...I32_ADD, ...set(p)]),
    0x0c, 0, // br 0
    0x0b, 0x0b, // end loop, end block
  ];
}

const splat = (from: number, to: number) => [...get(from), ...F32X4_SPLAT, ...set(to)];

function functionBody(locals: Array<[number, number]>, code: number[]): number[] {
  const body = [...vec(locals.map(([count, type]) => [...uleb(count), type])), ...code, 0x0b];
  return [...uleb(body.length), ...body];
}

/** quantize(x 0, out 1, n 2, s 3, lo 4, hi 5); locals: end 6, s 7, lo 8, hi 9 (v128) */
const quantizeBody = functionBody([[1, I32], [3, V128]], [
  ...splat(3, 7), ...splat(4, 8), ...splat(5, 9),
  ...blockLoop(0, 2, 6, [0, 1], [
    get(1),
    get(0), V128_LOAD, get(7), F32X4_DIV, get(8), F32X4_MAX, get(9), F32X4_MIN, F32X4_NEAREST, get(7), F32X4_MUL,
    V128_STORE,
  ]),
]);

/** gradX(x 0, dy 1, dx 2, n 3, s 4, lo 5, hi 6); locals: end 7, s 8, lo 9, hi 10, v 11 (v128) */
const gradXBody = functionBody([[1, I32], [4, V128]], [
  ...splat(4, 8), ...splat(5, 9), ...splat(6, 10),
  ...blockLoop(0, 3, 7, [0, 1, 2], [
    get(2),
    get(0), V128_LOAD, get(8), F32X4_DIV, tee(11), get(9), F32X4_GE, get(11), get(10), F32X4_LE, V128_AND,
    get(1), V128_LOAD, V128_AND,
    V128_STORE,
  ]),
]);

/** gradStep(x 0, dy 1, n 2, s 3, lo 4, hi 5) → f64; locals: end 6, s 7, lo 8, hi 9, v 10, term 11, dy 12, sums 13 14 (v128) */
const gradStepBody = functionBody([[1, I32], [8, V128]], [
  ...splat(3, 7), ...splat(4, 8), ...splat(5, 9),
  ...blockLoop(0, 2, 6, [0, 1], [
    get(0), V128_LOAD, get(7), F32X4_DIV, set(10),
    // term = lo where v < lo, else hi where v > hi, else nearest(v) − v
    get(8), get(9), get(10), F32X4_NEAREST, get(10), F32X4_SUB, get(10), get(9), F32X4_GT, V128_BITSELECT,
    get(10), get(8), F32X4_LT, V128_BITSELECT, set(11),
    get(1), V128_LOAD, set(12),
    get(13), get(12), F64X2_PROMOTE_LOW, get(11), F64X2_PROMOTE_LOW, F64X2_MUL, F64X2_ADD, set(13),
    get(14), get(12), get(12), HIGH_HALF, F64X2_PROMOTE_LOW, get(11), get(11), HIGH_HALF, F64X2_PROMOTE_LOW, F64X2_MUL, F64X2_ADD, set(14),
  ]),
  ...get(13), ...get(14), ...F64X2_ADD, ...tee(13), ...f64x2Lane(0), ...get(13), ...f64x2Lane(1), ...F64_ADD,
]);

function moduleBytes(shared: boolean): Uint8Array<ArrayBuffer> {
  const funcType = (params: number[], results: number[]) => [0x60, ...vec(params.map((p) => [p])), ...vec(results.map((r) => [r]))];
  // shared memories must declare a maximum: the threaded tfjs build's, 4 GiB
  const limits = shared ? [0x03, ...uleb(1), ...uleb(65536)] : [0x00, ...uleb(1)];
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec([
      funcType([I32, I32, I32, F32, F32, F32], []),
      funcType([I32, I32, I32, I32, F32, F32, F32], []),
      funcType([I32, I32, I32, F32, F32, F32], [F64]),
    ])),
    ...section(2, vec([[...name('env'), ...name('memory'), 0x02, ...limits]])),
    ...section(3, vec([[0], [1], [2]])),
    ...section(7, vec([[...name('quantize'), 0x00, 0], [...name('gradX'), 0x00, 1], [...name('gradStep'), 0x00, 2]])),
    ...section(10, vec([quantizeBody, gradXBody, gradStepBody])),
  ]);
}

const instances = new WeakMap<WebAssembly.Memory, FakeQuantSimd | null>();

/** The SIMD loops bound to `memory`, or null where this runtime cannot run them (then use JS). */
export function fakeQuantSimd(memory: WebAssembly.Memory): FakeQuantSimd | null {
  let simdLoops = instances.get(memory);
  if (simdLoops === undefined) {
    try {
      const shared = typeof SharedArrayBuffer === 'function' && memory.buffer instanceof SharedArrayBuffer;
      const instance = new WebAssembly.Instance(new WebAssembly.Module(moduleBytes(shared)), { env: { memory } });
      simdLoops = instance.exports as unknown as FakeQuantSimd;
    } catch {
      simdLoops = null;
    }
    instances.set(memory, simdLoops);
  }
  return simdLoops;
}
