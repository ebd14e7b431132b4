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

async function start(init: WorkerInit): Promise<void> {
  // The workers are the parallelism: one XNNPACK thread each.
  await initBackend(init.backend, { wasmThreads: 1 });
  const module = (await import(init.replicaModule)) as ReplicaModule;
  const replica = await module.createReplica(init.replicaOptions);
  const { variables } = replica;
  port!.on('message', (request: StepRequest) => {
    try {
      const shard = Object.fromEntries(
        Object.entries(request.shard).map(([name, data]) => [name, tf.tensor(data.values, data.shape, data.dtype)]),
      );
      tf.tidy(() => variables.forEach((variable, i) => variable.assign(tf.tensor(request.weights[i], variable.shape))));
      const { value, grads } = tf.variableGrads(() => replica.loss(shard), variables);
      // Copies: the buffers are transferred, and the cpu backend's dataSync returns its own storage.
      const gradients = variables.map((variable) => new Float32Array(grads[variable.name].dataSync()));
      const loss = value.dataSync()[0];
      tf.dispose([value, ...Object.values(grads), ...Object.values(shard)]);
      reply({ kind: 'gradients', gradients, loss }, gradients.map((g) => g.buffer as ArrayBuffer));
    } catch (error) {
      reply({ kind: 'error', message: (error as Error).stack ?? String(error) });
    }
  });
  reply({ kind: 'ready', shapes: variables.map((variable) => variable.shape) });
}

start(workerData as WorkerInit).catch((error: unknown) => reply({ kind: 'error', message: (error as Error).stack ?? String(error) }));
