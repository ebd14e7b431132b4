/** A gradient worker of DataParallelGradients (data-parallel.ts): one replica, one shard per step. */
import * as tf from '@tensorflow/tfjs';
import { parentPort, workerData } from 'node:worker_threads';
import type { ReplicaModule, StepRequest, WorkerInit, WorkerReply } from './data-parallel.js';
import { initBackend } from './index.js';

const port = parentPort;
if (!port) throw new Error('data-parallel-worker must run in a worker thread');

function reply(message: WorkerReply, transfer: ArrayBuffer[] = []): void {
  port!.postMessage(message, transfer);
}

/** Same bits (so NaNs and signed zeros compare as they are). */
function sameBits(a: Float32Array, b: Float32Array): boolean {
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  if (x.length !== y.length) return false;
  for (let k = 0; k < x.length; k++) if (x[k] !== y[k]) return false;
  return true;
}

async function start(init: WorkerInit): Promise<void> {
  // The workers are the parallelism: one thread each.
  await initBackend(init.backend, { threads: 1 });
  const module = (await import(init.replicaModule)) as ReplicaModule;
  const replica = await module.createReplica(init.replicaOptions);
  const { state } = replica;
  const notFloat = state.find((variable) => variable.dtype !== 'float32');
  if (notFloat) throw new Error(`replica variable ${notFloat.name} is ${notFloat.dtype}; state travels as float32`);
  port!.on('message', (request: StepRequest) => {
    try {
      const shard = Object.fromEntries(
        Object.entries(request.shard).map(([name, data]) => [name, tf.tensor(data.values, data.shape, data.dtype)]),
      );
      tf.tidy(() => state.forEach((variable, i) => variable.assign(tf.tensor(request.state[i], variable.shape))));
      const { gradients, report } = replica.gradients(shard, request.task);
      // Copies: the buffers are transferred, and the cpu backend's dataSync returns its own storage.
      const values = gradients.map((g) => (g ? new Float32Array(g.dataSync()) : null));
      tf.dispose([...gradients.filter((g): g is tf.Tensor => g !== undefined), ...Object.values(shard)]);
      const changed: Array<[number, Float32Array]> = [];
      state.forEach((variable, i) => {
        const now = variable.dataSync() as Float32Array;
        if (!sameBits(now, request.state[i])) changed.push([i, new Float32Array(now)]);
      });
      const transfer: ArrayBuffer[] = [];
      for (const v of [...values, ...changed.map(([, c]) => c)]) if (v !== null) transfer.push(v.buffer as ArrayBuffer);
      reply({ kind: 'gradients', gradients: values, report, changed }, transfer);
    } catch (error) {
      reply({ kind: 'error', message: (error as Error).stack ?? String(error) });
    }
  });
  reply({ kind: 'ready', shapes: state.map((variable) => variable.shape) });
}

start(workerData as WorkerInit).catch((error: unknown) => reply({ kind: 'error', message: (error as Error).stack ?? String(error) }));
