/**
 * Training-step throughput of the real thing: mpq's CIFAR ResNet-20 QuantModel at uniform W4A4 LSQ
 * (first conv and fc at 8/8), one step = forward + loss + backward + SGD-momentum update exactly as
 * the training loop runs it (loops.ts trainStep, finetune hyperparameters), on a batch of random
 * 32x32x3 images. Images per second and milliseconds (median over steps after warm-up), peak RSS,
 * the 1-minute load average around the measurement (the machine may be shared: other processes
 * take cores, so compare the ratio, measured back to back, not the absolute figures); then the same
 * step in PyTorch (bench/train_step_torch.py) when `/usr/bin/python3 -c 'import torch'` works.
 *
 * Each configuration runs in a fresh node process (the wasm backend's thread count is fixed when it
 * first starts, and peak RSS is per process):
 *
 *   node dist/bench/train-step.js [--batch 32] [--steps 8] [--warmup 3] [--bits 4] [--threads N]
 *                                 [--workers N] [--backend native|wasm] [--no-torch] [--no-fp]
 *
 * Without --threads/--workers: one core (1 thread), both cores as threads and as data-parallel
 * workers (2 workers x 1 thread), each against PyTorch with as many threads; on the native kernels
 * when they are built (then wasm at 1 thread too, for reference), else on wasm. --bits 32 measures
 * the full-precision step; by default FP lines follow (1 and 2 threads).
 */
import * as tf from '@tensorflow/tfjs';
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { initBackend, loadNative } from '../src/train/backend/index.js';
import { startWorkers } from '../src/train/backend/model-replica.js';
import { createStepState, DEFAULT_HYPERPARAMETERS, trainStep } from '../src/train/loops.js';
import { createModel } from '../src/train/models.js';
import { FULL_PRECISION, uniformPolicy } from '../src/train/policies.js';

/** One measured configuration: threads of one backend, or data-parallel workers. */
export interface Parallelism {
  /** mpq's native kernels over wasm, or wasm alone */
  backend: 'native' | 'wasm';
  /** oneDNN threads (native) or XNNPACK threads (wasm) */
  threads: number;
  /** data-parallel gradient workers (one thread each); 0: the step runs in the main thread */
  workers: number;
}

export interface BenchTrainStepOptions {
  batchSize?: number;
  /** measured steps (at least 5) */
  steps?: number;
  warmup?: number;
  /** bit-width of the searchable layers (32: the full-precision step) */
  bits?: number;
  /** configurations to measure (default: 1 thread, 2 threads, 2 workers; see the module comment) */
  parallelism?: Parallelism[];
  /** also run the PyTorch twin when python3 has torch (default true) */
  torch?: boolean;
  /** also measure the FP step at one and two threads (default true) */
  fp?: boolean;
}

export interface TrainStepFigures {
  imgPerSec: number;
  medianMs: number;
  peakRssMB: number;
}

/** Figures with the 1-minute load average before and after the measurement. */
export interface Measured extends TrainStepFigures {
  load: [number, number];
}

export interface TrainStepRun extends Measured {
  label: string;
  bits: number;
  batchSize: number;
  parallelism: Parallelism;
}

export interface TorchRun extends Measured {
  bits: number;
  threads: number;
}

export interface TrainStepResult {
  tfjs: TrainStepRun[];
  /** the PyTorch twin at each thread count the tfjs runs used (absent without torch) */
  torch: TorchRun[];
}

const PYTHON = '/usr/bin/python3';
const TORCH_SCRIPT = fileURLToPath(new URL('../../bench/train_step_torch.py', import.meta.url));
const THIS_SCRIPT = fileURLToPath(import.meta.url);

const loadAverage = () => os.loadavg()[0];

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

interface ChildRequest {
  batchSize: number;
  steps: number;
  warmup: number;
  bits: number;
  parallelism: Parallelism;
}

/** The measurement itself, in this (fresh) process. */
async function measureHere(r: ChildRequest): Promise<TrainStepFigures> {
  const { backend, threads, workers } = r.parallelism;
  // With workers, this thread only applies the updates: one thread.
  await initBackend(backend, { threads: workers > 0 ? 1 : threads });
  const quantized = r.bits < 32;
  const model = createModel('resnet20', { bits: quantized ? [r.bits] : [] });
  const passes = [{ label: quantized ? `w${r.bits}a${r.bits}` : 'fp', policy: quantized ? uniformPolicy(model, r.bits) : FULL_PRECISION }];
  const hyper = { ...DEFAULT_HYPERPARAMETERS[quantized ? 'finetune' : 'train'], epochs: 1, batchSize: r.batchSize };
  const state = createStepState(model, hyper);
  if (workers > 0) state.workers = await startWorkers(model, workers);
  // CIFAR-like: normalised images, labels 0..9
  const x = tf.randomNormal([r.batchSize, 32, 32, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
  const y = tf.randomUniform([r.batchSize], 0, 10, 'int32', 2) as tf.Tensor1D;
  const stepMs: number[] = [];
  try {
    for (let i = 0; i < r.warmup + r.steps; i++) {
      const start = performance.now();
      await trainStep(state, x, y, passes, hyper.lr);
      if (i >= r.warmup) stepMs.push(performance.now() - start);
    }
  } finally {
    await state.workers?.close();
    state.optimizer.dispose();
  }
  const medianMs = median(stepMs);
  return { imgPerSec: (r.batchSize * 1000) / medianMs, medianMs, peakRssMB: process.resourceUsage().maxRSS / 1024 };
}

function measureInChild(r: ChildRequest): TrainStepFigures {
  const run = spawnSync(process.execPath, [THIS_SCRIPT, '--child', JSON.stringify(r)], { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`train-step measurement failed: ${run.stderr.trim()}`);
  return JSON.parse(run.stdout.trim().split('\n').pop() ?? '') as TrainStepFigures;
}

function torchAvailable(): boolean {
  return spawnSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
}

function runTorch(r: ChildRequest, threads: number): TrainStepFigures {
  const args = [TORCH_SCRIPT, String(r.batchSize), String(r.steps), String(r.warmup), String(threads), String(r.bits)];
  const run = spawnSync(PYTHON, args, { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`${TORCH_SCRIPT} failed: ${run.stderr.trim()}`);
  const figures = JSON.parse(run.stdout.trim().split('\n').pop() ?? '') as { img_per_s: number; median_ms: number; peak_rss_mb: number };
  return { imgPerSec: figures.img_per_s, medianMs: figures.median_ms, peakRssMB: figures.peak_rss_mb };
}

const cores = (p: Parallelism) => Math.max(p.threads, p.workers);

/** The configuration's measurement with the load average around it. */
function measured<T extends TrainStepFigures>(measure: () => T): T & { load: [number, number] } {
  const before = loadAverage();
  const figures = measure();
  return { ...figures, load: [before, loadAverage()] };
}

/**
 * Measures each tfjs configuration; PyTorch runs with as many threads right after the last tfjs
 * configuration using that many cores (back to back, as the load drifts).
 */
export function benchTrainStep(opts: BenchTrainStepOptions = {}): TrainStepResult {
  const base = {
    batchSize: opts.batchSize ?? 32,
    steps: Math.max(5, opts.steps ?? 8),
    warmup: opts.warmup ?? 3,
  };
  const bits = opts.bits ?? 4;
  const withTorch = (opts.torch ?? true) && torchAvailable();
  const backend = loadNative().addon ? 'native' : 'wasm';
  const threaded: Parallelism[] = [{ backend, threads: 1, workers: 0 }, { backend, threads: 2, workers: 0 }];
  const configurations: Array<{ bits: number; parallelism: Parallelism }> = (opts.parallelism ?? [
    ...(backend === 'native' ? [{ backend: 'wasm' as const, threads: 1, workers: 0 }] : []),
    ...threaded, { backend, threads: 1, workers: 2 },
  ]).map((parallelism) => ({ bits, parallelism }));
  if ((opts.fp ?? true) && bits < 32) configurations.push(...threaded.map((parallelism) => ({ bits: 32, parallelism })));
  const result: TrainStepResult = { tfjs: [], torch: [] };
  configurations.forEach(({ bits: b, parallelism }, i) => {
    const request: ChildRequest = { ...base, bits: b, parallelism };
    const label = b < 32 ? `W${b}A${b} LSQ` : 'FP';
    result.tfjs.push({ ...measured(() => measureInChild(request)), label, bits: b, batchSize: base.batchSize, parallelism });
    const threads = cores(parallelism);
    const lastWithThese = !configurations.slice(i + 1).some((c) => c.bits === b && cores(c.parallelism) === threads);
    if (withTorch && lastWithThese) result.torch.push({ ...measured(() => runTorch(request, threads)), bits: b, threads });
  });
  return result;
}

const plural = (n: number, word: string) => `${n} ${word}${n > 1 ? 's' : ''}`;
const describeParallelism = (p: Parallelism) => `${p.backend}, ${p.workers > 0 ? `${p.workers} workers x 1 thread` : plural(p.threads, 'thread')}`;
const describeLoad = ([a, b]: [number, number]) => `load ${a.toFixed(1)}→${b.toFixed(1)}`;
const describeFigures = (f: Measured) =>
  `${f.imgPerSec.toFixed(1)} img/s, ${f.medianMs.toFixed(0)} ms/step, peak RSS ${Math.round(f.peakRssMB)} MB, ${describeLoad(f.load)}`;

export function formatTrainStep(r: TrainStepResult): string {
  const lines: string[] = [];
  for (const run of r.tfjs) {
    const torch = r.torch.find((t) => t.bits === run.bits && t.threads === cores(run.parallelism));
    lines.push(`train-step resnet20 ${run.label} b${run.batchSize} (${describeParallelism(run.parallelism)}): ${describeFigures(run)}` +
      (torch ? `; ratio to torch ${(run.imgPerSec / torch.imgPerSec).toFixed(2)}, RSS ${(run.peakRssMB / torch.peakRssMB).toFixed(2)}x` : ''));
  }
  for (const torch of r.torch) {
    lines.push(`  torch ${torch.bits < 32 ? `W${torch.bits}A${torch.bits} LSQ` : 'FP'} (${plural(torch.threads, 'thread')}): ${describeFigures(torch)}`);
  }
  // per core count, mpq's fastest configuration against PyTorch (targets: 0.8x the speed, 1.2x the peak RSS)
  for (const torch of r.torch) {
    const runs = r.tfjs.filter((run) => run.bits === torch.bits && cores(run.parallelism) === torch.threads);
    const best = runs.reduce<TrainStepRun | undefined>((a, b) => (a && a.imgPerSec >= b.imgPerSec ? a : b), undefined);
    if (best) {
      lines.push(`  best ${best.label} on ${plural(torch.threads, 'core')}: ${best.imgPerSec.toFixed(1)} img/s (${describeParallelism(best.parallelism)}) / torch ` +
        `${torch.imgPerSec.toFixed(1)} img/s = ${(best.imgPerSec / torch.imgPerSec).toFixed(2)} (target 0.8); peak RSS ` +
        `${(best.peakRssMB / torch.peakRssMB).toFixed(2)}x torch's (target 1.2)`);
    }
  }
  lines.push(`  (${os.availableParallelism()} cores shared with other work: load averages are the machine's 1-minute figures; compare ratios)`);
  return lines.join('\n');
}

function parseArgs(argv: string[]): BenchTrainStepOptions {
  const opts: BenchTrainStepOptions = {};
  let threads: number | undefined;
  let workers: number | undefined;
  let backend: Parallelism['backend'] | undefined;
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const next = () => {
      const value = Number(argv[++i]);
      if (!Number.isInteger(value) || value < 1) throw new Error(`${flag} needs a positive integer`);
      return value;
    };
    if (flag === '--batch') opts.batchSize = next();
    else if (flag === '--steps') opts.steps = next();
    else if (flag === '--warmup') opts.warmup = next();
    else if (flag === '--bits') opts.bits = next();
    else if (flag === '--threads') threads = next();
    else if (flag === '--workers') workers = next();
    else if (flag === '--backend') {
      const value = argv[++i];
      if (value !== 'native' && value !== 'wasm') throw new Error('--backend: native or wasm');
      backend = value;
    }
    else if (flag === '--no-torch') opts.torch = false;
    else if (flag === '--no-fp') opts.fp = false;
    else throw new Error(`unknown flag ${flag}`);
  }
  if (threads !== undefined || workers !== undefined || backend !== undefined) {
    opts.parallelism = [{ backend: backend ?? (loadNative().addon ? 'native' : 'wasm'), threads: threads ?? 1, workers: workers ?? 0 }];
  }
  return opts;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  if (process.argv[2] === '--child') {
    console.log(JSON.stringify(await measureHere(JSON.parse(process.argv[3]) as ChildRequest)));
  } else {
    console.log(formatTrainStep(benchTrainStep(parseArgs(process.argv.slice(2)))));
  }
}
