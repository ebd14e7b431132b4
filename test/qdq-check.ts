/**
 * An exported QDQ model in onnxruntime against mpq's fake-quantized forward on the same images,
 * logits and every layer's input codes. onnxruntime and tfjs sum a conv's products in different
 * orders, so a value that lies on a rounding tie of the next quantizer (x/step within ~1e-5 of
 * k + ½) can round to k in one and k + 1 in the other; the logits of that image then differ by
 * about a step. The check tells those images apart: the first layer whose codes differ must
 * differ only by one level at such ties. Every other image must give the same logits (≤ 1e-4).
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { qdqLayers } from '../src/export/model-export.js';
import type { InputGrid } from '../src/export/onnx-model.js';
import { decodeOnnx, encodeOnnx, ONNX_DATA_TYPE } from '../src/model/onnx/proto.js';
import type { Quantizer } from '../src/quant/quantizer.js';
import type { BitsPolicy, QuantModel } from '../src/train/models.js';
import { runOnnx, type FloatTensor } from './onnxruntime.js';
import { tempDir } from './support.js';

/** How near k + ½ (in steps, relative to the value) a code may differ between the runtimes. */
export const TIE_TOLERANCE = 1e-4;

export interface QdqComparison {
  images: number;
  /** max abs logit difference over the images whose codes all agree */
  maxAbsDiff: number;
  /** images whose codes differ, each first at a rounding tie */
  tieImages: number[];
  /** images whose codes differ otherwise (must be none) */
  unexplained: string[];
  /** images where both runtimes rank the same class first */
  sameTop1: number;
  /** the largest logit difference of a tie image */
  tieMaxAbsDiff: number;
}

/** Records what a quantizer is given, passing everything else to it. */
function recording(q: Quantizer, seen: Float32Array[]): Quantizer {
  return {
    kind: q.kind,
    bitsList: q.bitsList,
    get activeBits() { return q.activeBits; },
    set activeBits(b: number) { q.activeBits = b; },
    quantize(x: tf.Tensor, training: boolean) {
      seen.push(Float32Array.from(x.dataSync() as Float32Array));
      return q.quantize(x, training);
    },
    get startStep() { return q.startStep; },
    set startStep(s: number) { q.startStep = s; },
    get started() { return q.started; },
    trainableVariables: () => q.trainableVariables(),
    namedState: () => q.namedState(),
    integerForm: (x: tf.Tensor) => q.integerForm(x),
  };
}

/** Index in NHWC order of element i of an NCHW tensor's [n, c, h, w]. */
function nhwcIndex(i: number, [, c, h, w]: number[]): number {
  const x = i % w;
  const y = Math.floor(i / w) % h;
  const ch = Math.floor(i / (w * h)) % c;
  const b = Math.floor(i / (w * h * c));
  return ((b * h + y) * w + x) * c + ch;
}

interface LayerInputs {
  name: string;
  grid: InputGrid;
  /** what mpq's input quantizer was given (NHWC) */
  mpq: Float32Array;
}

/** Per image of a batch: the first layer whose input codes differ, and whether only by one level at ties. */
function firstDifferences(layers: LayerInputs[], ort: Record<string, FloatTensor>, n: number): Array<{ layer: string; ties: boolean } | undefined> {
  const first = new Array<{ layer: string; ties: boolean } | undefined>(n);
  for (const { name, grid, mpq } of layers) {
    const out = ort[`${name}.input_dequantized`];
    const perImage = mpq.length / n;
    for (let i = 0; i < out.data.length; i++) {
      const j = out.dims.length === 4 ? nhwcIndex(i, out.dims) : i;
      const image = Math.floor(j / perImage);
      if (first[image] !== undefined && first[image]!.layer !== name) continue;
      const v = Math.fround(mpq[j] / grid.step);
      const code = Math.min(Math.max(Math.round(v), grid.lo), grid.hi);
      const theirs = Math.round(out.data[i] / grid.step);
      if (code === theirs) continue;
      const tie = Math.abs(theirs - code) === 1 && Math.abs(Math.abs(v - Math.floor(v)) - 0.5) <= TIE_TOLERANCE * Math.max(1, Math.abs(v));
      const entry = first[image] ?? { layer: name, ties: true };
      entry.ties &&= tie;
      first[image] = entry;
    }
  }
  return first;
}

/**
 * Runs each of `onnxPaths` (with every quantized layer's dequantized input as an extra output) and
 * mpq's forward at `policy` on the first `count` of `images` (NHWC, the model's input shape), in
 * batches; one comparison per file (all of one model, so of one input layout).
 */
export async function compareQdq(onnxPaths: string[], model: QuantModel, policy: BitsPolicy, images: Float32Array, count: number, batch = 500): Promise<QdqComparison[]> {
  const grids = [...qdqLayers(model, policy)].filter(([, q]) => q.input).map(([name, q]) => ({ name, grid: q.input! }));
  const layers = new Map(model.layers.map((l) => [l.name, l]));
  const dir = tempDir('mpq-qdq-check-');
  const files = onnxPaths.map((path, k) => {
    const onnx = decodeOnnx(readFileSync(path), path);
    for (const { name } of grids) onnx.graph.outputs.push({ name: `${name}.input_dequantized`, elemType: ONNX_DATA_TYPE.FLOAT, shape: undefined });
    const debug = join(dir, `debug-${k}.onnx`);
    writeFileSync(debug, encodeOnnx(onnx));
    return { debug, input: onnx.graph.inputs[0], output: onnx.graph.outputs[0].name };
  });
  const [h, w, c] = model.inputShape;
  const out = model.graph.nodes.find((node) => node.name === model.graph.output)!;
  const softmax = out.op === 'activation' && out.fn === 'softmax';
  const results: QdqComparison[] = files.map(() => ({ images: count, maxAbsDiff: 0, tieImages: [], unexplained: [], sameTop1: 0, tieMaxAbsDiff: 0 }));
  const originals = grids.map(({ name }) => layers.get(name)!.inputQuantizer);
  try {
    for (let start = 0; start < count; start += batch) {
      const n = Math.min(batch, count - start);
      const x = images.subarray(start * h * w * c, (start + n) * h * w * c);
      const seen = grids.map(() => [] as Float32Array[]);
      grids.forEach(({ name }, k) => { layers.get(name)!.inputQuantizer = recording(originals[k], seen[k]); });
      // mpq's forward leaves a final softmax to the loss; the ONNX file has it
      const logits = tf.tidy(() => {
        const y = model.forward(tf.tensor4d(x, [n, h, w, c]), policy, false);
        return softmax ? tf.softmax(y) : y;
      });
      const ours = logits.dataSync() as Float32Array;
      logits.dispose();
      grids.forEach(({ name }, k) => { layers.get(name)!.inputQuantizer = originals[k]; });
      const inputs = grids.map((g, k) => ({ ...g, mpq: seen[k][0] }));
      const dims = files[0].input.shape!.length === 4 ? [n, c, h, w] : [n, h * w * c];
      // onnxruntime takes images NCHW
      const feed = dims.length === 4 ? Float32Array.from({ length: x.length }, (_, i) => x[nhwcIndex(i, dims)]) : Float32Array.from(x);
      for (const [f, { debug, input, output }] of files.entries()) {
        const ort = await runOnnx(debug, { [input.name]: { data: feed, dims } });
        tally(results[f], start, ours, ort[output].data, firstDifferences(inputs, ort, n));
      }
    }
  } finally {
    grids.forEach(({ name }, k) => { layers.get(name)!.inputQuantizer = originals[k]; });
    rmSync(dir, { recursive: true, force: true });
  }
  return results;
}

/** Adds a batch's images (from `start`) to `result`. */
function tally(result: QdqComparison, start: number, ours: Float32Array, theirs: Float32Array, first: Array<{ layer: string; ties: boolean } | undefined>): void {
  const n = first.length;
  const classes = ours.length / n;
  for (let i = 0; i < n; i++) {
    let diff = 0;
    let [best, theirBest] = [0, 0];
    for (let k = 0; k < classes; k++) {
      diff = Math.max(diff, Math.abs(ours[i * classes + k] - theirs[i * classes + k]));
      if (ours[i * classes + k] > ours[i * classes + best]) best = k;
      if (theirs[i * classes + k] > theirs[i * classes + theirBest]) theirBest = k;
    }
    if (best === theirBest) result.sameTop1++;
    const f = first[i];
    if (f === undefined) result.maxAbsDiff = Math.max(result.maxAbsDiff, diff);
    else if (f.ties) {
      result.tieImages.push(start + i);
      result.tieMaxAbsDiff = Math.max(result.tieMaxAbsDiff, diff);
    } else result.unexplained.push(`image ${start + i}: codes of ${f.layer}'s input differ beyond a rounding tie`);
  }
}
