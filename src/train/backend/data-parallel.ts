/**
 * Data-parallel gradients over worker_threads: each worker runs its own single-threaded tfjs
 * backend on a shard of the batch and returns its gradients; the caller gets them averaged
 * (weighted by shard size) and applies the update itself. Workers hold replicas of the model,
 * built by a module the caller names; weights travel to the workers before every step.
 *
 * Batch-norm statistics are per shard (as in PyTorch DistributedDataParallel without SyncBN).
 */
import * as tf from '@tensorflow/tfjs';
import { Worker } from 'node:worker_threads';
import type { BackendName } from './index.js';

/** One replica of the model inside a worker. */
export interface Replica {
  /** trainable variables, in the same order in every replica and in the caller's model */
  variables: tf.Variable[];
  /** the training loss of one shard */
  loss(shard: Record<string, tf.Tensor>): tf.Scalar;
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
  weights: Float32Array[];
  shard: Record<string, TensorData>;
}

export type WorkerReply =
  | { kind: 'ready'; shapes: number[][] }
  | { kind: 'gradients'; gradients: Float32Array[]; loss: number }
  | { kind: 'error'; message: string };

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
    /** variable shapes, as the replicas report them */
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
   * Gradients of the mean loss over all shards at `weights` (one Float32Array per variable), and
   * that loss. Shards may be fewer than workers; each shard's weight is its batch size.
   */
  async gradients(weights: Float32Array[], shards: Record<string, TensorData>[]): Promise<{ gradients: Float32Array[]; loss: number }> {
    if (shards.length === 0 || shards.length > this.workers.length) {
      throw new Error(`gradients: ${shards.length} shards for ${this.workers.length} workers`);
    }
    const replies = await Promise.all(
      shards.map((shard, i) => {
        const reply = nextReply(this.workers[i]);
        const request: StepRequest = { weights, shard };
        this.workers[i].postMessage(request);
        return reply;
      }),
    );
    const sizes = shards.map((shard) => Object.values(shard)[0].shape[0]);
    const total = sizes.reduce((a, b) => a + b, 0);
    const gradients = this.shapes.map((shape) => new Float32Array(shape.reduce((a, b) => a * b, 1)));
    let loss = 0;
    replies.forEach((reply, i) => {
      if (reply.kind !== 'gradients') throw new Error(`gradient worker ${i}: ${reply.kind === 'error' ? reply.message : reply.kind}`);
      const share = sizes[i] / total;
      loss += reply.loss * share;
      reply.gradients.forEach((grad, v) => {
        const sum = gradients[v];
        for (let k = 0; k < grad.length; k++) sum[k] += grad[k] * share;
      });
    });
    return { gradients, loss };
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((worker) => worker.terminate()));
  }
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
