/**
 * Fused uniform fake quantization for the wasm and cpu backends: round(clamp(x/step, lo, hi))·step
 * as one kernel, its gradients as one pass each, instead of div, clip, round, mul forward and
 * select/compare/logical-and/mul/div/sum chains backward over every quantized activation (a
 * quarter of a W4A4 ResNet-20 training step on wasm went there). The kernels are loops over the
 * tensors' memory: on wasm with a per-tensor step, WebAssembly SIMD on the heap itself
 * (fake-quant-simd.ts); else (per-channel steps, the cpu backend) JS. They compute what the
 * composite ops compute:
 *  - forward: v = x/step in float32, clamped, rounded half to even (tf.round), times step;
 *  - dx = dy where lo <= v <= hi, else 0 (the straight-through round; clipByValue's mask);
 *  - dstep = sum of dy·(round(clamp(v)) − v) inside the range and dy·lo or dy·hi outside (LSQ),
 *    per tensor or per channel (the last axis), accumulated in float64.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { fakeQuantSimd, type FakeQuantSimd } from './fake-quant-simd.js';
import type { GradConfig, KernelBackend, KernelConfig, KernelFunc, NamedAttrMap, Tensor, TensorInfo } from '@tensorflow/tfjs';

export const FAKE_QUANTIZE = 'MpqFakeQuantize';
export const FAKE_QUANTIZE_GRAD_X = 'MpqFakeQuantizeGradX';
export const FAKE_QUANTIZE_GRAD_STEP = 'MpqFakeQuantizeGradStep';

/** Backends the fused kernels are registered for. */
const FUSED_BACKENDS = ['wasm', 'cpu'] as const;

export interface FakeQuantizeAttrs {
  lo: number;
  hi: number;
}

/**
 * Adding and subtracting 1.5·2^52 rounds a double to an integer, halves to even (tf.round), for
 * |v| < 2^51; quantized levels are far smaller. (Math.round rounds halves up and is slow in V8.)
 */
const ROUNDING_OFFSET = 6755399441055744;

/**
 * The loops below run over rows of x's last axis (channels) with that channel's step, so a
 * per-tensor step is the same step in every channel and no element needs an index modulo.
 * lo and hi are read from a Float64Array: V8 then keeps them as doubles, while small integers
 * passed as numbers would make every clamp box its result (measured ~5x slower).
 */
interface QuantLoop {
  x: Float32Array;
  /** one step per channel */
  steps: Float32Array;
  /** [lo, hi] */
  bounds: Float64Array;
}

function quantLoop(x: Float32Array, step: Float32Array, channels: number, { lo, hi }: FakeQuantizeAttrs): QuantLoop {
  return { x, steps: step.length === channels ? step : new Float32Array(channels).fill(step[0]), bounds: Float64Array.of(lo, hi) };
}

function fakeQuantizeValues({ x, steps, bounds }: QuantLoop, out: Float32Array): void {
  const lo = bounds[0];
  const hi = bounds[1];
  const channels = steps.length;
  for (let row = 0; row < x.length; row += channels) {
    for (let c = 0; c < channels; c++) {
      const s = steps[c];
      const v = Math.fround(x[row + c] / s);
      const clamped = v < lo ? lo : v > hi ? hi : v;
      out[row + c] = (clamped + ROUNDING_OFFSET - ROUNDING_OFFSET) * s;
    }
  }
}

function fakeQuantizeGradX({ x, steps, bounds }: QuantLoop, dy: Float32Array, dx: Float32Array): void {
  const lo = bounds[0];
  const hi = bounds[1];
  const channels = steps.length;
  for (let row = 0; row < x.length; row += channels) {
    for (let c = 0; c < channels; c++) {
      const v = Math.fround(x[row + c] / steps[c]);
      dx[row + c] = v >= lo && v <= hi ? dy[row + c] : 0;
    }
  }
}

/** Per-channel sums in float64. */
function fakeQuantizeGradStep({ x, steps, bounds }: QuantLoop, dy: Float32Array): Float64Array {
  const lo = bounds[0];
  const hi = bounds[1];
  const channels = steps.length;
  const sums = new Float64Array(channels);
  for (let row = 0; row < x.length; row += channels) {
    for (let c = 0; c < channels; c++) {
      const v = Math.fround(x[row + c] / steps[c]);
      sums[c] += dy[row + c] * (v < lo ? lo : v > hi ? hi : v + ROUNDING_OFFSET - ROUNDING_OFFSET - v);
    }
  }
  return sums;
}

/**
 * A kernel's tensors as float32 views on the backend's own memory where it can (the wasm heap),
 * and, on wasm with one step for the whole tensor, the SIMD loops over that heap.
 */
interface KernelMemory {
  read(t: TensorInfo): Float32Array;
  output(shape: number[]): { info: TensorInfo; values: Float32Array };
  simd: FakeQuantSimd | null;
  /** byte offset of a tensor on the heap (wasm only) */
  offset(t: TensorInfo): number;
}

function kernelMemory(backend: KernelBackend, backendName: string): KernelMemory {
  if (backendName === 'wasm') {
    const wasm = backend as unknown as BackendWasm;
    const module = wasm.wasm as unknown as { wasmMemory?: WebAssembly.Memory; asm?: { memory?: WebAssembly.Memory } };
    // the threaded build's memory is imported (wasmMemory), the single-threaded build's exported
    const memory = module.wasmMemory ?? module.asm?.memory;
    return {
      // Views of the heap; taken after every allocation (growing the heap detaches older views).
      read: (t) => wasm.typedArrayFromHeap(t) as Float32Array,
      output: (shape) => {
        const info = wasm.makeOutput(shape, 'float32');
        return { info, values: wasm.typedArrayFromHeap(info) as Float32Array };
      },
      simd: memory ? fakeQuantSimd(memory) : null,
      offset: (t) => wasm.getMemoryOffset(t.dataId),
    };
  }
  return {
    read: (t) => backend.readSync(t.dataId) as Float32Array,
    output: (shape) => {
      const values = new Float32Array(shape.reduce((a, b) => a * b, 1));
      return { info: { dataId: backend.write(values, shape, 'float32'), shape, dtype: 'float32' }, values };
    },
    simd: null,
    offset: () => {
      throw new Error('fake-quant: heap offsets exist on wasm only');
    },
  };
}

interface KernelArgs {
  /** dy: the gradient kernels' */
  inputs: { x: TensorInfo; step: TensorInfo; dy?: TensorInfo };
  backend: KernelBackend;
  attrs?: NamedAttrMap;
}

/**
 * Runs a kernel's loop: on wasm with a per-tensor step the SIMD loop takes the elements up to a
 * multiple of 4 and the JS loop the rest (`head` is where it starts), else the JS loop takes all.
 */
function splitWork(
  memory: KernelMemory, x: TensorInfo, step: Float32Array, attrs: FakeQuantizeAttrs, simdHead: (simd: FakeQuantSimd) => void,
): QuantLoop & { head: number } {
  const values = memory.read(x);
  if (memory.simd && step.length === 1) {
    simdHead(memory.simd);
    const head = values.length & ~3;
    return { ...quantLoop(values.subarray(head), step, 1, attrs), head };
  }
  // x's last axis (1 for a scalar x): one step per channel, or the one step repeated
  return { ...quantLoop(values, step, x.shape[x.shape.length - 1] ?? 1, attrs), head: 0 };
}

/** What a kernel's loop works with: its memory, inputs and new output, the step values and the range. */
interface KernelWork {
  memory: KernelMemory;
  x: TensorInfo;
  dy: TensorInfo;
  out: { info: TensorInfo; values: Float32Array };
  step: Float32Array;
  attrs: FakeQuantizeAttrs;
}

function kernels(backendName: string): KernelConfig[] {
  /** A kernel whose output has x's shape (or the step's) and that `run` fills. */
  const config = (kernelName: string, outputLike: 'x' | 'step', run: (work: KernelWork) => void): KernelConfig => {
    const kernelFunc = ({ inputs, backend, attrs }: KernelArgs): TensorInfo => {
      const memory = kernelMemory(backend, backendName);
      // allocate first: heap views taken before an allocation may be detached by it
      const out = memory.output(inputs[outputLike].shape);
      run({ memory, x: inputs.x, dy: inputs.dy!, out, step: memory.read(inputs.step), attrs: attrs as unknown as FakeQuantizeAttrs });
      return out.info;
    };
    return { kernelName, backendName, kernelFunc: kernelFunc as unknown as KernelFunc };
  };
  return [
    config(FAKE_QUANTIZE, 'x', ({ memory, x, out, step, attrs }) => {
      const loop = splitWork(memory, x, step, attrs, (simd) =>
        simd.quantize(memory.offset(x), memory.offset(out.info), out.values.length, step[0], attrs.lo, attrs.hi));
      fakeQuantizeValues(loop, out.values.subarray(loop.head));
    }),
    config(FAKE_QUANTIZE_GRAD_X, 'x', ({ memory, x, dy, out, step, attrs }) => {
      const loop = splitWork(memory, x, step, attrs, (simd) =>
        simd.gradX(memory.offset(x), memory.offset(dy), memory.offset(out.info), out.values.length, step[0], attrs.lo, attrs.hi));
      fakeQuantizeGradX(loop, memory.read(dy).subarray(loop.head), out.values.subarray(loop.head));
    }),
    config(FAKE_QUANTIZE_GRAD_STEP, 'step', ({ memory, x, dy, out, step, attrs }) => {
      let headSum = 0;
      const loop = splitWork(memory, x, step, attrs, (simd) => {
        headSum = simd.gradStep(memory.offset(x), memory.offset(dy), memory.read(x).length, step[0], attrs.lo, attrs.hi);
      });
      const sums = fakeQuantizeGradStep(loop, memory.read(dy).subarray(loop.head));
      // one step for the tensor: the channels' (and the SIMD head's) sums together
      if (out.values.length === 1) out.values[0] = sums.reduce((total, sum) => total + sum, headSum);
      else out.values.set(sums);
    }),
  ];
}

const fakeQuantizeGradient: GradConfig = {
  kernelName: FAKE_QUANTIZE,
  inputsToSave: ['x', 'step'],
  gradFunc: (dy: Tensor | Tensor[], saved: Tensor[], attrs: NamedAttrMap) => {
    const [x, step] = saved;
    const inputs = { x, step, dy: dy as Tensor };
    return {
      x: () => tf.engine().runKernel(FAKE_QUANTIZE_GRAD_X, inputs, attrs) as Tensor,
      step: () => tf.engine().runKernel(FAKE_QUANTIZE_GRAD_STEP, inputs, attrs) as Tensor,
    };
  },
};

let registered = false;

/** Registers the fused kernels and their gradient, once (native.ts then replaces the wasm ones). */
export function registerFakeQuantizeKernels(): void {
  if (registered) return;
  registered = true;
  for (const name of FUSED_BACKENDS) for (const config of kernels(name)) tf.registerKernel(config);
  tf.registerGradient(fakeQuantizeGradient);
}

/**
 * True when the fused kernel can fake-quantize x with this step on the active backend: float32
 * tensors, one step or one per channel of x's last axis.
 */
export function fusedFakeQuantizeApplies(x: Tensor, step: Tensor): boolean {
  if (!(FUSED_BACKENDS as readonly string[]).includes(tf.getBackend())) return false;
  if (x.dtype !== 'float32' || step.dtype !== 'float32') return false;
  return step.size === 1 ? step.rank <= x.rank : step.rank === 1 && x.rank >= 1 && step.size === x.shape[x.rank - 1];
}

/**
 * round(clamp(x/step, lo, hi))·step with LSQ's gradients (see the module comment). Only where
 * fusedFakeQuantizeApplies; the result has x's shape.
 */
export function fusedFakeQuantize(x: Tensor, step: Tensor, lo: number, hi: number): Tensor {
  registerFakeQuantizeKernels();
  const attrs: FakeQuantizeAttrs = { lo, hi };
  return tf.engine().runKernel(FAKE_QUANTIZE, { x, step }, attrs as unknown as NamedAttrMap) as Tensor;
}
