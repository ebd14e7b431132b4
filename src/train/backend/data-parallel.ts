/**
 * Data-parallel gradients over worker_threads: each worker runs its own single-threaded tfjs
 * backend on a shard of the batch and returns its gradients; the caller gets them averaged
 * (weighted by shard size) and applies the update itself. Workers hold replicas of the model,
 * built by a module the caller names. Before every step the caller's whole state (weights, batch
 * norm statistics, quantizer state) travels to the workers; whatever a worker's step changed
 * (batch-norm running statistics, step sizes initialised from data) travels back, and the caller
 * takes the shard-size-weighted mean over the workers.
 *
 * Batch-norm statistics are per shard (as in PyTorch DistributedDataParallel without SyncBN).
 */
import * as tf from '@tensorflow/tfjs';
import { Worker } from 'node:worker_threads';
import type { BackendName } from './names.js';

/** One replica of the model inside a worker. */
export interface Replica {
  /** every variable a step reads or writes, float32, in the caller's order */
  state: tf.Variable[];
  /**
   * One shard's gradients for `task`: one per trainable variable in the order the caller expects,
   * undefined where the variable got none; and a structured-cloneable report (metrics).
   */
  gradients(shard: Record<string, tf.Tensor>, task: unknown): { gradients: (tf.Tensor | undefined)[]; report: unknown };
}

/** What the replica module (imported in each worker) exports. */
export interface ReplicaModule {
  createReplica(options: unknown): Replica | Promise<Replica>;
}

/** A tensor as plain data, for postMessage. */
export interface TensorData {
  values: Float32Array | Int32Array;
  shape: number[];
  dtype: 'float32' | 'int32';
}

export interface DataParallelOptions {
  workers: number;
  /** file URL of a module exporting `createReplica` (see ReplicaModule) */
  replicaModule: string | URL;
  /** structured-cloneable argument for createReplica */
  replicaOptions?: unknown;
  /** backend in each worker (default 'wasm', one thread each) */
  backend?: BackendName;
}

export interface WorkerInit {
  replicaModule: string;
  replicaOptions: unknown;
  backend: BackendName;
}

export interface StepRequest {
  state: Float32Array[];
  shard: Record<string, TensorData>;
  task: unknown;
}

export type WorkerReply =
  | { kind: 'ready'; shapes: number[][] }
  | { kind: 'gradients'; gradients: (Float32Array | null)[]; report: unknown; changed: Array<[number, Float32Array]> }
  | { kind: 'error'; message: string };

export interface DataParallelStep {
  /** shard-size-weighted mean gradient per trainable variable; undefined where no shard had one */
  gradients: (Float32Array | undefined)[];
  /** each shard's report with its size, in shard order */
  reports: Array<{ report: unknown; size: number }>;
  /** new values of the state variables some worker changed, by index: the shard-size-weighted mean */
  state: Map<number, Float32Array>;
}

/** Splits every tensor of a batch along axis 0 into `parts` nearly equal shards. */
export function splitBatch(batch: Record<string, tf.Tensor>, parts: number): Record<string, TensorData>[] {
  const names = Object.keys(batch);
  const rows = batch[names[0]].shape[0];
  if (names.some((name) => batch[name].shape[0] !== rows)) throw new Error('splitBatch: tensors differ in batch size');
  const used = Math.min(parts, rows);
  const shards: Record<string, TensorData>[] = Array.from({ length: used }, () => ({}));
  for (const name of names) {
    const tensor = batch[name];
    if (tensor.dtype !== 'float32' && tensor.dtype !== 'int32') throw new Error(`splitBatch: ${name} has dtype ${tensor.dtype}`);
    const values = tensor.dataSync() as Float32Array | Int32Array;
    const rowSize = tensor.size / rows;
    let start = 0;
    for (let part = 0; part < used; part++) {
      const count = Math.floor(rows / used) + (part < rows % used ? 1 : 0);
      shards[part][name] = {
        values: values.slice(start * rowSize, (start + count) * rowSize),
        shape: [count, ...tensor.shape.slice(1)],
        dtype: tensor.dtype,
      };
      start += count;
    }
  }
  return shards;
}

/** A pool of gradient workers; one step at a time. */
export class DataParallelGradients {
  private constructor(
    private readonly workers: Worker[],
    /** state variable shapes, as the replicas report them */
    readonly shapes: number[][],
  ) {}

  static async start(options: DataParallelOptions): Promise<DataParallelGradients> {
    if (!Number.isInteger(options.workers) || options.workers < 1) throw new Error(`workers must be a positive integer, got ${options.workers}`);
    const init: WorkerInit = {
      replicaModule: String(options.replicaModule),
      replicaOptions: options.replicaOptions ?? null,
      backend: options.backend ?? 'wasm',
    };
    const workers = Array.from({ length: options.workers }, () => new Worker(new URL('./data-parallel-worker.js', import.meta.url), { workerData: init }));
    try {
      const ready = await Promise.all(workers.map((worker) => nextReply(worker)));
      const shapes = ready.map((reply) => {
        if (reply.kind !== 'ready') throw new Error(`gradient worker failed to start: ${reply.kind === 'error' ? reply.message : reply.kind}`);
        return reply.shapes;
      });
      return new DataParallelGradients(workers, shapes[0]);
    } catch (error) {
      await Promise.all(workers.map((worker) => worker.terminate()));
      throw error;
    }
  }

  get size(): number {
    return this.workers.length;
  }

  /**
   * One step on `shards` (at most one per worker) from `state` (one Float32Array per state
   * variable): the averaged gradients, the shards' reports and the state the workers changed.
   */
  async step(state: Float32Array[], shards: Record<string, TensorData>[], task: unknown): Promise<DataParallelStep> {
    if (shards.length === 0 || shards.length > this.workers.length) {
      throw new Error(`step: ${shards.length} shards for ${this.workers.length} workers`);
    }
    if (state.length !== this.shapes.length) throw new Error(`step: ${state.length} state arrays for ${this.shapes.length} replica variables`);
    const replies = await Promise.all(
      shards.map((shard, i) => {
        const reply = nextReply(this.workers[i]);
        const request: StepRequest = { state, shard, task };
        this.workers[i].postMessage(request);
        return reply;
      }),
    );
    const sizes = shards.map((shard) => Object.values(shard)[0].shape[0]);
    const total = sizes.reduce((a, b) => a + b, 0);
    const results = replies.map((reply, i) => {
      if (reply.kind !== 'gradients') throw new Error(`gradient worker ${i}: ${reply.kind === 'error' ? reply.message : reply.kind}`);
      return reply;
    });
    const gradients = results[0].gradients.map((_, v) => {
      if (results.every((r) => r.gradients[v] === null)) return undefined;
      return weightedSum(results.map((r, i) => ({ values: r.gradients[v], weight: sizes[i] / total })));
    });
    const changedIndices = new Set(results.flatMap((r) => r.changed.map(([index]) => index)));
    const newState = new Map<number, Float32Array>();
    for (const index of changedIndices) {
      // a worker that left the variable alone contributes the value it was sent
      newState.set(index, weightedSum(results.map((r, i) => ({
        values: r.changed.find(([k]) => k === index)?.[1] ?? state[index], weight: sizes[i] / total,
      }))));
    }
    return { gradients, reports: results.map((r, i) => ({ report: r.report, size: sizes[i] })), state: newState };
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((worker) => worker.terminate()));
  }
}

/** Σ weight·values (in float64) over the parts; a part without values counts as zeros. */
function weightedSum(parts: Array<{ values: Float32Array | null; weight: number }>): Float32Array {
  const length = parts.find((part) => part.values !== null)?.values?.length ?? 0;
  const sum = new Float64Array(length);
  for (const { values, weight } of parts) {
    if (values === null) continue;
    for (let k = 0; k < length; k++) sum[k] += values[k] * weight;
  }
  return Float32Array.from(sum);
}

function nextReply(worker: Worker): Promise<WorkerReply> {
  return new Promise((resolve, reject) => {
    const settle = () => {
      worker.off('message', onMessage);
      worker.off('error', onError);
      worker.off('exit', onExit);
    };
    const onMessage = (reply: WorkerReply) => {
      settle();
      resolve(reply);
    };
    const onError = (error: Error) => {
      settle();
      reject(error);
    };
    const onExit = (code: number) => {
      settle();
      reject(new Error(`gradient worker exited with code ${code}`));
    };
    worker.on('message', onMessage);
    worker.on('error', onError);
    worker.on('exit', onExit);
  });
}
