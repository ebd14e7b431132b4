/**
 * Gradients tfjs 4.22 lacks, registered for every backend: StridedSlice (CIFAR ResNet-20's option-A
 * shortcut subsamples with a strided slice; without this, training it throws "gradient function
 * not found for StridedSlice").
 */
import * as tf from '@tensorflow/tfjs';
import type { GradConfig, NamedAttrMap, StridedSliceAttrs, Tensor } from '@tensorflow/tfjs';

/**
 * dy put back where a strided read took it from: along axis j, element k of dy lands at
 * begin[j] + k·strides[j] of an axis of length shape[j] (strides may be negative); zeros elsewhere.
 * Built from reshape, pad and slice (fast on wasm) rather than a scatter.
 */
export function scatterStrided(dy: Tensor, begin: readonly number[], strides: readonly number[], shape: readonly number[]): Tensor {
  const rank = shape.length;
  if (dy.rank !== rank || begin.length !== rank || strides.length !== rank) {
    throw new Error(`scatterStrided: dy of rank ${dy.rank}, ${begin.length} begins and ${strides.length} strides for rank ${rank}`);
  }
  if (dy.size === 0) return tf.zeros([...shape], dy.dtype);
  return tf.tidy(() => {
    const counts = dy.shape;
    // A negative stride reads the axis backwards: reverse dy there and start from its last element.
    const reversedAxes = strides.flatMap((s, j) => (s < 0 ? [j] : []));
    let spread = reversedAxes.length > 0 ? tf.reverse(dy, reversedAxes) : dy;
    const first = begin.map((b, j) => (strides[j] < 0 ? b + (counts[j] - 1) * strides[j] : b));
    const step = strides.map(Math.abs);
    if (step.some((s) => s > 1)) {
      // Interleave zeros: [..., n, 1, ...] padded to [..., n, s, ...] reads as [..., n·s, ...].
      const withGaps = counts.flatMap((n, j) => (step[j] > 1 ? [n, 1] : [n]));
      const gaps = counts.flatMap((_, j): [number, number][] => (step[j] > 1 ? [[0, 0], [0, step[j] - 1]] : [[0, 0]]));
      spread = spread.reshape(withGaps).pad(gaps).reshape(counts.map((n, j) => n * step[j]));
      // The trailing gap of the last element may run past the axis end.
      const fitted = counts.map((n, j) => Math.min(n * step[j], shape[j] - first[j]));
      if (fitted.some((n, j) => n < spread.shape[j])) spread = spread.slice(new Array(rank).fill(0), fitted);
    }
    return spread.pad(first.map((b, j): [number, number] => [b, shape[j] - b - spread.shape[j]]));
  });
}

/**
 * What a strided slice of an x of `shape` reads, per axis of x: the first index, the stride and
 * how many elements (1 on a shrunk axis); and the output's shape (with new and without shrunk axes).
 */
export function stridedRead(shape: number[], attrs: NamedAttrMap): { begin: number[]; strides: number[]; counts: number[]; outShape: number[] } {
  const a = attrs as unknown as StridedSliceAttrs;
  const info = tf.slice_util.sliceInfo(shape, a.begin, a.end, a.strides, a.beginMask, a.endMask, a.ellipsisMask, a.newAxisMask, a.shrinkAxisMask);
  const counts = info.begin.map((b, j) => Math.max(0, Math.ceil((info.end[j] - b) / info.strides[j])));
  return { begin: info.begin, strides: info.strides, counts, outShape: info.finalShape };
}

const stridedSliceGradient: GradConfig = {
  kernelName: tf.StridedSlice,
  inputsToSave: ['x'],
  gradFunc: (dy: Tensor | Tensor[], saved: Tensor[], attrs: NamedAttrMap) => {
    const [x] = saved;
    const { begin, strides, counts } = stridedRead(x.shape, attrs);
    return { x: () => scatterStrided((dy as Tensor).reshape(counts), begin, strides, x.shape) };
  },
};

/** Registers the missing gradients once (they apply to every backend). */
export function registerMissingGradients(): void {
  if (tf.getGradient(tf.StridedSlice) === undefined) tf.registerGradient(stridedSliceGradient);
}
