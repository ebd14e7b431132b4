/**
 * Training-step throughput: CIFAR ResNet-20 (3x32x32), forward + backward + SGD-momentum update,
 * images per second (median over steps after warm-up) and peak RSS; with the same step in PyTorch
 * (bench/train_step_torch.py) when `/usr/bin/python3 -c 'import torch'` works.
 *
 *   node dist/bench/train-step.js [--backend wasm] [--batch 32] [--steps 8] [--warmup 3] [--threads N]
 *                                 [--workers N] [--no-torch]
 *
 * --threads: XNNPACK threads of the (single) wasm backend; --workers: data-parallel gradient
 * workers instead (DataParallelGradients), one thread each.
 */
import * as tf from '@tensorflow/tfjs';
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { DataParallelGradients, splitBatch, type Replica } from '../src/train/backend/data-parallel.js';
import { batchNormTrain, defaultWasmThreads, initBackend, type BackendName } from '../src/train/backend/index.js';

export interface BenchTrainStepOptions {
  backend?: BackendName;
  batchSize?: number;
  /** measured steps (at least 5) */
  steps?: number;
  warmup?: number;
  /** XNNPACK threads for wasm, and PyTorch's (default: idle cores, defaultWasmThreads) */
  threads?: number;
  /** data-parallel gradient workers (one wasm thread each) instead of one multi-threaded backend; PyTorch then gets as many threads */
  workers?: number;
  /** also run the PyTorch twin when python3 has torch (default true) */
  torch?: boolean;
}

export interface TrainStepFigures {
  imgPerSec: number;
  medianMs: number;
  peakRssMB: number;
}

export interface BenchTrainStepResult extends TrainStepFigures {
  backend: string;
  batchSize: number;
  threads: number;
  /** data-parallel workers, 0 when the step ran in this thread */
  workers: number;
  /** 1-minute load average when the tfjs measurement ended: other processes' share of the cores */
  loadAverage: number;
  torch?: TrainStepFigures;
  /** tfjs img/s over PyTorch img/s */
  ratio?: number;
}

const PYTHON = '/usr/bin/python3';
const TORCH_SCRIPT = fileURLToPath(new URL('../../bench/train_step_torch.py', import.meta.url));

interface ConvBn {
  filter: tf.Variable;
  gamma: tf.Variable;
  beta: tf.Variable;
  stride: number;
}

interface Block {
  conv1: ConvBn;
  conv2: ConvBn;
  shortcut?: ConvBn;
}

export interface ResNet20 {
  stem: ConvBn;
  blocks: Block[];
  fcWeight: tf.Variable;
  fcBias: tf.Variable;
}

function convBn(kernel: number, cin: number, cout: number, stride: number): ConvBn {
  const fanIn = kernel * kernel * cin;
  return {
    filter: tf.variable(tf.randomNormal([kernel, kernel, cin, cout], 0, Math.sqrt(2 / fanIn))),
    gamma: tf.variable(tf.ones([cout])),
    beta: tf.variable(tf.zeros([cout])),
    stride,
  };
}

/** ResNet-20 for CIFAR (He et al. 2016), 1x1-conv shortcuts where the shape changes; as in the PyTorch twin. */
export function resnet20(classes = 10): ResNet20 {
  const blocks: Block[] = [];
  let cin = 16;
  for (const [cout, stride] of [[16, 1], [32, 2], [64, 2]]) {
    for (let i = 0; i < 3; i++) {
      const s = i === 0 ? stride : 1;
      blocks.push({
        conv1: convBn(3, cin, cout, s),
        conv2: convBn(3, cout, cout, 1),
        shortcut: s !== 1 || cin !== cout ? convBn(1, cin, cout, s) : undefined,
      });
      cin = cout;
    }
  }
  return {
    stem: convBn(3, 3, 16, 1),
    blocks,
    fcWeight: tf.variable(tf.randomNormal([64, classes], 0, Math.sqrt(1 / 64))),
    fcBias: tf.variable(tf.zeros([classes])),
  };
}

function applyConvBn(layer: ConvBn, x: tf.Tensor4D): tf.Tensor4D {
  const pad = layer.filter.shape[0] === 1 ? 0 : 1;
  const conv = tf.conv2d(x, layer.filter as tf.Tensor4D, layer.stride, pad);
  return batchNormTrain(conv, layer.gamma as tf.Tensor1D, layer.beta as tf.Tensor1D).y;
}

export function logits(model: ResNet20, images: tf.Tensor4D): tf.Tensor2D {
  let x: tf.Tensor4D = tf.relu(applyConvBn(model.stem, images));
  for (const block of model.blocks) {
    const branch = applyConvBn(block.conv2, tf.relu(applyConvBn(block.conv1, x)));
    x = tf.relu(branch.add(block.shortcut ? applyConvBn(block.shortcut, x) : x)) as tf.Tensor4D;
  }
  const pooled = x.mean([1, 2]) as tf.Tensor2D;
  return pooled.matMul(model.fcWeight as tf.Tensor2D).add(model.fcBias);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** The model's trainable variables, in a fixed order (the replicas' order too). */
function parameters(model: ResNet20): tf.Variable[] {
  const convBnVariables = (layer: ConvBn) => [layer.filter, layer.gamma, layer.beta];
  return [
    ...convBnVariables(model.stem),
    ...model.blocks.flatMap((block) => [block.conv1, block.conv2, ...(block.shortcut ? [block.shortcut] : [])].flatMap(convBnVariables)),
    model.fcWeight,
    model.fcBias,
  ];
}

const lossOf = (model: ResNet20, images: tf.Tensor4D, labels: tf.Tensor) =>
  tf.losses.softmaxCrossEntropy(labels, logits(model, images)) as tf.Scalar;

/** Replica factory for the data-parallel workers (see ReplicaModule). */
export function createReplica(): Replica {
  const model = resnet20();
  return { variables: parameters(model), loss: (shard) => lossOf(model, shard.images as tf.Tensor4D, shard.labels) };
}

const peakRssMB = () => process.resourceUsage().maxRSS / 1024;

function torchAvailable(): boolean {
  return spawnSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
}

function runTorch(batchSize: number, steps: number, warmup: number, threads: number): TrainStepFigures {
  const run = spawnSync(PYTHON, [TORCH_SCRIPT, String(batchSize), String(steps), String(warmup), String(threads)], {
    encoding: 'utf8',
  });
  if (run.status !== 0) throw new Error(`${TORCH_SCRIPT} failed: ${run.stderr.trim()}`);
  const figures = JSON.parse(run.stdout.trim().split('\n').pop() ?? '') as { img_per_s: number; median_ms: number; peak_rss_mb: number };
  return { imgPerSec: figures.img_per_s, medianMs: figures.median_ms, peakRssMB: figures.peak_rss_mb };
}

/** Measures tfjs training-step throughput, and PyTorch's on the same step when available. */
export async function benchTrainStep(opts: BenchTrainStepOptions = {}): Promise<BenchTrainStepResult> {
  const batchSize = opts.batchSize ?? 32;
  const steps = Math.max(5, opts.steps ?? 8);
  const warmup = opts.warmup ?? 3;
  const threads = opts.threads ?? defaultWasmThreads();
  const workers = opts.workers ?? 0;
  // With workers, this thread only applies updates: one wasm thread is plenty.
  const backend = await initBackend(opts.backend ?? 'wasm', { wasmThreads: workers > 0 ? 1 : threads });

  const model = resnet20();
  const variables = parameters(model);
  const optimizer = tf.train.momentum(0.1, 0.9);
  const images = tf.randomNormal([batchSize, 32, 32, 3]) as tf.Tensor4D;
  const labels = tf.oneHot(tf.randomUniform([batchSize], 0, 10, 'int32') as tf.Tensor1D, 10);
  const pool = workers > 0 ? await DataParallelGradients.start({ workers, replicaModule: import.meta.url, backend: opts.backend ?? 'wasm' }) : undefined;

  const step = async () => {
    if (!pool) {
      const loss = optimizer.minimize(() => lossOf(model, images, labels), true);
      await loss?.data();
      loss?.dispose();
      return;
    }
    const weights = variables.map((variable) => variable.dataSync() as Float32Array);
    const { gradients } = await pool.gradients(weights, splitBatch({ images, labels }, pool.size));
    tf.tidy(() => optimizer.applyGradients(variables.map((variable, i) => ({ name: variable.name, tensor: tf.tensor(gradients[i], variable.shape) }))));
  };
  const stepMs: number[] = [];
  for (let i = 0; i < warmup + steps; i++) {
    const start = performance.now();
    await step();
    if (i >= warmup) stepMs.push(performance.now() - start);
  }
  await pool?.close();
  const medianMs = median(stepMs);
  const result: BenchTrainStepResult = {
    backend, batchSize, threads, workers, imgPerSec: (batchSize * 1000) / medianMs, medianMs, peakRssMB: peakRssMB(),
    loadAverage: os.loadavg()[0],
  };
  optimizer.dispose();
  tf.dispose([images, labels]);
  tf.disposeVariables();

  if ((opts.torch ?? true) && torchAvailable()) {
    // The same number of cores for PyTorch.
    result.torch = runTorch(batchSize, steps, warmup, workers > 0 ? workers : threads);
    result.ratio = result.imgPerSec / result.torch.imgPerSec;
  }
  return result;
}

export function formatTrainStep(r: BenchTrainStepResult): string {
  const parallelism = r.workers > 0 ? `${r.workers} workers x 1 thread` : `${r.threads} threads`;
  let line = `train-step resnet20 b${r.batchSize} ${r.backend} (${parallelism}): ${r.imgPerSec.toFixed(1)} img/s, peak RSS ${Math.round(r.peakRssMB)} MB`;
  if (r.torch && r.ratio !== undefined) {
    line += `; torch: ${r.torch.imgPerSec.toFixed(1)} img/s, peak RSS ${Math.round(r.torch.peakRssMB)} MB; ratio ${r.ratio.toFixed(2)}`;
  }
  return `${line} (load average ${r.loadAverage.toFixed(1)} on ${os.availableParallelism()} cores)`;
}

function parseArgs(argv: string[]): BenchTrainStepOptions {
  const opts: BenchTrainStepOptions = {};
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const next = () => {
      const value = argv[++i];
      if (value === undefined) throw new Error(`${flag} needs a value`);
      return value;
    };
    if (flag === '--backend') opts.backend = next() as BackendName;
    else if (flag === '--batch') opts.batchSize = Number(next());
    else if (flag === '--steps') opts.steps = Number(next());
    else if (flag === '--warmup') opts.warmup = Number(next());
    else if (flag === '--threads') opts.threads = Number(next());
    else if (flag === '--workers') opts.workers = Number(next());
    else if (flag === '--no-torch') opts.torch = false;
    else throw new Error(`unknown flag ${flag}`);
  }
  return opts;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(formatTrainStep(await benchTrainStep(parseArgs(process.argv.slice(2)))));
}
