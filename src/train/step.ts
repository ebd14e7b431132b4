/**
 * One pass of a training step, the leaf both the training loop (loops.ts) and the data-parallel
 * workers' replicas (backend/model-replica.ts) build on: the loss, the gradients of the passes
 * summed, and the state a step runs with.
 */
import * as tf from '@tensorflow/tfjs';
import type { DataParallelGradients } from './backend/data-parallel.js';
import type { BitsPolicy, QuantModel } from './models.js';
import type { SgdMomentum } from './optimizer.js';

export interface Hyperparameters {
  epochs: number;
  batchSize: number;
  /** initial learning rate, decayed to 0 by a per-step cosine schedule */
  lr: number;
  momentum: number;
  weightDecay: number;
  labelSmoothing: number;
  /** clip every gradient element to [−clip, clip] before the update (LIMPQ pretraining: 1) */
  clipValue?: number;
  /** training images are shifted by up to this many pixels each way (0: no augmentation) */
  maxShift: number;
}

/** One forward/backward pass of a training step: a label for the metrics and the bits it runs at. */
export interface Pass {
  label: string;
  policy: BitsPolicy;
}

export function lossOf(logits: tf.Tensor2D, labels: tf.Tensor1D, numClasses: number, labelSmoothing: number): tf.Scalar {
  return tf.losses.softmaxCrossEntropy(tf.oneHot(labels, numClasses), logits, undefined, labelSmoothing) as tf.Scalar;
}

export function correctCount(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar {
  return tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), labels), 'float32'));
}

/** Loss and correct count of one pass over a batch. */
export interface PassMetrics {
  label: string;
  loss: number;
  correct: number;
}

/** Sum of the gradients of every pass (the step's single update uses all of them), with metrics. */
export function accumulateGradients(
  model: QuantModel, x: tf.Tensor4D, y: tf.Tensor1D, passes: Pass[], variables: tf.Variable[], labelSmoothing: number,
): { grads: Map<tf.Variable, tf.Tensor>; metrics: PassMetrics[] } {
  const byName = new Map(variables.map((v) => [v.name, v]));
  const grads = new Map<tf.Variable, tf.Tensor>();
  const metrics: PassMetrics[] = [];
  for (const pass of passes) {
    let correct: tf.Scalar | undefined;
    const { value, grads: passGrads } = tf.variableGrads(() => {
      const logits = model.forward(x, pass.policy, true);
      correct = tf.keep(correctCount(logits, y));
      return lossOf(logits, y, model.numClasses, labelSmoothing);
    }, variables);
    metrics.push({ label: pass.label, loss: value.dataSync()[0], correct: correct!.dataSync()[0] });
    value.dispose();
    correct!.dispose();
    for (const [name, g] of Object.entries(passGrads)) {
      const variable = byName.get(name)!;
      const previous = grads.get(variable);
      if (previous) {
        grads.set(variable, tf.add(previous, g));
        previous.dispose();
        g.dispose();
      } else {
        grads.set(variable, g);
      }
    }
  }
  return { grads, metrics };
}

/** What a training step needs besides its batch: the model, its variables and optimizer, the hyperparameters. */
export interface StepState {
  model: QuantModel;
  variables: tf.Variable[];
  optimizer: SgdMomentum;
  hyper: Hyperparameters;
  /** data-parallel gradient workers (startWorkers), when the step's gradients come from them */
  workers?: DataParallelGradients;
}
