/**
 * Backend selection for training: tfjs-node (native TensorFlow) when installed; else mpq's native
 * oneDNN kernels over tfjs's wasm backend when the addon was built (native.ts); else the wasm
 * backend, multi-threaded and with mpq's training kernels (wasm-kernels.ts). Gradients tfjs lacks
 * (gradients.ts) on every backend; the fused fake-quantization kernel (fake-quant.ts) set as
 * quant/'s fakeQuantize kernel (the native kernels replace its wasm implementation). Also
 * re-exports the wasm-friendly training ops (ops.ts), data-parallel gradient workers
 * (data-parallel.ts) and the backend names (names.ts).
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { useFakeQuantizeKernel } from '../../quant/quantizer.js';
import { FieldError, UserError } from '../../util/errors.js';
import { recordBackendChoice } from './choice.js';
import { fusedFakeQuantize, fusedFakeQuantizeApplies } from './fake-quant.js';
import { BACKEND_NAMES, type BackendName } from './names.js';
import { registerMissingGradients } from './gradients.js';
import { loadNative, setNativeThreads, useNativeKernels } from './native.js';
import { registerWasmTrainingKernels } from './wasm-kernels.js';
import { defaultWasmThreads, registerThreadedWasmBackend, wasmThreadsAvailable } from './wasm-threads.js';

export { defaultWasmThreads } from './wasm-threads.js';
export { backendChoice } from './choice.js';
export { loadNative, nativeKernelsActive } from './native.js';

export { batchNormTrain, groupedConv2d, scaleShiftPerChannel, sumPerChannel } from './ops.js';
export type { BatchNormTrainResult, GroupedConvOptions } from './ops.js';
export { DataParallelGradients, splitBatch } from './data-parallel.js';
export type { DataParallelOptions, Replica, ReplicaModule, TensorData } from './data-parallel.js';
export { BACKEND_NAMES, type BackendName } from './names.js';

export interface InitBackendOptions {
  /**
   * Threads (default: idle cores, see defaultWasmThreads): oneDNN's for 'native', XNNPACK's for
   * 'wasm' (at most 8; 1 uses tfjs's own single-threaded build, and takes effect when the wasm
   * backend first starts in the process).
   */
  threads?: number;
  /** told once which backend runs and why (`backend: …`) */
  log?: (line: string) => void;
}

/** Optional native accelerators, fastest first. Held in variables so tsc does not resolve them. */
const NATIVE_PACKAGES = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'];

/** UserError messages are one line. */
function firstLine(error: unknown): string {
  return String((error as Error | null)?.message ?? error).split('\n')[0];
}

/**
 * Imports the first installed tfjs-node package, which registers the 'tensorflow' backend.
 * Returns why none could be loaded, or undefined on success.
 */
async function importNativeBackend(): Promise<string | undefined> {
  const failures: string[] = [];
  for (const specifier of NATIVE_PACKAGES) {
    try {
      await import(specifier);
      return undefined;
    } catch (error) {
      const code = (error as { code?: unknown } | null)?.code;
      const missing = code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND';
      failures.push(missing ? `${specifier} is not installed` : `${specifier} failed to load (${firstLine(error)})`);
    }
  }
  return failures.join('; ');
}

async function activate(name: string, asked: string): Promise<string> {
  let ok: boolean;
  try {
    ok = await tf.setBackend(name);
  } catch (error) {
    throw new FieldError((n) => `${n('backend')} ${asked}: backend '${name}' failed to start: ${firstLine(error)}`);
  }
  if (!ok) throw new FieldError((n) => `${n('backend')} ${asked}: backend '${name}' failed to start`);
  await tf.ready();
  return tf.getBackend();
}

/** The 'wasm' factory has not run yet, so it can still be swapped for the threaded build. */
function wasmNotStarted(): boolean {
  return !tf.engine().registry['wasm'];
}

async function activateWasm(asked: string, threads: number): Promise<string> {
  useNativeKernels(false);
  registerWasmTrainingKernels();
  if (threads > 1 && wasmThreadsAvailable() && wasmNotStarted()) registerThreadedWasmBackend(threads);
  return activate('wasm', asked);
}

/**
 * The native kernels over the wasm backend: oneDNN takes the threads, so wasm (what is left
 * there: elementwise ops, reductions) runs tfjs's single-threaded build.
 */
async function activateNative(asked: string, threads: number): Promise<string> {
  await activateWasm(asked, 1);
  useNativeKernels(true);
  setNativeThreads(threads);
  return 'native';
}

let current: BackendName | undefined;

/** The backend initBackend chose ('native' for the native kernels over wasm), for worker threads. */
export function currentBackend(): BackendName | undefined {
  return current;
}

/**
 * Sets the tfjs backend and registers mpq's training kernels; returns the name actually in use
 * ('native' for the native kernels over wasm) and tells options.log which and why.
 * 'auto': tfjs-node-gpu or tfjs-node when installed, else the native kernels when built, else wasm.
 * A requested backend that is not available throws a FieldError naming the field (backend) and its value.
 */
export async function initBackend(name: BackendName = 'auto', options: InitBackendOptions = {}): Promise<string> {
  registerMissingGradients();
  useFakeQuantizeKernel({ applies: fusedFakeQuantizeApplies, run: fusedFakeQuantize });
  const threads = options.threads ?? defaultWasmThreads();
  if (!Number.isInteger(threads) || threads < 1) {
    throw new UserError(`threads must be a positive integer, got ${options.threads}`);
  }
  const say = (backend: string, why: string) => {
    const line = `backend: ${backend} (${why})`;
    recordBackendChoice(line);
    options.log?.(line);
    current = backend as BackendName;
    return backend;
  };
  const threadCount = `${threads} thread${threads > 1 ? 's' : ''}`;
  const native = () => {
    const { onednn } = loadNative().addon!.version();
    return `oneDNN ${onednn} kernels over wasm, ${threadCount}`;
  };
  switch (name) {
    case 'auto': {
      // Native accelerators are optional: without them (or if they are broken), use wasm.
      const tensorflow = await importNativeBackend();
      if (tensorflow === undefined) return say(await activate('tensorflow', name), 'tfjs-node is installed');
      const load = loadNative();
      if (load.addon) return say(await activateNative(name, threads), native());
      return say(await activateWasm(name, threads), `${threadCount}; native kernels ${load.reason}`);
    }
    case 'native': {
      const load = loadNative();
      if (!load.addon) throw new FieldError((n) => `${n('backend')} native: the native kernels are ${load.reason} (see README, Native kernels; or use ${n('backend')} wasm)`);
      return say(await activateNative(name, threads), native());
    }
    case 'tensorflow': {
      const failure = await importNativeBackend();
      if (failure !== undefined) throw new FieldError((n) => `${n('backend')} tensorflow: ${failure} (use ${n('backend')} wasm)`);
      return say(await activate('tensorflow', name), 'tfjs-node');
    }
    case 'wasm':
      return say(await activateWasm(name, threads), threadCount);
    case 'cpu':
      return say(await activate('cpu', name), 'tfjs\'s JS kernels');
    default:
      throw new FieldError((n) => `${n('backend')} ${String(name)}: unknown backend (expected one of ${BACKEND_NAMES.join(', ')})`);
  }
}
