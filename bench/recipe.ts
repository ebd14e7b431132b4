/**
 * Recipe parity: does mpq's training engine learn as fast as PyTorch on the same recipe? mnist-cnn
 * trained from scratch with mpq's `train` recipe (SGD 0.05, momentum 0.9, weight decay 5e-4, label
 * smoothing 0.1, cosine learning rate per step, batch 64, ±2-pixel shifts) on the first 4,000 of
 * the bundled digits, tested on the 2,000 test digits, for 1, 3 and 10 epochs (each its own run, so
 * its own schedule), seeds 1–3; then its PyTorch twin (bench/train_recipe_torch.py):
 *  - "same draws": with mpq's initial weights, sample orders and shifts for the run, so the two
 *    differ only in arithmetic (the target: mpq's mean within 1 point of this twin's);
 *  - "own draws": PyTorch's initialisation and random streams from the seed (what a PyTorch user
 *    gets; its seeds scatter by a few points at 1 epoch).
 *
 *   node dist/bench/recipe.js [--epochs 1,3,10] [--seeds 1,2,3] [--limit 4000] [--no-torch]
 *
 * Without Python's torch it is skipped (saying so), unless --no-torch asks for mpq's runs alone.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { initBackend } from '../src/train/backend/index.js';
import { epochOrder, loadMnistPackage, subset, type Dataset } from '../src/train/data.js';
import { DEFAULT_HYPERPARAMETERS, fullPrecisionPasses, trainLoop } from '../src/train/loops.js';
import { createModel, disposeModel, namedVariables } from '../src/train/models.js';
import { FULL_PRECISION } from '../src/train/policies.js';
import { DATA_SPLIT_SEED } from '../src/train/run.js';
import { deriveSeed, Prng } from '../src/util/prng.js';

const PYTHON = '/usr/bin/python3';
const TWIN = fileURLToPath(new URL('../../bench/train_recipe_torch.py', import.meta.url));

export interface RecipeOptions {
  epochs?: number[];
  seeds?: number[];
  limit?: number;
  torch?: boolean;
}

/** Test top-1 (0–1) at the end of each run, per seed. */
interface Row {
  epochs: number;
  mpq: number[];
  sameDraws: number[];
  ownDraws: number[];
}

/** The train and test digits as the twin reads them (int32 counts, float32 NHWC images, int32 labels). */
function writeDigits(path: string, data: Dataset, limit: number): void {
  const train = subset(data.train, limit);
  const test = subset(data.test, limit);
  const parts = [Int32Array.of(train.count, test.count), train.images, train.labels, test.images, test.labels];
  writeFileSync(path, Buffer.concat(parts.map((p) => Buffer.from(p.buffer, p.byteOffset, p.byteLength))));
}

/**
 * mpq's draws for a run, as trainLoop makes them (loops.ts, data.ts): the model's initial weights
 * from its seed, each epoch's order from deriveSeed(seed, epoch), and each image's shift (dy, then
 * dx) from the epoch's augmentation stream deriveSeed(seed, epoch, 0xffffffff).
 */
function writeDraws(path: string, seed: number, epochs: number, count: number, maxShift: number): void {
  const model = createModel('mnist-cnn', { seed });
  const init = Object.fromEntries([...namedVariables(model)].filter(([name]) => /^(conv\d|fc)\.(weight|bias)$/.test(name))
    .map(([name, v]) => [name, { shape: v.shape, values: Array.from(v.dataSync()) }]));
  disposeModel(model);
  const orders: number[][] = [];
  const shifts: number[][] = [];
  for (let epoch = 0; epoch < epochs; epoch++) {
    orders.push(Array.from(epochOrder(count, deriveSeed(seed, epoch))));
    const rng = new Prng(deriveSeed(seed, epoch, 0xffffffff));
    shifts.push(Array.from({ length: 2 * count }, () => rng.int(2 * maxShift + 1) - maxShift));
  }
  writeFileSync(path, JSON.stringify({ init, orders, shifts }));
}

async function trainMpq(data: Dataset, epochs: number, seed: number, limit: number): Promise<number> {
  const model = createModel('mnist-cnn', { seed });
  try {
    const reports = await trainLoop(model, data, {
      stage: 'train', hyper: { ...DEFAULT_HYPERPARAMETERS.train, epochs }, seed, limit, passes: fullPrecisionPasses, evalPolicy: FULL_PRECISION,
    });
    return reports[reports.length - 1].testTop1;
  } finally {
    disposeModel(model);
  }
}

function trainTwin(digits: string, epochs: number, seed: number, draws?: string): number {
  const args = [TWIN, digits, String(epochs), String(seed), ...(draws ? ['--draws', draws] : [])];
  const run = spawnSync(PYTHON, args, { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`${TWIN} failed: ${run.stderr.trim()}`);
  const { test_top1: top1 } = JSON.parse(run.stdout.trim().split('\n').pop() ?? '') as { test_top1: number[] };
  return top1[top1.length - 1];
}

const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
const percent = (value: number) => (100 * value).toFixed(2);

export async function benchRecipe(o: RecipeOptions = {}): Promise<Row[]> {
  const epochsList = o.epochs ?? [1, 3, 10];
  const seeds = o.seeds ?? [1, 2, 3];
  const limit = o.limit ?? 4000;
  const withTorch = (o.torch ?? true) && spawnSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
  if (!withTorch && o.torch !== false) {
    console.log(`recipe: skipped (no ${PYTHON} with torch for the twin; --no-torch trains mpq alone)`);
    return [];
  }
  const backend = await initBackend('auto');
  const data = loadMnistPackage(DATA_SPLIT_SEED);
  const scratch = mkdtempSync(join(tmpdir(), 'mpq-bench-recipe-'));
  const rows: Row[] = [];
  try {
    const digits = join(scratch, 'digits.bin');
    if (withTorch) writeDigits(digits, data, limit);
    for (const epochs of epochsList) {
      const row: Row = { epochs, mpq: [], sameDraws: [], ownDraws: [] };
      for (const seed of seeds) {
        row.mpq.push(await trainMpq(data, epochs, seed, limit));
        if (withTorch) {
          const draws = join(scratch, `draws-${seed}-${epochs}.json`);
          writeDraws(draws, seed, epochs, Math.min(limit, data.train.count), DEFAULT_HYPERPARAMETERS.train.maxShift);
          row.sameDraws.push(trainTwin(digits, epochs, seed, draws));
          row.ownDraws.push(trainTwin(digits, epochs, seed));
        }
      }
      rows.push(row);
      console.log(formatRow(row, seeds, backend));
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  return rows;
}

function formatRow(row: Row, seeds: number[], backend: string): string {
  const cell = (values: number[]) => `${values.map(percent).join(' / ')} (mean ${percent(mean(values))})`;
  const lines = [`recipe mnist-cnn ${row.epochs} epoch${row.epochs > 1 ? 's' : ''}, seeds ${seeds.join('/')}: mpq (${backend}) ${cell(row.mpq)}`];
  if (row.sameDraws.length > 0) {
    const gap = 100 * (mean(row.mpq) - mean(row.sameDraws));
    lines.push(`  torch twin, same draws ${cell(row.sameDraws)}: mpq ${gap >= 0 ? '+' : ''}${gap.toFixed(2)} points (target within 1)`);
    lines.push(`  torch twin, own draws  ${cell(row.ownDraws)}`);
  }
  return lines.join('\n');
}

function parseArgs(argv: string[]): RecipeOptions {
  const o: RecipeOptions = {};
  const list = (value: string | undefined, flag: string) => {
    const values = (value ?? '').split(',').map(Number);
    if (values.some((v) => !Number.isInteger(v) || v < 0)) throw new Error(`${flag}: comma-separated whole numbers`);
    return values;
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (flag === '--epochs') o.epochs = list(argv[++i], flag);
    else if (flag === '--seeds') o.seeds = list(argv[++i], flag);
    else if (flag === '--limit') o.limit = list(argv[++i], flag)[0];
    else if (flag === '--no-torch') o.torch = false;
    else throw new Error(`unknown flag ${flag}`);
  }
  return o;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await benchRecipe(parseArgs(process.argv.slice(2)));
}
