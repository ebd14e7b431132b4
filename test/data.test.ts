import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import {
  batches, epochOrder, shiftImage, loadCifar10Directory, loadIdxDirectory, loadMnistPackage, MNIST_MEAN, MNIST_STD, readIdx, subset,
} from '../src/train/data.js';
import { deriveSeed, Prng } from '../src/util/prng.js';

function idx(dims: number[], data: number[]): Buffer {
  const header = Buffer.alloc(4 + 4 * dims.length);
  header[2] = 0x08;
  header[3] = dims.length;
  dims.forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([header, Buffer.from(data)]);
}

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'mpq-data-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('PRNG: same seed, same stream; derived seeds differ by label', () => {
  const a = new Prng(42);
  const b = new Prng(42);
  const xs = Array.from({ length: 5 }, () => a.next());
  assert.deepEqual(xs, Array.from({ length: 5 }, () => b.next()));
  assert.ok(xs.every((x) => x >= 0 && x < 1));
  assert.notEqual(deriveSeed(1, 0), deriveSeed(1, 1));
  assert.equal(deriveSeed(1, 2, 3), deriveSeed(1, 2, 3));
  const order = epochOrder(10, 7);
  assert.deepEqual([...order].sort((x, y) => x - y), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.deepEqual([...epochOrder(10, 7)], [...order]);
});

test('IDX reader: 2 images of 2x3 and their labels, plain and gzipped, normalised', (t) => {
  const dir = tempDir(t);
  const pixels = [0, 255, 0, 255, 0, 255, 51, 102, 153, 204, 255, 0];
  writeFileSync(join(dir, 'train-images-idx3-ubyte'), idx([2, 2, 3], pixels));
  writeFileSync(join(dir, 'train-labels-idx1-ubyte'), idx([2], [7, 3]));
  writeFileSync(join(dir, 't10k-images-idx3-ubyte.gz'), gzipSync(idx([1, 2, 3], pixels.slice(0, 6))));
  writeFileSync(join(dir, 't10k-labels-idx1-ubyte.gz'), gzipSync(idx([1], [9])));
  assert.deepEqual(readIdx(join(dir, 'train-labels-idx1-ubyte')).dims, [2]);
  const ds = loadIdxDirectory(dir);
  assert.equal(ds.train.count, 2);
  assert.deepEqual(ds.train.shape, [2, 3, 1]);
  assert.deepEqual([...ds.train.labels], [7, 3]);
  assert.deepEqual([...ds.test.labels], [9]);
  // pixel 51 → 0.2 → (0.2 − 0.1307)/0.3081
  assert.ok(Math.abs(ds.train.images[6] - (0.2 - MNIST_MEAN[0]) / MNIST_STD[0]) < 1e-5);
  assert.ok(Math.abs(ds.test.images[1] - (1 - MNIST_MEAN[0]) / MNIST_STD[0]) < 1e-5);
});

test('IDX reader rejects a bad magic number and a truncated file, naming the file', (t) => {
  const dir = tempDir(t);
  const bad = join(dir, 'bad');
  writeFileSync(bad, Buffer.from([1, 2, 3, 4]));
  assert.throws(() => readIdx(bad), (e: Error) => e.name === 'UserError' && e.message.startsWith(bad));
  const short = join(dir, 'short');
  writeFileSync(short, idx([3], [1, 2]));
  assert.throws(() => readIdx(short), /header says 3 bytes/);
});

test('CIFAR-10 binary reader: CHW records become NHWC, labels kept', (t) => {
  const dir = tempDir(t);
  // two records: label, then 1024 R, 1024 G, 1024 B bytes; pixel p of record r has R = r, G = 100, B = 255
  const records = [4, 8].map((label, r) => {
    const rec = Buffer.alloc(3073);
    rec[0] = label;
    rec.fill(r, 1, 1025);
    rec.fill(100, 1025, 2049);
    rec.fill(255, 2049, 3073);
    return rec;
  });
  writeFileSync(join(dir, 'data_batch_1.bin'), Buffer.concat(records));
  writeFileSync(join(dir, 'test_batch.bin'), records[1]);
  const ds = loadCifar10Directory(dir);
  assert.equal(ds.train.count, 2);
  assert.deepEqual([...ds.train.labels], [4, 8]);
  assert.deepEqual([...ds.test.labels], [8]);
  assert.deepEqual(ds.train.shape, [32, 32, 3]);
  // record 1, pixel 5: channels interleaved (R, G, B) = (1, 100, 255)/255, normalised per channel
  const at = 3072 + 5 * 3;
  assert.ok(Math.abs(ds.train.images[at] - (1 / 255 - 0.4914) / 0.247) < 1e-5);
  assert.ok(Math.abs(ds.train.images[at + 1] - (100 / 255 - 0.4822) / 0.2435) < 1e-5);
  assert.ok(Math.abs(ds.train.images[at + 2] - (1 - 0.4465) / 0.2616) < 1e-5);
  writeFileSync(join(dir, 'data_batch_2.bin'), Buffer.alloc(10));
  assert.throws(() => loadCifar10Directory(dir), /not a multiple of 3073/);
});

test('mnist package: seeded 8,000/2,000 split, disjoint and reproducible, all digits present', () => {
  const a = loadMnistPackage(0);
  assert.equal(a.train.count, 8000);
  assert.equal(a.test.count, 2000);
  assert.deepEqual(a.train.shape, [28, 28, 1]);
  assert.equal(new Set(a.test.labels).size, 10);
  const b = loadMnistPackage(0);
  assert.deepEqual(a.test.labels, b.test.labels);
  assert.deepEqual(a.test.images.subarray(0, 784), b.test.images.subarray(0, 784));
  // the training and test images do not overlap (compare fingerprints of each image)
  const key = (imgs: Float32Array, i: number) => imgs.subarray(i * 784, (i + 1) * 784).join(',');
  const trainKeys = new Set(Array.from({ length: a.train.count }, (_, i) => key(a.train.images, i)));
  const shared = Array.from({ length: a.test.count }, (_, i) => key(a.test.images, i)).filter((k) => trainKeys.has(k));
  assert.ok(shared.length < 5, `${shared.length} test images also in train`); // the package has a few duplicate digits
  const small = subset(a.train, 5);
  const got = [...batches(small, 2)].map((batch) => {
    const shape = batch.x.shape;
    batch.x.dispose();
    batch.y.dispose();
    return shape;
  });
  assert.deepEqual(got, [[2, 28, 28, 1], [2, 28, 28, 1], [1, 28, 28, 1]]);
});

test('augmentation: shifts with black fill; every augmented image is one of the allowed shifts', () => {
  const image = Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9]); // 3x3, one channel
  const out = new Float32Array(9);
  // down 1, left 1: row y takes source row y−1, column x takes source column x+1
  shiftImage(image, out, [3, 3, 1], 1, -1, [-1]);
  assert.deepEqual([...out], [-1, -1, -1, 2, 3, -1, 5, 6, -1]);

  const set = { images: image, labels: Int32Array.from([4]), shape: [3, 3, 1] as [number, number, number], count: 1 };
  const black = -MNIST_MEAN[0] / MNIST_STD[0];
  const allowed = new Set<string>();
  for (let dy = -1; dy <= 1; dy++) {
    for (let dx = -1; dx <= 1; dx++) {
      shiftImage(image, out, [3, 3, 1], dy, dx, [black]);
      allowed.add([...out].join(','));
    }
  }
  const rng = new Prng(11);
  const seen = new Set<string>();
  for (let i = 0; i < 40; i++) {
    for (const batch of batches(set, 1, undefined, { maxShift: 1, rng })) {
      const key = [...batch.x.dataSync()].join(',');
      assert.ok(allowed.has(key), key);
      seen.add(key);
      batch.x.dispose();
      batch.y.dispose();
    }
  }
  assert.ok(seen.size > 3, 'different shifts are drawn');
});
