import * as tf from '@tensorflow/tfjs';
import {
  checkResumable, hasCheckpoint, readCheckpoint, disposeCheckpoint, loadIntoVariables, recordedGraph, saveCheckpoint, type CheckpointTraining,
} from './checkpoint.js';
import { batches, epochOrder, subset, type Dataset, type ImageSet } from './data.js';
import { decayedVariables, namedVariables, trainableVariables, type BitsPolicy, type QuantModel } from './models.js';
import { cosineLr, SgdMomentum } from './optimizer.js';
import { FULL_PRECISION, randomPolicy, uniformPolicy } from './policies.js';
import { deriveSeed, Prng } from '../util/prng.js';
import { ProgressBar } from './progress.js';
import { startWorkers, workerGradients } from './backend/model-replica.js';
import { accumulateGradients, correctCount, lossOf, type Hyperparameters, type Pass, type PassMetrics, type StepState } from './step.js';

export type { Hyperparameters, Pass, PassMetrics, StepState } from './step.js';

export type Stage = 'train' | 'pretrain' | 'finetune';

/** Defaults per stage: FP training from scratch, LIMPQ joint pretraining, LSQ finetuning. */
export const DEFAULT_HYPERPARAMETERS: Record<Stage, Omit<Hyperparameters, 'epochs'>> = {
  train: { batchSize: 64, lr: 0.05, momentum: 0.9, weightDecay: 5e-4, labelSmoothing: 0.1, maxShift: 2 },
  pretrain: { batchSize: 64, lr: 0.01, momentum: 0.9, weightDecay: 1e-4, labelSmoothing: 0.1, clipValue: 1, maxShift: 2 },
  finetune: { batchSize: 64, lr: 0.01, momentum: 0.9, weightDecay: 1e-4, labelSmoothing: 0.1, maxShift: 2 },
};

export interface EpochReport {
  stage: Stage;
  epoch: number;
  epochs: number;
  lr: number;
  /** mean training loss and top-1 (0–1) per pass label */
  train: Record<string, { loss: number; top1: number }>;
  /** top-1 (0–1) on the test split at the run's evaluation policy */
  testTop1: number;
  seconds: number;
  imagesPerSecond: number;
}

export interface LoopOptions {
  stage: Stage;
  hyper: Hyperparameters;
  seed: number;
  /** use only the first `limit` training and test samples */
  limit?: number;
  /** the passes of one step (step-seeded PRNG for sampled policies) */
  passes(rng: Prng): Pass[];
  /** policy the per-epoch test accuracy is measured at */
  evalPolicy: BitsPolicy;
  /** save a checkpoint here after every epoch */
  checkpointDir?: string;
  /** continue from the checkpoint in checkpointDir when it holds an unfinished run of this stage */
  resume?: boolean;
  /** recorded in checkpoints */
  meta?: Record<string, unknown>;
  progress?: boolean;
  onEpoch?(report: EpochReport): void;
  /** notices (stderr in the CLI) */
  log?: (line: string) => void;
  /**
   * Data-parallel gradient workers (startWorkers: wasm, one thread each, LSQ models): each step's
   * batch is split among them. Batch-norm statistics are then per shard; the running statistics
   * come back as the mean over the shards. Absent or 0: steps run in this thread.
   */
  workers?: number;
}

export interface Evaluation {
  top1: number;
  loss: number;
  count: number;
}

/** Top-1 accuracy (0–1) and mean cross-entropy of the model at `policy` (inference mode). */
export function evaluate(model: QuantModel, set: ImageSet, policy: BitsPolicy, batchSize = 250): Evaluation {
  let correct = 0;
  let lossSum = 0;
  for (const batch of batches(set, batchSize)) {
    const [c, l] = tf.tidy(() => {
      const logits = model.forward(batch.x, policy, false);
      return [correctCount(logits, batch.y).dataSync()[0], lossOf(logits, batch.y, model.numClasses, 0).dataSync()[0]];
    });
    correct += c;
    lossSum += l * batch.size;
    batch.x.dispose();
    batch.y.dispose();
  }
  return { top1: set.count === 0 ? 0 : correct / set.count, loss: set.count === 0 ? 0 : lossSum / set.count, count: set.count };
}

function clipGradients(grads: Map<tf.Variable, tf.Tensor>, clip: number): void {
  for (const [variable, g] of grads) {
    grads.set(variable, tf.clipByValue(g, -clip, clip));
    g.dispose();
  }
}

/** The step state of a fresh run: SGD with momentum, weight decay on conv/dense weights. */
export function createStepState(model: QuantModel, hyper: Hyperparameters): StepState {
  const optimizer = new SgdMomentum(hyper.momentum, hyper.weightDecay, new Set(decayedVariables(model)));
  return { model, variables: trainableVariables(model), optimizer, hyper };
}

/**
 * One training step: the passes' summed gradients on the batch (in this thread, or on the
 * workers), clipped by value when the hyperparameters say so, then one SGD update at learning rate
 * `lr`. Returns each pass's metrics.
 */
export async function trainStep(state: StepState, x: tf.Tensor4D, y: tf.Tensor1D, passes: Pass[], lr: number): Promise<PassMetrics[]> {
  const { grads, metrics } = state.workers
    ? await workerGradients(state, state.workers, x, y, passes)
    : accumulateGradients(state.model, x, y, passes, state.variables, state.hyper.labelSmoothing);
  if (state.hyper.clipValue !== undefined) clipGradients(grads, state.hyper.clipValue);
  state.optimizer.step(grads, lr);
  for (const g of grads.values()) g.dispose();
  return metrics;
}

function formatMetrics(sums: Map<string, { loss: number; correct: number }>, seen: number): string {
  const entries = [...sums];
  if (entries.length === 1) {
    const [, s] = entries[0];
    return `loss ${(s.loss / seen).toFixed(3)} acc ${((100 * s.correct) / seen).toFixed(1)}%`;
  }
  const meanLoss = entries.reduce((a, [, s]) => a + s.loss, 0) / entries.length / seen;
  return `loss ${meanLoss.toFixed(3)} acc ${entries.map(([label, s]) => `${label} ${((100 * s.correct) / seen).toFixed(1)}`).join(' ')}`;
}

/**
 * The training loop shared by FP training, LIMPQ joint pretraining and LSQ finetuning: each step
 * runs the passes `options.passes` gives (one for plain training), sums their gradients, optionally
 * clips them by value, and makes one SGD step with a cosine learning rate. The epoch's sample order
 * and each step's sampled policies come from PRNGs seeded by (seed, epoch[, step]), so a resumed run
 * repeats an uninterrupted one.
 */
export async function trainLoop(model: QuantModel, data: Dataset, options: LoopOptions): Promise<EpochReport[]> {
  const { hyper, stage } = options;
  const trainSet = subset(data.train, options.limit);
  const testSet = subset(data.test, options.limit);
  const names = namedVariables(model);
  const state = createStepState(model, hyper);
  const { optimizer } = state;
  const stepsPerEpoch = Math.ceil(trainSet.count / hyper.batchSize);
  const totalSteps = stepsPerEpoch * hyper.epochs;

  let startEpoch = 0;
  if (options.resume && options.checkpointDir && !hasCheckpoint(options.checkpointDir)) {
    options.log?.(`resuming: ${options.checkpointDir} holds no checkpoint yet; starting the run from the beginning`);
  } else if (options.resume && options.checkpointDir) {
    const checkpoint = readCheckpoint(options.checkpointDir);
    try {
      checkResumable(options.checkpointDir, checkpoint.manifest, stage, options.meta ?? {});
      loadIntoVariables(options.checkpointDir, checkpoint, names);
      optimizer.load(names, checkpoint.tensors);
      startEpoch = Math.min(checkpoint.manifest.training.epochsDone, hyper.epochs);
    } finally {
      disposeCheckpoint(checkpoint);
    }
  }

  const reports: EpochReport[] = [];
  const bar = new ProgressBar(options.progress ?? false);
  if (options.workers) state.workers = await startWorkers(model, options.workers);
  try {
    for (let epoch = startEpoch; epoch < hyper.epochs; epoch++) {
      const order = epochOrder(trainSet.count, deriveSeed(options.seed, epoch));
      const sums = new Map<string, { loss: number; correct: number }>();
      let seen = 0;
      let lr = hyper.lr;
      const started = performance.now();
      bar.start(stepsPerEpoch, `${stage} ${epoch + 1}/${hyper.epochs}`);
      let step = 0;
      // augmentation draws from its own per-epoch stream (label 0xffffffff, never a step index)
      const augment = { maxShift: hyper.maxShift, rng: new Prng(deriveSeed(options.seed, epoch, 0xffffffff)) };
      for (const batch of batches(trainSet, hyper.batchSize, order, augment)) {
        const globalStep = epoch * stepsPerEpoch + step;
        lr = cosineLr(hyper.lr, globalStep, totalSteps);
        const passes = options.passes(new Prng(deriveSeed(options.seed, epoch, step)));
        const metrics = await trainStep(state, batch.x, batch.y, passes, lr);
        batch.x.dispose();
        batch.y.dispose();
        for (const m of metrics) {
          const s = sums.get(m.label) ?? { loss: 0, correct: 0 };
          s.loss += m.loss * batch.size;
          s.correct += m.correct;
          sums.set(m.label, s);
        }
        seen += batch.size;
        step++;
        bar.update(step, formatMetrics(sums, seen), (seen * 1000) / (performance.now() - started));
        // yield to the event loop: progress redraws off a terminal and signals run on timers
        await new Promise((resolve) => setImmediate(resolve));
      }
      bar.stop();
      const seconds = (performance.now() - started) / 1000;
      const test = evaluate(model, testSet, options.evalPolicy);
      const report: EpochReport = {
        stage, epoch: epoch + 1, epochs: hyper.epochs, lr,
        train: Object.fromEntries([...sums].map(([label, s]) => [label, { loss: s.loss / seen, top1: s.correct / seen }])),
        testTop1: test.top1, seconds, imagesPerSecond: seen / seconds,
      };
      reports.push(report);
      if (options.checkpointDir) {
        const training: CheckpointTraining = { stage, epochsDone: epoch + 1, epochs: hyper.epochs, seed: options.seed, testTop1: test.top1 };
        saveCheckpoint(options.checkpointDir, { model: model.name, graph: recordedGraph(model.graph), bits: model.bitsList, training, meta: options.meta ?? {} },
          new Map([...names, ...optimizer.namedState(names)]));
      }
      options.onEpoch?.(report);
    }
  } finally {
    optimizer.dispose();
    await state.workers?.close();
  }
  return reports;
}

/** Plain training: one full-precision pass per step. */
export function fullPrecisionPasses(): Pass[] {
  return [{ label: 'fp', policy: FULL_PRECISION }];
}

/**
 * LIMPQ joint pretraining: every uniform bit-width in turn (all searchable layers at b), then one
 * mixed policy drawn with the step's PRNG.
 */
export function jointPretrainPasses(model: QuantModel): (rng: Prng) => Pass[] {
  return (rng) => [
    ...model.bitsList.map((b) => ({ label: `w${b}a${b}`, policy: uniformPolicy(model, b) })),
    { label: 'mixed', policy: randomPolicy(model, rng) },
  ];
}
