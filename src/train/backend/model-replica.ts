/**
 * Data-parallel training of a QuantModel (DataParallelGradients): the replica module the workers
 * import (createReplica: the model rebuilt from its name or graph, candidate bits and LSQ quantizers, whose
 * steps run the training loop's passes on one shard; its state is namedVariables' — weights,
 * batch-norm sets, quantizer state — and its gradients trainableVariables', both in the caller's
 * order), and the caller's side (startWorkers, workerGradients) used by loops.ts trainStep.
 */
import * as tf from '@tensorflow/tfjs';
import { LsqQuantizer } from '../../quant/lsq.js';
import { FieldError } from '../../util/errors.js';
import { accumulateGradients, type Pass, type PassMetrics, type StepState } from '../step.js';
import { createModel, hasPerChannelWeightSteps, namedVariables, trainableVariables, type QuantModel } from '../models.js';
import { DataParallelGradients, splitBatch, type Replica } from './data-parallel.js';
import { graphFromJson, type GraphJson } from '../../model/graph.js';
import { recordedGraph } from '../checkpoint.js';
import { currentBackend } from './index.js';

export interface ModelReplicaOptions {
  model: string;
  /** the structure of an imported model (a zoo model is rebuilt from its name) */
  graph?: GraphJson;
  bits: number[];
  perChannelWeights: boolean;
  fixed: string[];
}

/** One step's work for a worker: the passes, as trainStep runs them. */
export interface ModelReplicaTask {
  passes: Pass[];
  labelSmoothing: number;
}

/** The worker's replica: the model, its state and the gradients of the task's passes on a shard. */
export function createReplica(options: ModelReplicaOptions): Replica {
  const source = options.graph ? { graph: graphFromJson(options.graph) } : options.model;
  const model = createModel(source, { bits: options.bits, perChannelWeights: options.perChannelWeights, layers: { fixed: options.fixed } });
  const variables = trainableVariables(model);
  return {
    state: [...namedVariables(model).values()],
    gradients(shard, task) {
      const { passes, labelSmoothing } = task as ModelReplicaTask;
      const { grads, metrics } = accumulateGradients(model, shard.x as tf.Tensor4D, shard.y as tf.Tensor1D, passes, variables, labelSmoothing);
      const report: PassMetrics[] = metrics;
      return { gradients: variables.map((variable) => grads.get(variable)), report };
    },
  };
}

/**
 * Starts `count` data-parallel gradient workers holding replicas of the model (one wasm thread
 * each). Models with LSQ quantizers only (the default): a replica is rebuilt from the model's name
 * and bits. Close them with `workers.close()`.
 */
export async function startWorkers(model: QuantModel, count: number): Promise<DataParallelGradients> {
  if (!Number.isInteger(count) || count < 1) throw new FieldError((n) => `${n('workers')}: must be a positive integer, got ${count}`);
  const other = model.layers.flatMap((l) => [l.weightQuantizer, l.inputQuantizer]).find((q) => !(q instanceof LsqQuantizer));
  if (other) throw new FieldError((n) => `${n('workers')}: data-parallel training supports LSQ quantizers only, the model has '${other.kind}'`);
  if (model.layers.some((l) => l.weightQuantizer.startStep > 1 || l.inputQuantizer.startStep > 1)) {
    throw new FieldError((n) => `${n('workers')}: data-parallel replicas do not take quant_start_step (a delayed quantizer): train in one thread`);
  }
  const replica: ModelReplicaOptions = {
    model: model.name, graph: recordedGraph(model.graph), bits: [...model.bitsList], perChannelWeights: hasPerChannelWeightSteps(model),
    fixed: model.fixedLayerNames,
  };
  const workers = await DataParallelGradients.start({
    workers: count, replicaModule: import.meta.url, replicaOptions: replica, backend: currentBackend() === 'native' ? 'native' : 'wasm',
  });
  const shapes = [...namedVariables(model).values()].map((v) => v.shape.join('x'));
  if (workers.shapes.map((shape) => shape.join('x')).join() !== shapes.join()) {
    await workers.close();
    throw new Error(`data-parallel workers: the replicas of ${model.name} do not have the model's variables`);
  }
  return workers;
}

/**
 * The step's gradients from the workers: each runs the passes on its shard of the batch; the
 * gradients are averaged by shard size, and the state the workers changed (batch-norm running
 * statistics, step sizes initialised from data) is set to its shard-size-weighted mean here.
 */
export async function workerGradients(
  state: StepState, workers: DataParallelGradients, x: tf.Tensor4D, y: tf.Tensor1D, passes: Pass[],
): Promise<{ grads: Map<tf.Variable, tf.Tensor>; metrics: PassMetrics[] }> {
  const stateVariables = [...namedVariables(state.model).values()];
  const task: ModelReplicaTask = { passes, labelSmoothing: state.hyper.labelSmoothing };
  const step = await workers.step(stateVariables.map((v) => v.dataSync() as Float32Array), splitBatch({ x, y }, workers.size), task);
  tf.tidy(() => {
    for (const [index, values] of step.state) stateVariables[index].assign(tf.tensor(values, stateVariables[index].shape));
  });
  const grads = new Map<tf.Variable, tf.Tensor>();
  state.variables.forEach((variable, i) => {
    const g = step.gradients[i];
    if (g) grads.set(variable, tf.tensor(g, variable.shape));
  });
  const total = step.reports.reduce((sum, r) => sum + r.size, 0);
  const metrics = passes.map((pass, p) => {
    const shards = step.reports.map((r) => ({ metrics: (r.report as PassMetrics[])[p], size: r.size }));
    return {
      label: pass.label,
      loss: shards.reduce((sum, s) => sum + (s.metrics.loss * s.size) / total, 0),
      correct: shards.reduce((sum, s) => sum + s.metrics.correct, 0),
    };
  });
  return { grads, metrics };
}
