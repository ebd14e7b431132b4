/**
 * Loads tfjs's multi-threaded SIMD wasm build in Node.
 *
 * tfjs-backend-wasm ships a pthreads build (XNNPACK with a thread pool) but never uses it in Node:
 * its feature probe answers "no threads" there, and its loader hands Emscripten a browser Blob URL
 * for the pthread worker script. The Emscripten glue itself supports Node's worker_threads, so we
 * load the build ourselves: the worker script goes to a file, the main script is given by path.
 */
import * as tf from '@tensorflow/tfjs';
import { BackendWasm, setThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';

const require = createRequire(import.meta.url);

/** Emscripten module factory of the threaded build (untyped CommonJS). */
type ThreadedModuleFactory = (config: Record<string, unknown>) => Promise<ThreadedModule>;
interface ThreadedModule {
  cwrap(name: string, returnType: string | null, argTypes: string[]): (...args: number[]) => number;
  tfjs?: Record<string, (...args: number[]) => number>;
  PThread: { runningWorkers: { unref(): void }[]; unusedWorkers: { unref(): void }[] };
}

/** XNNPACK's pool in tfjs is built with 8 pre-spawned pthread workers; more threads are never used. */
export const MAX_WASM_THREADS = 8;

/**
 * Threads the wasm backend should use: the cores left idle by other processes (cores minus the
 * 1-minute load average), at least 1 and at most the build's pool. XNNPACK's pool spin-waits for
 * its threads, so on busy cores extra threads cost more than they bring (measured: ResNet-20
 * training 1.5x slower with 2 threads than with 1 on a 2-core machine at load average 7).
 */
export function defaultWasmThreads(): number {
  const cores = os.availableParallelism();
  const idle = Math.round(cores - os.loadavg()[0]);
  return Math.max(1, Math.min(idle, cores, MAX_WASM_THREADS));
}

/** Writes the pthread worker script once per content (CommonJS, hence `.cjs`) and returns its path. */
function writeWorkerScript(outDir: string): string {
  const { wasmWorkerContents } = require(path.join(outDir, 'tfjs-backend-wasm-threaded-simd.worker.js')) as {
    wasmWorkerContents: string;
  };
  // The exported string holds raw newlines inside JS string literals; tfjs escapes them the same way.
  const source = wasmWorkerContents.replace(/\n/g, '\\n');
  const digest = createHash('sha1').update(source).digest('hex').slice(0, 12);
  const workerPath = path.join(os.tmpdir(), `mpq-tfjs-wasm-${digest}.worker.cjs`);
  if (!fs.existsSync(workerPath)) {
    // Write-then-rename so concurrent processes never load a half-written script.
    const partial = `${workerPath}.${process.pid}.tmp`;
    fs.writeFileSync(partial, source);
    fs.renameSync(partial, workerPath);
  }
  return workerPath;
}

async function instantiateThreadedModule(threads: number): Promise<ThreadedModule> {
  const mainScript = require.resolve('@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-threaded-simd.js');
  const outDir = path.dirname(mainScript);
  const factory = require(mainScript) as ThreadedModuleFactory;
  const workerScript = writeWorkerScript(outDir);
  // The C side caps the pool at emscripten_num_logical_cores()/2 (it assumes hyper-threading), read
  // from os.cpus() in a static initializer; report twice the wanted thread count while it runs.
  const realCpus = os.cpus;
  const cpuList = realCpus();
  os.cpus = () => Array.from({ length: 2 * threads }, (_, i) => cpuList[i % cpuList.length]);
  try {
    return await factory({
      locateFile: (file: string, prefix: string) => {
        if (file.endsWith('.worker.js')) return workerScript;
        if (file.endsWith('.wasm')) return path.join(outDir, 'tfjs-backend-wasm-threaded-simd.wasm');
        return prefix + file;
      },
      mainScriptUrlOrBlob: mainScript,
    });
  } finally {
    os.cpus = realCpus;
  }
}

/** True when this Node can run wasm threads (shared memory and worker_threads). */
export function wasmThreadsAvailable(): boolean {
  return typeof SharedArrayBuffer === 'function' && typeof Atomics === 'object';
}

async function createThreadedBackend(threads: number): Promise<BackendWasm> {
  const module = await instantiateThreadedModule(threads);
  // The same bridge tfjs's own loader attaches (backend_wasm.ts, init()).
  module.tfjs = {
    init: module.cwrap('init', null, []),
    initWithThreadsCount: module.cwrap('init_with_threads_count', null, ['number']),
    getThreadsCount: module.cwrap('get_threads_count', 'number', []),
    registerTensor: module.cwrap('register_tensor', null, ['number', 'number', 'number']),
    disposeData: module.cwrap('dispose_data', null, ['number']),
    dispose: module.cwrap('dispose', null, []),
  };
  setThreadsCount(threads);
  const backend = new BackendWasm(module as unknown as ConstructorParameters<typeof BackendWasm>[0]);
  // The pool's threads live forever, parked in Atomics.wait; they must not keep Node running.
  for (const worker of [...module.PThread.runningWorkers, ...module.PThread.unusedWorkers]) worker.unref();
  return backend;
}

/**
 * Replaces tfjs's 'wasm' backend factory with one that loads the threaded build with `threads`
 * XNNPACK threads, falling back to tfjs's own (single-threaded) loader if that fails. Must run
 * before the 'wasm' backend is first initialised. Kernels registered for 'wasm' apply unchanged:
 * it is the same C++ code, built with pthreads.
 */
export function registerThreadedWasmBackend(threads: number): void {
  const stock = tf.engine().registryFactory['wasm'];
  if (!stock) throw new Error("registerThreadedWasmBackend: '@tensorflow/tfjs-backend-wasm' is not loaded");
  tf.removeBackend('wasm');
  tf.registerBackend(
    'wasm',
    async () => {
      try {
        return await createThreadedBackend(threads);
      } catch (error) {
        console.warn(`mpq: multi-threaded wasm failed to load (${(error as Error).message}); using one thread`);
        return stock.factory();
      }
    },
    stock.priority,
  );
}
